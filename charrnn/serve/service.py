"""What the web app does, as plain Python: generate, autocomplete, folk tunes, training; no Gradio here.

charrnn.web lays out the page and wires each event to one method of `Service`, and renders the plain data
these methods return (charrnn.web.views). Every method bounds its own arguments by serve/limits.py
(numbers clamped, text truncated, models chosen by name from the registry's list).
Errors the user can fix are CharRNNErrors; the app shows their message.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from charrnn import corpora, threads
from charrnn.decoding.beam import UNTIL, beam_search
from charrnn.decoding.interface import Decodable
from charrnn.decoding.processors import SamplingSettings
from charrnn.decoding.sampling import generate, prepare_prompt
from charrnn.decoding.suggest import PHRASES, SuggestSettings, offer
from charrnn.errors import CharRNNError
from charrnn.folk import render
from charrnn.folk.check import check_tune
from charrnn.folk.facts import CorpusFacts
from charrnn.folk.form import read_form
from charrnn.folk.generate import FolkModel
from charrnn.folk.spelling import FOLK_TUNE_TYPES
from charrnn.folk.stats import Reading, summary
from charrnn.inside.report import CellRef, Report, inspect_text
from charrnn.serve import limits
from charrnn.serve.adaptation import Sessions
from charrnn.serve.autocomplete import Autocompleter
from charrnn.serve.batcher import Batcher
from charrnn.serve.jobs import CORES, SIZES, JobManager, safe_name
from charrnn.serve.limits import clip, pick
from charrnn.serve.pronounce import Pronouncer
from charrnn.serve.registry import LoadedModel, Registry, UnknownModel, no_model

STREAM_EVERY_S = 0.05  # a streaming generation yields at most this often ...
STREAM_MIN_CHARS = 8  # ... and only once this many new characters are there
INSPECT_BEST = 3  # the finder's best cells per feature offered in the tab's menu
MAX_HISTORY = 50  # tunes kept in a session's history
KEEP_FILES = 100  # folders of tune files kept on disk (the newest)
MODES = ("sample", "greedy", "beam")
UNTILS = tuple(UNTIL)  # where a completion may end: decoding/beam.py's ends
METERS = ("6/8", "2/2", "2/4", "4/4", "3/4", "9/8", "3/8", "6/4", "12/8", "3/2")
TONICS = ("C", "C#", "Db", "D", "Eb", "E", "F", "F#", "Gb", "G", "Ab", "A", "Bb", "B")
MODES_MUSIC = ("major", "minor", "dorian", "mixolydian", "lydian", "phrygian", "locrian")
ANY_TYPE = "any"
FOLK_TYPES = FOLK_TUNE_TYPES
# The catalogue's language-model corpora the app may build itself (offline; a download is left to the CLI).
BUILDABLE = tuple(c.name for c in corpora.CATALOGUE.values() if c.task == "lm" and c.kind == "build")
NO_MODELS = (f"No model here yet: train a text model in the Train tab (at least {limits.MIN_UPLOAD_CHARS:,} "
             "characters of text), or put model folders in the models folder. Folk tunes need a model trained on the "
             "folk corpus, and pronunciation a seq2seq model (`charrnn seq2seq train cmudict`): their tabs say how.")


def inference_threads() -> None:
    """Each request runs on one thread (charrnn.threads' STEP work: concurrent requests are the app's parallelism)."""
    threads.use(threads.Work.STEP)


# --- results ---------------------------------------------------------------------------------------------

@dataclass
class Generation:
    """One update of a streaming generation."""

    text: str  # the prime as read, and everything generated so far
    chars: int  # characters generated so far
    seconds: float
    seed: int | None
    done: bool
    note: str = ""

    @property
    def chars_per_s(self) -> float:
        return self.chars / self.seconds if self.seconds > 0 else 0.0


@dataclass
class FolkResult:
    """A generated tune, its checks, and (for a tune that passed) its sheet music, audio and files."""

    abc: str
    title: str
    passed: bool
    ended: bool
    findings: list[dict]
    seed: int
    candidates: int
    seconds: float
    redrawn: int = 0  # lines of music the checks sent back (guided sampling)
    form: dict = field(default_factory=dict)  # folk.stats.summary: parts x bars, repeats, ending, copied run
    svg: str | None = None
    audio: tuple[int, object] | None = None  # (sample_rate, int16 numpy array)
    files: list[str] = field(default_factory=list)  # .abc always; .mid and .wav for a tune that passed
    message: str = ""

    def summary(self) -> dict:
        """A short record for the session's history and for API clients."""
        return {"title": self.title, "passed": self.passed, "ended": self.ended, "seed": self.seed,
                "candidates": self.candidates, "seconds": round(self.seconds, 2), "redrawn": self.redrawn,
                "abc": self.abc, "form": self.form,
                "findings": self.findings}


# --- the service -------------------------------------------------------------------------------------------

class Service:
    """Everything the app offers, bounded and thread-safe; one instance per server."""

    def __init__(self, registry: Registry, jobs: JobManager, autocompleter: Autocompleter | None = None,
                 files_dir: str | Path | None = None, batcher: Batcher | None = None,
                 sessions: Sessions | None = None):
        self.registry = registry
        self.jobs = jobs
        self.autocompleter = autocompleter or Autocompleter()
        self.batcher = batcher or Batcher()  # concurrent completions and generations share each model.step
        self.pronouncer = Pronouncer(registry, batcher=self.batcher)  # and so do concurrent pronunciations
        self.files_dir = Path(files_dir or tempfile.mkdtemp(prefix="charrnn-app-"))
        self._counter = 0
        self._counter_lock = threading.Lock()
        self._build_lock = threading.Lock()
        self.sessions = sessions or Sessions()  # the adapted models of the sessions that asked for one
        self.warm = threading.Event()  # set once the server has loaded what its first requests need
        self._folk_facts: dict[tuple[str, int], CorpusFacts] = {}  # folk model folder -> its corpus facts

    # --- models ---------------------------------------------------------------------------------------

    def models(self) -> list[dict]:
        """The models on offer, for API clients."""
        return [{"name": e.name, "label": e.label, "kind": e.kind, "source": e.source, "corpus": e.corpus,
                 "arch": e.arch, "folk": e.is_folk, "best_val_loss": e.best_val_loss} for e in self.registry.entries()]

    def load(self, name, folk: bool | None = None) -> LoadedModel:
        """The language model called `name`; with folk=True, where no folk model is offered, how to get one."""
        if not self.registry.offered(folk):
            raise CharRNNError(no_model("lm", folk))
        if not name:
            raise UnknownModel("choose a model first")
        return self.registry.load(clip(name, limits.MAX_NAME_TEXT))

    # --- generate -------------------------------------------------------------------------------------

    def generate(self, model, prime="", length=limits.LENGTH.default, mode="sample",
                 temperature=limits.TEMPERATURE.default, top_k=0, top_p=limits.TOP_P.default, seed=None,
                 beam=limits.BEAM.default) -> Iterator[Generation]:
        """Stream a generation: yields a growing text every few characters, then a final update (done)."""
        inference_threads()
        mode = pick(mode, MODES, "mode")
        lm = self.load(model)
        with self.batcher.session(lm.model) as session:
            for update in self._generate(lm, session, prime, length, mode, temperature, top_k, top_p, seed, beam):
                session.close()  # no other request's step waits for this one while the page takes the update
                yield update

    def _generate(self, lm: LoadedModel, session: Decodable, prime, length, mode, temperature, top_k, top_p, seed,
                  beam) -> Iterator[Generation]:
        prime = clip(prime, limits.MAX_PRIME)
        vocab = lm.vocab
        skipped = "".join(vocab.unknown(prime))
        note = f"left out characters the model does not know: {skipped[:20]!r}" if skipped else ""
        prompt = prepare_prompt(session, vocab, prime, unknown="skip", char_counts=lm.char_counts)
        t0 = time.perf_counter()
        if mode == "beam":
            length = limits.BEAM_LENGTH.clamp_int(length)
            width = min(limits.BEAM.clamp_int(beam), len(vocab))
            yield Generation(prompt.text, 0, 0.0, None, False, f"beam search, width {width} …")
            best = beam_search(session, vocab, prompt, width, length, num=1, length_penalty=1.0)[0]
            took = time.perf_counter() - t0
            yield Generation(prompt.text + best.text, len(best.text), took, None, True,
                             "; ".join(filter(None, [f"beam width {width}, logprob {best.logprob:.2f}", note])))
            return
        length = limits.LENGTH.clamp_int(length)
        temperature = 0.0 if mode == "greedy" else limits.TEMPERATURE.clamp(temperature)
        k = limits.clamp_int(top_k, 0, len(vocab), 0)
        p = limits.TOP_P.clamp(top_p)
        seed_value = limits.seed_or_random(seed)
        settings = SamplingSettings(temperature, k or None, p if p < 1 else None, seed=seed_value)
        pieces = generate(session, vocab, prompt, length, settings)
        out: list[str] = []
        last_yield, last_count = t0, 0
        for ch in pieces:
            out.append(ch)
            now = time.perf_counter()
            if now - last_yield >= STREAM_EVERY_S and len(out) - last_count >= STREAM_MIN_CHARS:
                yield Generation(prompt.text + "".join(out), len(out), now - t0, seed_value, False, note)
                inference_threads()  # the next chunk may run on another worker thread
                last_yield, last_count = time.perf_counter(), len(out)
        yield Generation(prompt.text + "".join(out), len(out), time.perf_counter() - t0, seed_value, True, note)

    # --- autocomplete ---------------------------------------------------------------------------------

    def complete(self, model, text="", num=limits.COMPLETIONS.default, until="word",
                 max_len=limits.COMPLETION_LENGTH.default, phrases=SuggestSettings.phrases,
                 phrase_prob=limits.PHRASE_PROB.default, adapt=False, session="", auto_space=True) -> dict:
        """The best completions of `text` (only its last limits.MAX_COMPLETE_TEXT characters are kept), as a dict.

        To the end of a word, a phrase of several words comes too when the model is confident (`phrases`:
        together, separate or off; each further word at least `phrase_prob` likely; decoding/suggest.py), ranked
        by the keystrokes they save where accepting one types the space after it (`auto_space`) or not.
        With `adapt`, the session's own copy of the model answers and learns from the text
        (serve/adaptation.py); `session` is the key an earlier answer gave (answer["session"]), and an
        unknown or empty one starts a new session.
        """
        inference_threads()
        until = pick(until, UNTILS, "until")
        phrases = pick(phrases, PHRASES, "phrases")
        text = "" if text is None else str(text)
        num = limits.COMPLETIONS.clamp_int(num)
        lm = self.load(model)
        writer = None
        if adapt:
            session = str(session or "")
            if not self.sessions.held(session):
                session = self.sessions.new_key()
            writer = self.sessions.writer(session, lm.model)
        # Read once: a model that learning publishes meanwhile answers the next request, never half of this one.
        # (The count first: learning publishes the model before its count, so this model has learned at least that.)
        learned = writer.learned_chars if writer else 0
        decoder = writer.model if writer else lm.model
        # Concurrent requests' searches run as one (Batcher.together); the prompt is read alone: mostly a
        # character or two on from a cached state, too little to be worth waiting for company.
        # To the end of a word, the suggestions (decoding/suggest.py) are chosen from a search of their own.
        settings = SuggestSettings(num, phrases=phrases, phrase_prob=limits.PHRASE_PROB.clamp(phrase_prob),
                                   max_len=limits.COMPLETION_LENGTH.clamp_int(max_len), auto_space=bool(auto_space))
        search = settings.search_args if until == "word" else {"num": num, "until": until, "max_len": max_len}
        result = self.autocompleter.complete(decoder, lm.vocab, text, **search, char_counts=lm.char_counts,
                                             together=self.batcher.together)
        answer = result.to_dict(tail=text[-32:])
        known = lm.vocab.known(text[-limits.MAX_COMPLETE_TEXT:], "skip")
        if until == "word":
            prompt, _ = self.autocompleter.prompt(decoder, lm.vocab, known, lm.char_counts)  # cached just now
            answer["completions"] = [s.to_dict() for s in offer(decoder, lm.vocab, prompt, result.completions,
                                                                 settings)]
        if writer:
            self.sessions.learn(writer, known, lm.vocab)
            answer["session"], answer["learned_chars"] = session, learned
        answer["text_len"] = len(text)  # of the text as sent, which the page compares with what is typed now
        return answer

    def forget(self, session="") -> dict:
        """Drop what the session's models learned (the next request with `adapt` starts afresh)."""
        return {"forgotten": self.sessions.forget(str(session or ""))}

    # --- pronunciation --------------------------------------------------------------------------------

    def pronounce(self, model, text="", beam=limits.PRONOUNCE_BEAM.default, num=limits.PRONOUNCE_NUM.default) -> dict:
        """Pronunciations of each word of `text` (see serve/pronounce.py), on this request's one thread."""
        inference_threads()
        return self.pronouncer.pronounce(model, text, beam, num)

    # --- folk tunes -----------------------------------------------------------------------------------

    def folk_tune(self, model, meter="6/8", tonic="D", mode="major", tune_type=ANY_TYPE, start="",
                  temperature=limits.FOLK_TEMPERATURE.default, seed=None, candidates=limits.FOLK_CANDIDATES.default,
                  tempo=limits.TEMPO.default) -> FolkResult:
        """Write a tune (the best of `candidates`), check it, and render the one that passes."""
        inference_threads()
        pick(meter, METERS, "meter")
        pick(tonic, TONICS, "tonic")
        pick(mode, MODES_MUSIC, "mode")
        if tune_type in (None, "", ANY_TYPE):
            tune_type = None
        lm = self.load(model, folk=True)
        folk = FolkModel(lm.model, lm.vocab, lm.config, name=lm.entry.name, facts=self._facts(lm))
        tune = folk.generate(meter, f"{tonic} {mode}", tune_type, clip(start, limits.MAX_FOLK_START).strip(),
                             temperature=limits.FOLK_TEMPERATURE.clamp(temperature),
                             seed=limits.seed_or_random(seed), candidates=limits.FOLK_CANDIDATES.clamp_int(candidates))
        findings = [{"kind": f.kind, "message": f.message, "bar": f.bar, "severity": f.severity}
                    for f in tune.report.findings]
        title = tune.report.headers.get("T", "").strip() or "Untitled"
        result = FolkResult(tune.abc, title, tune.passed, tune.ended, findings, tune.seed, tune.candidates,
                            tune.seconds, tune.redrawn, summary(Reading(tune.form, tune.copied)))
        return self._render(result, tempo)

    def _facts(self, lm: LoadedModel) -> CorpusFacts:
        """The corpus facts of a folk model (its note index is read once per model folder and kept)."""
        key = (str(lm.entry.path), lm.entry.mtime_ns)
        facts = self._folk_facts.get(key)
        if facts is None:
            facts = self._folk_facts[key] = CorpusFacts.find(lm.config, lm.entry.path, corpora.corpora_dir())
        return facts

    def rerender(self, record: dict, tempo=limits.TEMPO.default) -> FolkResult:
        """A tune of the session's history (a `FolkResult.summary()`), shown again, at this tempo."""
        abc = clip(record.get("abc"), limits.MAX_ABC)
        report = check_tune(abc)
        findings = [{"kind": f.kind, "message": f.message, "bar": f.bar, "severity": f.severity}
                    for f in report.findings]
        passed = bool(record.get("ended", True)) and report.passed
        form = summary(Reading(read_form(abc)))  # the copied run as it was measured when the tune was written
        copied = record.get("form") if isinstance(record.get("form"), dict) else {}
        form.update({key: copied[key] for key in ("copied_bars", "copied_tune")
                     if isinstance(copied.get(key), int | float)})
        title = clip(record.get("title"), limits.MAX_TITLE) or "Untitled"
        result = FolkResult(abc, title, passed, bool(record.get("ended", True)), findings,
                            int(record.get("seed") or 0), int(record.get("candidates") or 1),
                            float(record.get("seconds") or 0.0), form=form)
        return self._render(result, tempo)

    def _render(self, result: FolkResult, tempo) -> FolkResult:
        """Write the .abc file; for a tune that passed, also the sheet music, the audio, .mid and .wav."""
        stem = self._new_stem(result.title)
        abc_path = stem.with_suffix(".abc")
        abc_path.write_text(result.abc + "\n", encoding="utf-8")
        result.files.append(str(abc_path))
        if not result.passed:
            result.message = ("Sheet music and audio are made only for tunes that pass; "
                              "try another seed or more candidates.")
            return result
        tempo = limits.TEMPO.clamp(tempo)
        try:
            result.svg = render.to_svg(result.abc)
        except CharRNNError as e:
            result.message = f"No sheet music: {e.problem}."
        result.audio = render.synthesize(result.abc, tempo)
        midi_path, wav_path = stem.with_suffix(".mid"), stem.with_suffix(".wav")
        midi_path.write_bytes(render.midi_bytes(result.abc, tempo))
        wav_path.write_bytes(render.wav_bytes(result.audio))
        result.files += [str(midi_path), str(wav_path)]
        return result

    def _new_stem(self, title: str) -> Path:
        with self._counter_lock:
            self._counter += 1
            n = self._counter
            old = self.files_dir / f"{n - KEEP_FILES:06d}"  # Gradio has its own copy of older files by now
            if n > KEEP_FILES and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
        folder = self.files_dir / f"{n:06d}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder / (safe_name(title)[:40] or "tune")

    # --- look inside ----------------------------------------------------------------------------------

    def inspect(self, model, text="", cell="", find=True) -> Report:
        """What the model makes of the first limits.MAX_INSPECT characters of `text` (characters it does not know
        are left out); with `cell` (LAYER:INDEX[:KIND]) that cell's series; `find`: rank the cells."""
        inference_threads()
        lm = self.load(model)
        text = clip(text, limits.MAX_INSPECT)
        refs = [CellRef.parse(clip(cell, limits.MAX_CELL))] if cell else []
        return inspect_text(lm.model, lm.vocab, text, cells=refs, unknown="skip", char_counts=lm.char_counts,
                            find=find)

    # --- training -------------------------------------------------------------------------------------

    def corpora(self) -> list[tuple[str, str]]:
        """(label, name) of the catalogued language-model corpora that are on this server (nothing is downloaded)."""
        ready = [c for c in corpora.CATALOGUE.values() if c.task == "lm" and corpora.is_ready(c.name)]
        return [(f"{c.name} ({corpora.corpus_path(c.name).stat().st_size / 1e6:.1f} MB)", c.name) for c in ready]

    def missing_corpora(self) -> list[dict]:
        """The catalogue's language-model corpora not on this server yet: name, description, the command that
        adds it, and whether the app can build it (offline) itself."""
        return [{"name": c.name, "description": c.description, "command": c.command(), "buildable": c.kind == "build"}
                for c in corpora.CATALOGUE.values() if c.task == "lm" and not corpora.is_ready(c.name)]

    def build_corpus(self, name) -> str:
        """Build a catalogued language-model corpus that is made offline (folk); one build at a time."""
        pick(name, BUILDABLE, "the corpus to build")
        with self._build_lock:
            if corpora.is_ready(name):
                return f"The corpus {name} is here: pick it above to train on it."
            started = time.perf_counter()
            corpora.build(name, progress=False)
            return f"Built the corpus {name} in {time.perf_counter() - started:.0f} s: pick it above to train on it."

    def start_training(self, corpus=None, upload=None, upload_name=None, name="", core="lstm", size="auto",
                       time_budget=limits.BUDGET_S.default) -> dict:
        """Start the server's training job (raises charrnn.serve.jobs.Busy if one runs); returns its status."""
        pick(core, CORES, "core")
        pick(size, SIZES, "size")
        budget = limits.BUDGET_S.clamp(time_budget)
        name = clip(name, limits.MAX_NAME_TEXT)
        if upload:
            upload_name = clip(upload_name or Path(str(upload)).name, limits.MAX_NAME_TEXT)
            self.jobs.start(upload=upload, upload_name=upload_name, name=name, model=core, size=size,
                            time_budget=budget)
        else:
            self.jobs.start(corpus=clip(corpus, limits.MAX_NAME_TEXT) or None, name=name, model=core, size=size,
                            time_budget=budget)
        return self.jobs.snapshot()

    def stop_training(self) -> dict:
        self.jobs.stop()
        return self.jobs.snapshot()

    def training_status(self) -> dict:
        return self.jobs.snapshot()
