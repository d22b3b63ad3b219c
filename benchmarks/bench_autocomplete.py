"""Autocomplete latency on the server: 3 completions of up to 30 characters, p50 and p95 over 200 prefixes.

The prefixes are cut mid-word at 200 places in held-out text (the val split: the last 10% of the corpus,
which the model never trained on), each with the text before it. Each prefix is timed three ways:

- cold:   the first request for that text (the server reads its last 256 characters, then searches);
- typing: the request after the one for the same text minus its last character, as when the user types
          one more character (the server steps the cached state by one character, then searches);
- cached: the same text again (Backspace back to it), answered from the cache.

With --browser it measures the whole way instead: it starts `python app.py` (and reports how long the
first page took), opens the Autocomplete tab in headless Chromium (Debian's, through playwright) and,
for each prefix, types its last 8 characters at 100 ms a key (a fast typist), timing from the last
keystroke to its completions on screen.

    python -m benchmarks.bench_autocomplete [--model models/shakespeare] [--text corpora/shakespeare.txt]
    python -m benchmarks.bench_autocomplete --browser [--count 100]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path

import torch

from benchmarks.common import REPO, running_app
from charrnn.decoding.beam import WORD_END
from charrnn.serve.autocomplete import Autocompleter
from charrnn.serve.registry import Registry
from tests.load_clients import percentile


def prefixes(text: str, count: int, context: int, seed: int = 0) -> list[str]:
    """`count` prefixes of the held-out text, each ending inside a word, with up to `context` chars before."""
    rng = random.Random(seed)
    places = [i for i in range(context, len(text)) if text[i - 1] not in WORD_END and text[i] not in WORD_END]
    return [text[max(0, i - context) : i] for i in sorted(rng.sample(places, count))]


def run(model_dir: Path, text_path: Path, count: int = 200, num: int = 3, max_len: int = 30,
        threads: int = 1) -> dict:
    torch.set_num_threads(threads)
    lm = Registry(model_dir.parent).load(model_dir.name)
    text = text_path.read_text(encoding="utf-8")
    held_out = text[int(len(text) * 0.9) :]
    cases = prefixes(held_out, count, 600)
    times: dict[str, list[float]] = {"cold": [], "typing": [], "cached": []}
    for prefix in cases[:5]:  # warm-up
        Autocompleter().complete(lm.model, lm.vocab, prefix, num, "word", max_len, char_counts=lm.char_counts)
    for prefix in cases:
        ac = Autocompleter()
        t0 = time.perf_counter()
        ac.complete(lm.model, lm.vocab, prefix, num, "word", max_len, char_counts=lm.char_counts)
        times["cold"].append(time.perf_counter() - t0)
        ac = Autocompleter()
        ac.complete(lm.model, lm.vocab, prefix[:-1], num, "word", max_len, char_counts=lm.char_counts)
        t0 = time.perf_counter()
        result = ac.complete(lm.model, lm.vocab, prefix, num, "word", max_len, char_counts=lm.char_counts)
        times["typing"].append(time.perf_counter() - t0)
        assert result.cache == "extend"
        t0 = time.perf_counter()
        ac.complete(lm.model, lm.vocab, prefix, num, "word", max_len, char_counts=lm.char_counts)
        times["cached"].append(time.perf_counter() - t0)
    summary = {"model": lm.config.arch, "prefixes": len(cases),
               "num": num, "max_len": max_len, "threads": threads, "torch": torch.__version__}
    for kind, values in times.items():
        ms = [v * 1000 for v in values]
        summary[kind] = {"p50_ms": round(statistics.median(ms), 2), "p95_ms": round(percentile(ms, 95), 2),
                         "mean_ms": round(statistics.fmean(ms), 2), "max_ms": round(max(ms), 2)}
    return summary


def browser(model_dir: Path, text_path: Path, count: int = 100, key_delay_ms: int = 100,
            chromium: str = "/usr/bin/chromium") -> dict:
    """End to end: `python app.py` serving model_dir's folder, driven by headless Chromium."""
    from playwright.sync_api import sync_playwright

    text = text_path.read_text(encoding="utf-8")
    cases = [p[-60:] for p in prefixes(text[int(len(text) * 0.9) :], count, 600)]
    with running_app(model_dir.parent, REPO / "runs" / "bench-app") as (_, url, first_response):
        args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]
        with sync_playwright() as p:
            chrome = p.chromium.launch(executable_path=chromium, args=args)
            page = chrome.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.wait_for_selector("#gen-output textarea", timeout=60_000)
            page.get_by_role("tab", name="Autocomplete").click()
            box = page.locator("#ac-input textarea")
            box.click()
            latencies = []
            for prefix in [cases[0], *cases]:  # the first one warms up
                box.fill(prefix[:-8])
                page.wait_for_function(f"() => window.__acShown && window.__acShown.len === {len(prefix) - 8}",
                                       timeout=30_000)
                box.press_sequentially(prefix[-8:], delay=key_delay_ms)
                page.wait_for_function(f"() => window.__acShown && window.__acShown.len === {len(prefix)}"
                                       " && window.__acShown.t > window.__acKeyT", timeout=30_000)
                latencies.append(page.evaluate("() => window.__acShown.t - window.__acKeyT"))
            chrome.close()
    latencies = latencies[1:]
    return {"first_response_s": round(first_response, 2), "prefixes": len(latencies), "key_delay_ms": key_delay_ms,
            "p50_ms": round(statistics.median(latencies), 1), "p95_ms": round(percentile(latencies, 95), 1),
            "max_ms": round(max(latencies), 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=REPO / "models" / "shakespeare")
    p.add_argument("--text", type=Path, default=REPO / "corpora" / "shakespeare.txt",
                   help="the model's corpus; its last 10%% (the val split) is the held-out text")
    p.add_argument("--count", type=int, default=None, help="prefixes (default 200; 100 with --browser)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--browser", action="store_true", help="end to end, through the app in headless Chromium")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.browser:
        result = browser(args.model, args.text, args.count or 100)
        print(json.dumps(result) if args.json else
              f"python app.py answered in {result['first_response_s']} s; last keystroke to completions on screen "
              f"over {result['prefixes']} prefixes typed at {result['key_delay_ms']} ms a key: p50 "
              f"{result['p50_ms']} ms, p95 {result['p95_ms']} ms, max {result['max_ms']} ms")
        return
    summary = run(args.model, args.text, args.count or 200, threads=args.threads)
    if args.json:
        print(json.dumps(summary))
        return
    print(f"{summary['model']}, {summary['prefixes']} prefixes, {summary['num']} completions of up to "
          f"{summary['max_len']} chars, {summary['threads']} thread(s), torch {summary['torch']}")
    print("| request | p50 | p95 | mean | max |\n|---|---|---|---|---|")
    for kind in ("cold", "typing", "cached"):
        s = summary[kind]
        print(f"| {kind} | {s['p50_ms']} ms | {s['p95_ms']} ms | {s['mean_ms']} ms | {s['max_ms']} ms |")


if __name__ == "__main__":
    main()
