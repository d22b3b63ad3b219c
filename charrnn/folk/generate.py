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
from charrnn.decoding.processors import ForbidFirst, SamplingSettings
from charrnn.decoding.sampling import MAX_LENGTH, Guided, Prompt, Sample, generate, prepare_prompt
from charrnn.decoding.search import Greedy
from charrnn.decoding.stopping import Stopping
from charrnn.errors import CharRNNError
from charrnn.folk.check import TuneReport, check_tune
from charrnn.folk.spelling import FOLK_TUNE_TYPES, canonical_key, canonical_meter, canonical_tune_type
from charrnn.runfile import RunFile

DEFAULT_TEMPERATURE = 0.8
MAX_MUSIC = 1500  # characters of music per tune; the longest tune of the folk corpus has about 1,000
MAX_TITLE = 100
MAX_CANDIDATES = 100
MAX_REJECTED_LINES = 64  # lines the checks may send back in one tune before the model writes on unchecked
RETRIES_PER_LINE = 8  # a line drawn again this often in a row is given up: the line before it is redrawn too
END = "\n\n"  # a blank line ends a tune
PRIME = "X:1\nT:"
# The unit note length the folk corpus writes most often with each meter: 2/4 has 627 tunes in 1/16 and
# 223 in 1/8; every other meter is mostly in 1/8.
_UNITS = {"2/4": "1/16"}
_UNIT = re.compile(r"1/(?:1|2|4|8|16|32)")
_DENOMINATORS = (1, 2, 4, 8, 16, 32)
_ABC_CHARS = "X:1\nTMLK/|"  # the least a model must know to write a header and bars
# A title's " -- Type" suffix, as 896 of the folk corpus's 3,958 titles have it ("LANIGAN'S BALL -- JIG").
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

    @property
    def passed(self) -> bool:
        """The tune is complete and passed every check."""
        return self.ended and self.report.passed


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
    """The tune to keep of several candidates: the likeliest (mean log-probability per character) of those
    that passed, or of all of them if none did; the first of equals."""
    if not tunes:
        raise CharRNNError("there is no candidate tune to choose from")
    return max(tunes, key=lambda tune: (tune.passed, tune.logprob))


class FolkModel:
    """A model that writes ABC; `generate` writes checked tunes."""

    def __init__(self, model: Scorer, vocab: Vocab, config: RunFile, name: str = "the model"):
        corpus = config.corpus
        missing = vocab.unknown(_ABC_CHARS)
        if (corpus is None or corpus.name != "folk") and missing:
            trained_on = corpus.label if corpus else "another corpus"
            raise CharRNNError(f"{name} is not a folk model: it was trained on {trained_on}, and its vocabulary "
                               f"lacks {''.join(missing)!r}, which ABC needs; train one with "
                               "'charrnn train folk --out runs/folk'")
        self.model, self.vocab, self.config = model, vocab, config

    @classmethod
    def load(cls, model_dir: str | Path, device: str | torch.device = "cpu") -> FolkModel:
        """Load a run directory or shipped model folder."""
        model, vocab, config = load_model(model_dir, device)
        return cls(model, vocab, config, name=str(model_dir))

    def generate(self, meter: str = "4/4", key: str = "D", tune_type: str | None = None, start: str = "", *,
                 unit: str | None = None, title: str | None = None, temperature: float = DEFAULT_TEMPERATURE,
                 seed: int | None = None, candidates: int = 1, max_chars: int = MAX_MUSIC,
                 guided: bool = True) -> FolkTune:
        """Write `candidates` tunes with seeds seed, seed + 1, ... and return the best.

        The best is the most likely (mean log-probability per character of music) among those that pass
        the checks, or among all of them if none does. Without a title, the model writes one. Guided,
        each line of music that breaks a check is drawn again (see `_music`).
        """
        chosen = conditions(meter, key, tune_type, start, unit)
        self._check_writable(chosen, title)
        SamplingSettings(temperature)  # checks it before any work
        if not 1 <= max_chars <= MAX_LENGTH:
            raise CharRNNError(f"the length limit must be between 1 and {MAX_LENGTH:,} characters; got {max_chars}")
        if not 1 <= candidates <= MAX_CANDIDATES:
            raise CharRNNError(f"candidates must be between 1 and {MAX_CANDIDATES}; got {candidates}")
        seed = secrets.randbelow(2**31) if seed is None else seed
        started = time.perf_counter()
        tunes = [self._write(chosen, title, temperature, seed + i, max_chars, guided) for i in range(candidates)]
        return replace(choose(tunes), seconds=time.perf_counter() - started, candidates=candidates)

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
               max_chars: int, guided: bool) -> FolkTune:
        """One tune: a title (unless given), the forced header, then music up to the blank line that ends it."""
        started = time.perf_counter()
        if title is None:
            title = agreeing_title(self._title(temperature, seed), chosen.tune_type)
        forced = f"{PRIME}{title}\n{chosen.header()}"
        prompt = prepare_prompt(self.model, self.vocab, forced)
        music, redrawn = self._music(forced, prompt, temperature, seed, max_chars, guided)
        ended = (forced[-1] + music).endswith(END)
        abc = (forced + music).removesuffix(END)
        return FolkTune(abc, check_tune(abc), seed, ended, self._mean_logprob(prompt.logits, prompt.state, music),
                        time.perf_counter() - started, redrawn=redrawn)

    def _title(self, temperature: float, seed: int) -> str:
        """A title drawn from the model; it never begins with a bar line (the music's first character)."""
        prompt = prepare_prompt(self.model, self.vocab, PRIME)
        settings = SamplingSettings(temperature, seed=seed, stop=("\n",))
        bar = [self.vocab.index["|"]] if "|" in self.vocab.index else []
        return "".join(generate(self.model, self.vocab, prompt, MAX_TITLE, settings,
                                (ForbidFirst(bar),))).removesuffix("\n")

    def _music(self, forced: str, prompt: Prompt, temperature: float, seed: int, max_chars: int,
               guided: bool) -> tuple[str, int]:
        """Sample music after the forced text, up to the blank line that ends the tune or `max_chars`;
        return it and the number of lines drawn again.

        Guided, every line is checked, with the tune so far, as soon as its newline is written (see
        `LineChecks`); a line that breaks a check is drawn again (decoding.sampling.Guided).
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
        decode(self.model, strategy, prompt.logits, prompt.state, settings.processors)
        return self.vocab.decode(strategy.out[0]), checks.rejected

    def _mean_logprob(self, first_logits: torch.Tensor, state: State, music: str) -> float:
        """Mean log-probability per character of `music` after the prompt (its logits and state)."""
        ids = torch.from_numpy(self.vocab.encode(music)).view(1, -1).to(first_logits.device)
        logits = first_logits.view(1, 1, -1)
        with torch.inference_mode():
            if ids.shape[1] > 1:
                logits = torch.cat([logits, self.model(ids[:, :-1], state)[0]], dim=1)
            return F.log_softmax(logits.float(), -1).gather(-1, ids.unsqueeze(-1)).mean().item()

