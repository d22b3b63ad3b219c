"""What every training task shares: finding its data, by file path or catalogue name."""

from __future__ import annotations

from pathlib import Path

from charrnn import corpora


def catalogue_entry(corpus: str) -> corpora.Corpus | None:
    """The catalogue's entry that `corpus` names, or None where it is a path (a file wins a name)."""
    return None if Path(corpus).exists() else corpora.CATALOGUE.get(corpus)


def resolve_corpus(corpus: str) -> tuple[str | None, Path]:
    """(catalogue name or None, file path): a path to a file, or a name from `charrnn corpora list`."""
    if catalogue_entry(corpus) is None:
        return None, Path(corpus)
    return corpus, corpora.ensure(corpus)
