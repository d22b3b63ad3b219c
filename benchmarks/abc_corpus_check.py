"""Run charrnn.folk.check.check_tune over the ABC folk tunes music21 ships; print the pass share and failure kinds.

Usage: python benchmarks/abc_corpus_check.py [--show KIND] [--limit N]
The Essen collection is left out on purpose (non-commercial licence); music21 is needed only here.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from music21 import corpus

from charrnn.folk.check import TuneReport, check_tune, split_tunes

COLLECTIONS = ("ryansMammoth", "oneills1850", "airdsAirs", "miscFolk")


def read_abc(path: Path) -> str:
    """Read an ABC file; a few corpus files are Latin-1 rather than UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def collection_tunes(name: str) -> list[tuple[str, str]]:
    """(label, tune text) for every tune of one music21 corpus collection."""
    tunes = []
    for path in sorted(Path(p) for p in corpus.getComposer(name)):
        for tune in split_tunes(read_abc(path)):
            first = tune.splitlines()[0]
            tunes.append((f"{name}/{path.name} {first}", tune))
    return tunes


def main() -> None:
    """Check every tune and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", metavar="KIND", help="print the failing tunes with this finding kind")
    parser.add_argument("--limit", type=int, default=10, help="how many tunes --show prints")
    args = parser.parse_args()

    failures: Counter[str] = Counter()
    shown = 0
    total = passed = 0
    started = time.perf_counter()
    for name in COLLECTIONS:
        tunes = collection_tunes(name)
        reports: list[TuneReport] = [check_tune(tune) for _, tune in tunes]
        ok = sum(report.passed for report in reports)
        print(f"{name:14s} {ok:5d}/{len(tunes):5d} pass ({ok / max(len(tunes), 1):.1%})")
        total += len(tunes)
        passed += ok
        for (label, tune), report in zip(tunes, reports, strict=True):
            kinds = {f.kind for f in report.findings if f.severity == "error"}
            failures.update(kinds)
            if args.show in kinds and shown < args.limit:
                shown += 1
                print(f"\n--- {label}")
                for finding in report.findings:
                    if finding.kind == args.show:
                        print(f"    {finding.message}")
                print(tune)
    elapsed = time.perf_counter() - started
    print(f"\nall            {passed:5d}/{total:5d} pass ({passed / max(total, 1):.1%}) in {elapsed:.1f} s")
    print("failing tunes by finding kind (a tune may have several kinds):")
    for kind, count in failures.most_common():
        print(f"  {kind:18s} {count:5d}")


if __name__ == "__main__":
    main()
