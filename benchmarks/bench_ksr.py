"""Keystroke savings (KSR) of the autocomplete, for an ideal typist, on held-out text.

The protocol (as in the word-prediction literature, e.g. C-PAK, ACM TOCHI 2023):
- The typist types the held-out text from its first character to its last, one keystroke a character
  (a new line is one keystroke: Enter).
- Before each keystroke the typist looks at the suggestions shown for the text typed so far (the top
  `num`, 3; "separate" phrases add one more line). If one of them is exactly what comes next, up to
  the end of a word (the character after it ends the word: a space, punctuation, a new line, or the
  end of the text), the typist accepts it with one keystroke (Tab or a tap); of several, the longest.
- With auto-space, accepting a suggestion whose likeliest next character is a space also types that
  space. Where the text has punctuation or a new line there instead, typing it replaces the space
  (phone keyboards' "smart punctuation", and the page's): no keystroke is lost.
- Without word-start suggestions, suggestions are shown only inside a word (after its first letter).
- With adaptation, the model learns from the text already typed (dynamic evaluation: one SGD step per
  64 characters, charrnn/training/adapt.py) and suggests with what it learned.
- KSR = 1 - keystrokes / characters.

Suggestions come from charrnn.decoding.suggest, on a state carried along the text one `model.step`
a character (the autocomplete's cached-state path), so a keystroke costs one step and one search.
`ms p50/p95` is the time of one suggestion request (the word search after the cached state, and the
phrase, as the server spends it, one thread; at least the first 300 requests of each variant);
adaptation steps run off the keystroke path and are timed apart.

    python -m benchmarks.bench_ksr [--model models/shakespeare] [--text TEXT] [--chars 10000] [--variants all]
    python -m benchmarks.bench_ksr --model models/pystdlib   # source code: after `charrnn corpora build pystdlib`

The held-out text is the last part of the model's own corpus (its run's val split), unless --text names another.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from benchmarks.common import table
from charrnn import corpora
from charrnn.checkpoint import load_model
from charrnn.decoding.beam import WORD_END
from charrnn.decoding.sampling import Prompt, prepare_prompt
from charrnn.decoding.suggest import Suggestion, SuggestSettings, arrange, in_word, suggest
from charrnn.files import sha256_file
from charrnn.runfile import RunFile
from charrnn.training.adapt import Adapter, AdaptSettings
from tests.helpers import SHAKESPEARE
from tests.load_clients import percentile


@dataclass(frozen=True)
class Variant:
    name: str
    word_start: bool = True
    auto_space: bool = True
    phrases: str = "off"
    adapt: bool = False


VARIANTS = [
    Variant("inside words only", word_start=False, auto_space=False),
    Variant("+ next word at word starts", auto_space=False),
    Variant("+ auto-space", auto_space=True),
    Variant("+ phrases, separate (3 words + 1 phrase)", phrases="separate"),
    Variant("+ phrases, together (3 in all)", phrases="together"),
    Variant("next word, no auto-space, + adaptation", auto_space=False, adapt=True),
    Variant("next word, auto-space, + adaptation", adapt=True),
]


def accepted(text: str, pos: int, shown: list[Suggestion], auto_space: bool) -> tuple[int, Suggestion | None]:
    """How many characters the best acceptable suggestion types at `pos` (0: none is exactly what comes next)."""
    best, gain = None, 0
    for s in shown:
        end = pos + len(s.text)
        if not text.startswith(s.text, pos) or (end < len(text) and text[end] not in WORD_END):
            continue
        g = len(s.text) + (1 if auto_space and s.space and end < len(text) and text[end] == " " else 0)
        if g > gain:
            best, gain = s, g
    return gain, best


def simulate(model, vocab, text: str, variant: Variant, settings: SuggestSettings, adapt: AdaptSettings,
             cache: dict[int, list[Suggestion]], char_counts=None, timed: int = 300) -> dict:
    """Type `text` as the ideal typist does under `variant`: keystrokes, KSR and the time of each suggestion.

    Without adaptation the suggestions at a position depend on the text before it alone: `cache` keeps
    them (words and phrase) for the next variant, which times only its first `timed` requests.
    """
    settings = SuggestSettings(**{**asdict(settings), "word_start": variant.word_start, "phrases": variant.phrases})
    all_kinds = SuggestSettings(**{**asdict(settings), "phrases": "separate"})
    adapter = Adapter(model, adapt) if variant.adapt else None
    prompt = prepare_prompt(model, vocab, "", char_counts=char_counts)
    logits, state = prompt.logits, prompt.state
    pos = keys = words = phrases = 0
    ms, adapt_ms = [], []
    while pos < len(text):
        current = adapter.model if adapter else model
        gain, best = 0, None
        typed = text[max(0, pos - 64) : pos]
        # Nothing suggested starts with a space or punctuation: where one comes next, no need to ask.
        if text[pos] not in WORD_END and (variant.word_start or in_word(typed)):
            t0 = time.perf_counter()
            # The same text and weights give the same suggestions: a later variant reuses them, but still
            # times its first `timed` requests afresh.
            if adapter or pos not in cache or len(ms) < timed:
                found = suggest(current, vocab, Prompt(logits, state, typed), all_kinds)
                ms.append((time.perf_counter() - t0) * 1000)
                cache[pos] = found
            found = cache.pop(pos) if adapter else cache[pos]
            phrase = next((s for s in found if s.kind == "phrase"), None)
            shown = arrange([s for s in found if s.kind == "word"], phrase, settings)
            gain, best = accepted(text, pos, shown, variant.auto_space)
        keys += 1
        step = gain or 1
        if best is not None:
            words += best.kind == "word"
            phrases += best.kind == "phrase"
        with torch.inference_mode():
            for ch in text[pos : pos + step]:
                logits, state = current.step(torch.tensor([vocab.index[ch]]), state)
        pos += step
        if adapter:
            t0 = time.perf_counter()
            if adapter.follow(text[:pos], vocab.encode):
                adapt_ms.append((time.perf_counter() - t0) * 1000)
    return {"variant": variant.name, "chars": len(text), "keystrokes": keys, "ksr": 1 - keys / len(text),
            "accepted_words": words, "accepted_phrases": phrases, "suggestions": len(ms),
            "ms_p50": statistics.median(ms) if ms else 0.0, "ms_p95": percentile(ms, 95) if ms else 0.0,
            "adapt_steps": len(adapt_ms), "adapt_ms_p50": statistics.median(adapt_ms) if adapt_ms else None}


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
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, vocab, run = load_model(args.model)
    source = corpus_of(args.model, run, args.text)
    text = "".join(c for c in held_out(source, args.chars, run.train.get("val_frac", 0.1)) if c in vocab.index)
    chosen = VARIANTS if args.variants == "all" else [VARIANTS[int(i)] for i in args.variants.split(",")]
    settings = SuggestSettings(num=args.num, phrase_prob=args.phrase_prob)
    adapt = AdaptSettings(args.lr, args.decay)
    rows, cache = [], {}
    for variant in chosen:
        result = simulate(model, vocab, text, variant, settings, adapt, cache, run.char_counts)
        rows.append(result)
        if args.json:
            print(json.dumps(result), flush=True)
    print(f"{args.model} on {len(text):,} held-out characters of {source.name}, top {args.num}, "
          f"phrase_prob {args.phrase_prob}, adaptation lr {args.lr} decay {args.decay}, {args.threads} thread(s)")
    print(table([[r["variant"], f"{100 * r['ksr']:.1f}%", r["accepted_words"], r["accepted_phrases"],
                  f"{r['ms_p50']:.1f} / {r['ms_p95']:.1f}",
                  f"{r['adapt_ms_p50']:.0f}" if r["adapt_ms_p50"] is not None else "-"] for r in rows],
                ["suggestions", "KSR", "words accepted", "phrases accepted", "ms p50 / p95", "ms per adaptation step"]))


if __name__ == "__main__":
    main()
