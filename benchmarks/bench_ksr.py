"""Keystroke savings (KSR) of the autocomplete, for an ideal typist, on held-out text.

The protocol (as in the word-prediction literature, e.g. C-PAK, ACM TOCHI 2023):
- The typist types the held-out text from its first character to its last, one keystroke a character
  (a new line is one keystroke: Enter), into a text box that behaves as the page's does (`Page`).
- Before each keystroke the typist looks at the suggestions shown for the text typed so far (the top
  `num`, 3; "separate" phrases add one more line). If one of them is exactly what comes next, up to
  the end of a word (it ends in a space, punctuation or a new line, or the character after it in the
  text does), the typist accepts it with one keystroke (Tab or a tap); of several, the one that leaves
  the most of the text typed.
- With auto-space, accepting a suggestion the model expects a space after also types that space. Where
  the text has punctuation (. , ; : ! ?) or a new line there instead, typing it takes the space's place,
  and a punctuation mark moves the space after itself (phone keyboards' "smart punctuation", and the
  page's: web/static/autocomplete.js). Any other character there, or a moved space the text does not
  want, costs a keystroke (Backspace) to remove.
- Without word-start suggestions, suggestions are shown only inside a word (after its first letter).
- With adaptation, the model learns from the text already typed (dynamic evaluation: one SGD step per
  64 characters, charrnn/training/adapt.py) and suggests with what it learned.
- Nothing looks ahead: the suggestions at a position come from the text before it alone.
- KSR = 1 - keystrokes / characters.

Suggestions come from charrnn.decoding.suggest (what the page, the API and `charrnn complete` offer), on
the model's state after the text so far, carried along the text one `model.step` a character as the
page's cached states are. Without adaptation they depend only on the text before a position, so their
searches run once, batched over many positions (the same search, many rows), and every variant chooses
from them. `ms p50/p95` times single requests as the server makes them (the search and the choice, the
phrase included, one thread) at the first `--timed` positions where a suggestion is asked for, the
variants in turn at each position, so that the machine's load falls on all alike; "the search to the end
of the word alone" is the search the suggestions came from before they carried punctuation.

    python -m benchmarks.bench_ksr [--model models/shakespeare] [--text TEXT] [--chars 10000] [--variants all]
    python -m benchmarks.bench_ksr --model models/pystdlib   # source code: after `charrnn corpora build pystdlib`

The held-out text is the last part of the model's own corpus (its run's val split), unless --text names another.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from benchmarks.common import table
from charrnn import corpora
from charrnn.checkpoint import load_model
from charrnn.decoding.beam import WORD_END, complete
from charrnn.decoding.sampling import Prompt, prepare_prompt
from charrnn.decoding.suggest import Suggestion, SuggestSettings, in_word, offer, search
from charrnn.files import sha256_file
from charrnn.models.rnn import PRECISIONS, serving_precision
from charrnn.runfile import RunFile
from charrnn.training.adapt import Adapter, AdaptSettings
from tests.helpers import SHAKESPEARE
from tests.load_clients import percentile

SMART = ".,;:!?\n"  # typed right after an auto-space, each takes the space's place (web/static/autocomplete.js)
BATCH = 32  # positions searched together when the searches are computed ahead
WORD_SEARCH = "the search to the end of the word alone (decoding.beam.complete)"


@dataclass(frozen=True)
class Variant:
    name: str
    settings: dict = field(default_factory=dict)  # SuggestSettings fields that differ from the defaults
    auto_space: bool = True
    move_space: bool = True  # punctuation typed after an auto-space moves it on (False: only takes its place)
    adapt: bool = False


WORDS = dict(rank="probability", punctuation=False, phrases="off")  # the likeliest words, as before ranking
VARIANTS = [
    Variant("inside words only, the likeliest words", dict(WORDS, word_start=False), auto_space=False),
    Variant("+ next word at word starts", WORDS, auto_space=False),
    Variant("+ auto-space (punctuation takes its place)", WORDS, move_space=False),
    Variant("+ punctuation moves the auto-space after itself", WORDS),
    Variant("+ a word with its punctuation and new line, where likelier than not", dict(WORDS, punctuation=True)),
    Variant("ranked by expected keystrokes saved, words with punctuation", dict(phrases="off")),
    Variant("+ phrases among them (0.5): the default", {}),
    Variant("+ phrases beside them instead (3 + 1 phrase, 0.5)", dict(phrases="separate")),
    Variant("the default without auto-space", {}, auto_space=False),
    Variant("the default + adaptation", {}, adapt=True),
    Variant("the default, search width 16 (for reference)", dict(width=16)),
    Variant("the default with 4 shown (for reference: not the protocol)", dict(num=4)),
]


class Page:
    """The text box as web/static/autocomplete.js keeps it: the text, and whether it ends in an auto-space."""

    def __init__(self, move_space: bool = True):
        self.text, self.spaced, self.move_space = "", False, move_space

    def accept(self, s: Suggestion, auto_space: bool) -> None:
        """Tab or a click: the suggestion, and the space after it if the model expects one."""
        space = auto_space and s.space
        self.text += s.text + (" " if space else "")
        self.spaced = space

    def type(self, ch: str) -> None:
        """One key. Right after an auto-space, punctuation or Enter takes its place (punctuation moves it on)."""
        if self.spaced and ch in SMART:
            self.spaced = self.move_space and ch != "\n"
            self.text = self.text[:-1] + ch + (" " if self.spaced else "")
        else:
            self.text += ch
            self.spaced = False

    def backspace(self) -> None:
        self.text = self.text[:-1]
        self.spaced = False


def ends_word(text: str, pos: int, s: Suggestion) -> bool:
    """Whether `s` is exactly what follows `pos` up to the end of a word."""
    end = pos + len(s.text)
    return text.startswith(s.text, pos) and (s.text[-1] in WORD_END or end == len(text) or text[end] in WORD_END)


def typed_after(text: str, pos: int, s: Suggestion, auto_space: bool) -> int:
    """How far into `text` accepting `s` at `pos` gets the typist, net of the Backspace an unwanted space costs."""
    end = pos + len(s.text)
    if not (auto_space and s.space) or end == len(text):
        return end
    if text[end] == " ":
        return end + 1
    return end if text[end] in SMART else end - 1


def accepted(text: str, pos: int, shown: list[Suggestion], auto_space: bool) -> tuple[int, Suggestion | None]:
    """The suggestion the ideal typist accepts at `pos` and how many characters it types (0, None: none)."""
    best, reach = None, pos + 1  # one keystroke types one character anyway
    for s in shown:
        if ends_word(text, pos, s) and (got := typed_after(text, pos, s, auto_space)) > reach:
            best, reach = s, got
    return (reach - pos, best) if best else (0, None)


class Searches:
    """Each position's search (suggest.search), computed once: ahead, batched, for a model that does not adapt."""

    def __init__(self, model, vocab, text: str, char_counts):
        self.model, self.vocab, self.text = model, vocab, text
        self.prompts: list[Prompt] = []
        prompt = prepare_prompt(model, vocab, "", char_counts=char_counts)
        logits, state = prompt.logits, prompt.state
        with torch.inference_mode():
            for i, ch in enumerate(text):
                self.prompts.append(Prompt(logits, state, text[max(0, i - 64):i]))
                logits, state = model.step(torch.tensor([vocab.index[ch]]), state)
        self.found: dict[tuple, dict[int, list]] = {}

    def at(self, settings: SuggestSettings, pos: int) -> list:
        key = tuple(settings.search_args.values())
        if key not in self.found:
            wanted = [i for i, ch in enumerate(self.text) if not ch.isspace()]
            self.found[key] = {}
            for k in range(0, len(wanted), BATCH):
                chunk = wanted[k : k + BATCH]
                for i, found in zip(chunk, search(self.model, self.vocab, [self.prompts[i] for i in chunk],
                                                  settings), strict=True):
                    self.found[key][i] = found
        return self.found[key][pos]


def latency(model, vocab, searches: Searches, variants: list[Variant], settings: SuggestSettings,
            timed: int) -> dict[str, tuple[float, float]]:
    """Each variant's p50 and p95 ms for one suggestion request, timed in turn at the first `timed` positions
    where the text goes on with a word; and the search to the end of the word alone, for comparison."""
    contenders = {v.name: replace(settings, **v.settings, auto_space=v.auto_space) for v in variants}
    ms: dict[str, list[float]] = {name: [] for name in [*contenders, WORD_SEARCH]}
    positions = [i for i, ch in enumerate(searches.text) if not ch.isspace()][:timed]
    for pos in positions:
        asked = searches.prompts[pos]
        for name, chosen in contenders.items():
            if not (chosen.word_start or in_word(asked.text)):
                continue
            t0 = time.perf_counter()
            offer(model, vocab, asked, search(model, vocab, [asked], chosen)[0], chosen)
            ms[name].append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        complete(model, vocab, asked, settings.num, "word", settings.max_len)
        ms[WORD_SEARCH].append((time.perf_counter() - t0) * 1000)
    return {name: (statistics.median(times), percentile(times, 95)) for name, times in ms.items() if times}


def simulate(model, vocab, text: str, variant: Variant, settings: SuggestSettings, adapt: AdaptSettings,
             searches: Searches | None, char_counts=None) -> dict:
    """Type `text` as the ideal typist does under `variant`: keystrokes, KSR, what was typed by hand, and where
    the words typed by hand stood. Without adaptation, the searches come from `searches` (computed once)."""
    settings = replace(settings, **variant.settings, auto_space=variant.auto_space)
    adapter = Adapter(model, adapt) if variant.adapt else None
    prompt = prepare_prompt(model, vocab, "", char_counts=char_counts)
    logits, state, at = prompt.logits, prompt.state, 0  # the model's state after text[:at]
    page, keys, kinds, by_hand, missed = Page(variant.move_space), 0, Counter(), Counter(), Counter()
    adapt_ms = []
    while page.text != text:
        pos = len(page.text)
        if not text.startswith(page.text):  # an auto-space the text does not want
            keys += 1
            if page.spaced and text.startswith(page.text[:-1]) and text[pos - 1] in SMART:
                by_hand[_category(text, pos - 1)] += 1
                page.type(text[pos - 1])  # the punctuation or new line the text wants takes its place
            else:
                by_hand["Backspace"] += 1
                page.backspace()
            continue
        current = adapter.model if adapter else model
        with torch.inference_mode():
            for ch in text[at:pos]:
                logits, state = current.step(torch.tensor([vocab.index[ch]]), state)
        at = pos
        if adapter:
            t0 = time.perf_counter()
            if adapter.follow(text[:pos], vocab.encode):
                adapt_ms.append((time.perf_counter() - t0) * 1000)
        best, found = None, []
        # Nothing is suggested where a space or new line comes next (they are typed): no need to ask there.
        if not text[pos].isspace() and (settings.word_start or in_word(text[:pos])):
            asked = Prompt(logits, state, text[max(0, pos - 64) : pos])
            found = search(current, vocab, [asked], settings)[0] if adapter else searches.at(settings, pos)
            shown = offer(current, vocab, asked, found, settings)
            _, best = accepted(text, pos, shown, variant.auto_space)
        keys += 1
        if best is not None:
            page.accept(best, variant.auto_space)
            kinds[best.kind] += 1
        else:
            by_hand[_category(text, pos)] += 1
            if found and text[pos] not in WORD_END:
                missed[_rank(found, text, pos)] += 1
            page.type(text[pos])
    return {"variant": variant.name, "chars": len(text), "keystrokes": keys, "ksr": 1 - keys / len(text),
            "accepted": dict(kinds), "by_hand": dict(by_hand), "missed": dict(missed),
            "adapt_steps": len(adapt_ms), "adapt_ms_p50": statistics.median(adapt_ms) if adapt_ms else None}


def _rank(found: list, text: str, pos: int) -> str:
    """Where a letter was typed by hand: where the word it begins or goes on with stood among the words the search
    found, by probability (summed over what follows each): in the first 3, 4th to 10th, or not found."""
    end = pos
    while end < len(text) and text[end] not in WORD_END:
        end += 1
    words: Counter = Counter()
    for c in found:
        word = c.text[: next((i for i, ch in enumerate(c.text) if ch in WORD_END), len(c.text))]
        if c.ended and word:
            words[word] += c.prob
    ranked = [w for w, _ in words.most_common()]
    if text[pos:end] not in ranked:
        return "not found"
    return "first 3" if ranked.index(text[pos:end]) < 3 else "4th-10th"


def _category(text: str, pos: int) -> str:
    """What kind of character the typist typed by hand (where the keystrokes that are left go)."""
    ch = text[pos]
    if ch == " ":
        return "space"
    if ch == "\n":
        return "new line"
    if ch in WORD_END:
        return "punctuation"
    return "first letter" if pos == 0 or text[pos - 1] in WORD_END else "letter"


def held_out(path: Path, chars: int, val_frac: float = 0.1) -> str:
    """The first `chars` characters of the last `val_frac` of the file (the split the model never trained on)."""
    text = path.read_text(encoding="utf-8")
    return text[len(text) - int(len(text) * val_frac) :][:chars]


def corpus_of(model: Path, run: RunFile, given: Path | None) -> Path:
    """The text whose held-out part is typed: `given`, else the model's own corpus as it trained on it (checked by
    its sha256): corpora/NAME.txt (`charrnn corpora build pystdlib` builds the code; it must be the same Python's
    standard library) or, for tinyshakespeare, the shared folder's copy."""
    if given is not None:
        return given
    name = run.corpus.name if run.corpus else None
    if name is None:
        raise SystemExit(f"{model} does not name a catalogue corpus: give --text")
    places = [corpora.corpus_path(name), *([SHAKESPEARE] if name == "shakespeare" else [])]
    found = next((p for p in places if p.is_file() and sha256_file(p) == run.corpus.sha256), None)
    if found is None:
        raise SystemExit(f"the {name} text {model} was trained on is in none of {', '.join(map(str, places))}: "
                         f"build or fetch it (`charrnn corpora list`), or give --text")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/shakespeare"))
    parser.add_argument("--text", type=Path, help="the text whose held-out part is typed (default: the model's corpus)")
    parser.add_argument("--chars", type=int, default=10_000)
    parser.add_argument("--variants", default="all", help="comma-separated indices into VARIANTS, or all")
    parser.add_argument("--num", type=int, default=3)
    parser.add_argument("--phrase-prob", type=float, default=SuggestSettings.phrase_prob)
    parser.add_argument("--lr", type=float, default=AdaptSettings.lr)
    parser.add_argument("--decay", type=float, default=AdaptSettings.decay)
    parser.add_argument("--timed", type=int, default=300, help="positions where each variant's requests are timed")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="the step's weights (default: the app's, int8 on an x86 CPU; models/rnn.py)")
    parser.add_argument("--latency-only", action="store_true", help="time the requests; do not type the text")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, vocab, run = load_model(args.model)
    model.step_precision = args.precision or serving_precision(model.device)
    source = corpus_of(args.model, run, args.text)
    text = "".join(c for c in held_out(source, args.chars, run.train.get("val_frac", 0.1)) if c in vocab.index)
    chosen = VARIANTS if args.variants == "all" else [VARIANTS[int(i)] for i in args.variants.split(",")]
    settings = SuggestSettings(num=args.num, phrase_prob=args.phrase_prob)
    adapt = AdaptSettings(args.lr, args.decay)
    searches = Searches(model, vocab, text, run.char_counts)
    times = latency(model, vocab, searches, chosen, settings, args.timed)
    if args.latency_only:
        print(table([[name, f"{p50:.1f} / {p95:.1f}"] for name, (p50, p95) in times.items()],
                    ["suggestions", "ms p50 / p95"]))
        return
    rows = []
    for variant in chosen:
        result = simulate(model, vocab, text, variant, settings, adapt, searches, run.char_counts)
        result["ms_p50"], result["ms_p95"] = times.get(variant.name, (None, None))
        rows.append(result)
        if args.json:
            print(json.dumps(result), flush=True)
    print(f"{args.model} on {len(text):,} held-out characters of {source.name}, top {args.num}, "
          f"phrase_prob {args.phrase_prob}, adaptation lr {args.lr} decay {args.decay}, {args.threads} thread(s), "
          f"{model.step_precision} steps; "
          f"settings {asdict(settings)}")
    print(table([[r["variant"], f"{100 * r['ksr']:.1f}%", ", ".join(f"{k} {n:,}" for k, n in r["accepted"].items()),
                  ", ".join(f"{k} {n:,}" for k, n in sorted(r["by_hand"].items())),
                  f"{r['ms_p50']:.1f} / {r['ms_p95']:.1f}" if r["ms_p50"] is not None else "-",
                  f"{r['adapt_ms_p50']:.0f}" if r["adapt_ms_p50"] is not None else "-"] for r in rows]
                + [[name, "", "", "", f"{p50:.1f} / {p95:.1f}", "-"] for name, (p50, p95) in times.items()
                   if name == WORD_SEARCH],
                ["suggestions", "KSR", "accepted", "typed by hand", "ms p50 / p95", "ms per adaptation step"]))
    print(table([[r["variant"], ", ".join(f"{k} {n:,}" for k, n in sorted(r["missed"].items()))] for r in rows],
                ["suggestions", "letters typed by hand: the word among the search's words"]))


if __name__ == "__main__":
    main()
