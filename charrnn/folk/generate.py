"""Folk tunes: a model trained on ABC writes a new tune in the meter, key and type a musician picks.

The prime follows the folk corpus's header order X, T, R, M, L, K: the model writes a title after
"X:1\\nT:", the chosen R:, M:, L: and K: lines (and any first bars) are forced, and the model writes the
music up to the blank line that ends a tune. The title's " -- Type" suffix, which the corpus often writes,
is made to name the chosen type (`agreeing_title`). Every tune is run through charrnn.folk.check's checks; with
several candidates, the passing one the model finds most likely (mean log-probability per character
of its music) is kept.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from charrnn.checkpoint import load_model
from charrnn.data import Vocab
from charrnn.decoding.interface import Scorer, State
from charrnn.decoding.loop import Rows, decode
from charrnn.decoding.processors import ForbidFirst, LogitsProcessor, SamplingSettings
from charrnn.decoding.sampling import MAX_LENGTH, Guided, Prompt, Sample, generate, prepare_prompt
from charrnn.decoding.search import Greedy
from charrnn.decoding.stopping import Stopping
from charrnn.errors import CharRNNError
from charrnn.folk.check import TuneReport, check_tune
from charrnn.folk.constraints import FormPlan, form_plan, form_processors
from charrnn.folk.facts import CorpusFacts
from charrnn.folk.form import Form, closed_parts, read_form
from charrnn.folk.originality import COPY_LIMIT_BARS, Copied
from charrnn.folk.spelling import FOLK_TUNE_TYPES, canonical_key, canonical_meter, canonical_tune_type
from charrnn.runfile import RunFile

DEFAULT_TEMPERATURE = 0.8
MAX_MUSIC = 1500  # characters of music per tune; the longest tune of the folk corpus has about 1,000
MAX_TITLE = 100
MAX_CANDIDATES = 100
MAX_REJECTED_LINES = 64  # lines the checks may send back in one tune before the model writes on unchecked
MAX_COPY_REDRAWS = 8  # tunes drawn again because they copy the corpus, before a copy is let through
RETRIES_PER_LINE = 8  # a line drawn again this often in a row is given up: the line before it is redrawn too
END = "\n\n"  # a blank line ends a tune
PRIME = "X:1\nT:"
# The unit note length the folk corpus writes most often with each meter: 2/4 has 627 tunes in 1/16 and
# 223 in 1/8; every other meter is mostly in 1/8.
_UNITS = {"2/4": "1/16"}
_UNIT = re.compile(r"1/(?:1|2|4|8|16|32)")
_DENOMINATORS = (1, 2, 4, 8, 16, 32)
_ABC_CHARS = "X:1\nTMLK/|"  # the least a model must know to write a header and bars
# A title's " -- Type" suffix, as 866 of the folk corpus's 3,691 titles have it ("LANIGAN'S BALL -- JIG").
_TITLE_SUFFIX = re.compile(r"\s+--\s*([A-Za-z][A-Za-z -]*)")


@dataclass(frozen=True)
class Conditions:
    """A musician's choices, spelled as the folk corpus spells them."""

    meter: str  # "6/8"
    key: str  # "Dmix"
    unit: str  # "1/8"
    tune_type: str | None = None  # "jig"
    start: str = ""  # the first bars, e.g. "|:A2B c2d|"

    def header(self) -> str:
        """The lines forced after the title, then the first bars."""
        rhythm = f"R:{self.tune_type}\n" if self.tune_type else ""
        return f"{rhythm}M:{self.meter}\nL:{self.unit}\nK:{self.key}\n{self.start}"


def conditions(meter: str = "4/4", key: str = "D", tune_type: str | None = None, start: str = "",
               unit: str | None = None) -> Conditions:
    """Check a musician's choices and spell them as the corpus does; a CharRNNError says what is wrong."""
    spelled_meter = canonical_meter(meter)
    if spelled_meter is None or int(spelled_meter.split("/")[1]) not in _DENOMINATORS:
        raise CharRNNError(f"unknown meter {meter!r}: give a time signature such as 4/4, 2/2, 6/8, 3/4, 9/8 or 2/4 "
                           "(C is 4/4, C| is 2/2)")
    spelled_key = canonical_key(key)
    if spelled_key is None:
        raise CharRNNError(f"unknown key {key!r}: give a tonic A-G (with # or b if need be) and a mode, e.g. D, "
                           "D major, Em, E minor, Ador, A dorian, Gmix, G mixolydian; the modes are major, minor, "
                           "dorian, mixolydian, lydian, phrygian and locrian")
    if tune_type is not None:
        tune_type = canonical_tune_type(tune_type)
        if tune_type not in FOLK_TUNE_TYPES:
            raise CharRNNError(f"unknown tune type {tune_type!r}: the folk corpus has {', '.join(FOLK_TUNE_TYPES)}")
    if unit is not None and not _UNIT.fullmatch(unit.strip()):
        raise CharRNNError(f"unit note length {unit!r} is not one of 1/1, 1/2, 1/4, 1/8, 1/16, 1/32")
    if "\n\n" in start or start.strip().startswith(("X:", "T:", "M:", "L:", "K:")):
        raise CharRNNError("the first bars must be music only: no header fields and no blank line, which ends a tune")
    unit = unit.strip() if unit is not None else _UNITS.get(spelled_meter, "1/8")
    return Conditions(spelled_meter, spelled_key, unit, tune_type, start)


class LineChecks:
    """Folk's guide for guided sampling: the tune so far is checked each time a line of music ends.

    A line that breaks a check is drawn again from the model state where it began - or where the line
    holding the first faulty bar began, when the fault lies in an earlier line (a short last bar).
    This is rejection sampling: a kept line is the model's own draw, given that the tune still
    passes. A line that fails RETRIES_PER_LINE times in a row takes the line before it along (some
    endings cannot follow some beginnings), and after MAX_REJECTED_LINES the model writes on unchecked.
    """

    def __init__(self, vocab: Vocab, forced: str):
        self.vocab, self.forced = vocab, forced
        self.bars = [0]  # bars closed before each kept line began, and before the line being written
        self.rejected = self.in_a_row = 0

    def __call__(self, tokens: list[int]) -> int | None:
        """None keeps the line just ended (`tokens`: the music so far); k drops it and the k lines before it."""
        if self.rejected >= MAX_REJECTED_LINES:
            self.bars.append(0)
            return None
        music = self.vocab.decode(tokens)
        done = (self.forced[-1] + music).endswith(END)
        report = check_tune((self.forced + music).removesuffix(END))
        fatal = [f for f in report.findings if f.severity == "error" and (done or not f.unfinished)]
        if not fatal:
            self.bars.append(report.bars)
            self.in_a_row = 0
            return None
        self.rejected += 1
        self.in_a_row += 1
        # A repeat or slur still open at the end: draw the last line again, to close it.
        faulty = [f.bar if not f.unfinished else self.bars[-1] for f in fatal]
        first = min(faulty) if None not in faulty else None
        kept = len(self.bars)
        while first is not None and kept > 1 and self.bars[kept - 1] >= first:
            kept -= 1
        if self.in_a_row % RETRIES_PER_LINE == 0 and kept > 1:
            kept -= 1
        back = len(self.bars) - kept
        del self.bars[kept:]
        return back


@dataclass(frozen=True)
class FolkTune:
    """A generated tune and what the checks found in it."""

    abc: str  # from X:1 to the last line of music, without the blank line that ends it
    report: TuneReport
    seed: int  # sampling with this seed (and the same choices) writes the same tune
    ended: bool  # the model ended the tune itself, rather than running into the length limit
    logprob: float  # mean natural log-probability per character of the music, under the model
    seconds: float  # time to write it, with all candidates
    candidates: int = 1  # how many tunes were sampled to choose this one
    redrawn: int = 0  # lines of music the checks sent back to be drawn again (guided sampling)
    plan: FormPlan | None = None  # the form the tune was held to (None: the model's own)
    copied: Copied | None = None  # its longest run shared with a corpus tune; None: no corpus index here
    rejected: int = 0  # tunes drawn and rejected as copies before this one

    @property
    def passed(self) -> bool:
        """The tune is complete and passed every check."""
        return self.ended and self.report.passed

    @property
    def form(self) -> Form:
        return read_form(self.abc)

    @property
    def copies(self) -> bool:
        """It shares COPY_LIMIT_BARS bars or more with a corpus tune."""
        return self.copied is not None and self.copied.bars >= COPY_LIMIT_BARS

    def form_score(self) -> int:
        """How much of its plan the tune keeps: the number of parts, each part's bars, the ending on the
        tonic (one point each)."""
        form = self.form
        if self.plan is None:
            return int(form.ends_on_tonic)
        bars = tuple(part.bars for part in form.parts)
        return int(len(bars) == self.plan.parts) + int(bars == self.plan.bars) + int(form.ends_on_tonic)


def title_type(title: str) -> tuple[int, int, str] | None:
    """The tune type a title's " -- Type" suffix names: (start, end) of its words in the title, and the type;
    None if the title has no such suffix ("-- GWINE TO DE SHOW." is a subtitle, not a type)."""
    match = _TITLE_SUFFIX.search(title)
    if match is None:
        return None
    words = list(re.finditer(r"[A-Za-z]+", match[1]))
    for n in range(len(words), 0, -1):  # the longest run of words that names a type: "HIGHLAND FLING"
        end = match.start(1) + words[n - 1].end()
        named = canonical_tune_type(title[match.start(1):end])
        if named in FOLK_TUNE_TYPES:
            return match.start(1), end, named
    return None


def agreeing_title(title: str, tune_type: str | None) -> str:
    """The title with its " -- Type" suffix naming `tune_type`, in the suffix's own case ("-- REEL" becomes
    "-- JIG" for a jig); without a type, the suffix goes, since the tune declares none."""
    named = title_type(title)
    if named is None:
        return title
    start, end, _ = named
    if tune_type is None:
        return title[:start].rstrip().removesuffix("--").rstrip()
    written = title[start:end]
    spelled = tune_type.upper() if written.isupper() else tune_type if written.islower() else tune_type.title()
    return title[:start] + spelled + title[end:]


def choose(tunes: Sequence[FolkTune]) -> FolkTune:
    """The tune to keep of several candidates: of those that pass the checks (or all, if none does), those
    that copy least from the corpus, then keep their form best (`form_score`); of those, the likeliest
    (mean log-probability per character); the first of equals."""
    if not tunes:
        raise CharRNNError("there is no candidate tune to choose from")
    return max(tunes, key=lambda tune: (tune.passed, not tune.copies, tune.form_score(), tune.logprob))


class FolkModel:
    """A model that writes ABC; `generate` writes checked tunes."""

    def __init__(self, model: Scorer, vocab: Vocab, config: RunFile, name: str = "the model",
                 facts: CorpusFacts | None = None):
        corpus = config.corpus
        missing = vocab.unknown(_ABC_CHARS)
        if (corpus is None or corpus.name != "folk") and missing:
            trained_on = corpus.label if corpus else "another corpus"
            raise CharRNNError(f"{name} is not a folk model: it was trained on {trained_on}, and its vocabulary "
                               f"lacks {''.join(missing)!r}, which ABC needs",
                               "; train one with 'charrnn train folk --out runs/folk'")
        self.model, self.vocab, self.config = model, vocab, config
        self.facts = facts if facts is not None else CorpusFacts.find(config)

    @classmethod
    def load(cls, model_dir: str | Path, device: str | torch.device = "cpu") -> FolkModel:
        """Load a run directory or shipped model folder (with the corpus facts it carries, if any)."""
        model, vocab, config = load_model(model_dir, device)
        return cls(model, vocab, config, name=str(model_dir), facts=CorpusFacts.find(config, model_dir))

    def generate(self, meter: str = "4/4", key: str = "D", tune_type: str | None = None, start: str = "", *,
                 unit: str | None = None, title: str | None = None, temperature: float = DEFAULT_TEMPERATURE,
                 seed: int | None = None, candidates: int = 1, max_chars: int = MAX_MUSIC,
                 guided: bool = True, parts: int | None = None, bars: int | None = None, form: str | None = None,
                 keep_form: bool = True, allow_copies: bool = False) -> FolkTune:
        """Write `candidates` tunes with seeds seed, seed + 1, ... and return the best (see `choose`).

        Without a title, the model writes one. Guided, each line of music that breaks a check is drawn
        again (see `_music`). With keep_form, the model is held to a form (constraints.py): `parts` parts
        of `bars` bars, or a form string such as AABB; what is not given is drawn from the layouts the
        corpus has for the type and meter. A tune that copies COPY_LIMIT_BARS bars or more of a corpus
        tune is drawn again with the next seed (up to MAX_COPY_REDRAWS times) unless allow_copies.
        """
        chosen = conditions(meter, key, tune_type, start, unit)
        self._check_writable(chosen, title)
        SamplingSettings(temperature)  # checks it before any work
        if not 1 <= max_chars <= MAX_LENGTH:
            raise CharRNNError(f"the length limit must be between 1 and {MAX_LENGTH:,} characters; got {max_chars}")
        if not 1 <= candidates <= MAX_CANDIDATES:
            raise CharRNNError(f"candidates must be between 1 and {MAX_CANDIDATES}; got {candidates}")
        form_plan(parts, bars, form)  # checks the choices before any work
        seed = secrets.randbelow(2**31) if seed is None else seed
        started = time.perf_counter()
        tunes: list[FolkTune] = []
        rejected = 0
        next_seed = seed
        # Without the corpus's layouts the form is held only to what the musician asked for.
        keep_form = keep_form and bool(self.facts.layouts or parts or bars or form)
        layouts = self.facts.layouts_for(chosen.tune_type, chosen.meter)
        given = tuple(part.bars for part in closed_parts(f"{chosen.header()}\n"))  # parts the first bars close
        while len(tunes) < candidates:
            plan = form_plan(parts, bars, form, layouts, next_seed, given) if keep_form else None
            tune = self._write(chosen, title, temperature, next_seed, max_chars, guided, plan)
            next_seed += 1
            if tune.copies and not allow_copies and rejected < MAX_COPY_REDRAWS:
                rejected += 1
                continue
            tunes.append(tune)
        return replace(choose(tunes), seconds=time.perf_counter() - started, candidates=candidates, rejected=rejected)

    def _check_writable(self, chosen: Conditions, title: str | None) -> None:
        """Every character that would be forced on the model must be one it knows."""
        if title is not None and "\n" in title:
            raise CharRNNError("the title must be one line")
        rhythm = f"R:{chosen.tune_type}" if chosen.tune_type else ""
        for what, text in (("the meter", f"M:{chosen.meter}"), ("the key", f"K:{chosen.key}"),
                           ("the unit length", f"L:{chosen.unit}"), ("the tune type", rhythm),
                           ("the first bars", chosen.start), ("the title", title or "")):
            missing = self.vocab.unknown(text)
            if missing:
                raise CharRNNError(f"this model cannot write {what} {text!r}: it never saw {''.join(missing)!r}")

    def _write(self, chosen: Conditions, title: str | None, temperature: float, seed: int,
               max_chars: int, guided: bool, plan: FormPlan | None) -> FolkTune:
        """One tune: a title (unless given), the forced header, then music up to the blank line that ends it."""
        started = time.perf_counter()
        if title is None:
            title = agreeing_title(self._title(temperature, seed), chosen.tune_type)
        forced = f"{PRIME}{title}\n{chosen.header()}"
        prompt = prepare_prompt(self.model, self.vocab, forced)
        header = forced.removesuffix(chosen.start)
        processors = form_processors(self.vocab, header, plan, chosen.start) if plan is not None else ()
        music, redrawn = self._music(forced, prompt, temperature, seed, max_chars, guided, processors)
        ended = (forced[-1] + music).endswith(END)
        abc = (forced + music).removesuffix(END)
        index = self.facts.index
        return FolkTune(abc, check_tune(abc), seed, ended, self._mean_logprob(prompt.logits, prompt.state, music),
                        time.perf_counter() - started, redrawn=redrawn, plan=plan,
                        copied=index.longest_copy(abc) if index is not None else None)

    def _title(self, temperature: float, seed: int) -> str:
        """A title drawn from the model; it never begins with a bar line (the music's first character)."""
        prompt = prepare_prompt(self.model, self.vocab, PRIME)
        settings = SamplingSettings(temperature, seed=seed, stop=("\n",))
        bar = [self.vocab.index["|"]] if "|" in self.vocab.index else []
        return "".join(generate(self.model, self.vocab, prompt, MAX_TITLE, settings,
                                (ForbidFirst(bar),))).removesuffix("\n")

    def _music(self, forced: str, prompt: Prompt, temperature: float, seed: int, max_chars: int,
               guided: bool, form: Sequence[LogitsProcessor] = ()) -> tuple[str, int]:
        """Sample music after the forced text, up to the blank line that ends the tune or `max_chars`;
        return it and the number of lines drawn again.

        Guided, every line is checked, with the tune so far, as soon as its newline is written (see
        `LineChecks`); a line that breaks a check is drawn again (decoding.sampling.Guided).
        The `form` processors (constraints.py) see the music written so far before each draw.
        """
        settings = SamplingSettings(temperature)
        generator = torch.Generator(device=prompt.logits.device)
        generator.manual_seed(seed)
        stop = Stopping.text(self.vocab, max_chars, (END,), before=forced)
        checks = LineChecks(self.vocab, forced)
        if settings.greedy:  # greedy would draw a rejected line again as it was: nothing to guide
            strategy: Rows = Greedy(stop, scored=False)
        elif guided:
            strategy = Guided(stop, generator, self.vocab.index["\n"], checks)
        else:
            strategy = Sample(stop, generator)
        decode(self.model, strategy, prompt.logits, prompt.state, (*form, *settings.processors))
        return self.vocab.decode(strategy.out[0]), checks.rejected

    def _mean_logprob(self, first_logits: torch.Tensor, state: State, music: str) -> float:
        """Mean log-probability per character of `music` after the prompt (its logits and state)."""
        ids = torch.from_numpy(self.vocab.encode(music)).view(1, -1).to(first_logits.device)
        logits = first_logits.view(1, 1, -1)
        with torch.inference_mode():
            if ids.shape[1] > 1:
                logits = torch.cat([logits, self.model(ids[:, :-1], state)[0]], dim=1)
            return F.log_softmax(logits.float(), -1).gather(-1, ids.unsqueeze(-1)).mean().item()

