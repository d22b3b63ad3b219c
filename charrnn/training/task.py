"""What every training task shares: finding its data, by file path or catalogue name."""

from __future__ import annotations

from pathlib import Path


def resolve_corpus(corpus: str) -> tuple[str | None, Path]:
    """(catalogue name or None, file path): a path to a file, or a name from `charrnn corpora list`."""
    from charrnn import corpora  # the catalogue imports the corpus builders, which training rarely needs

    path = Path(corpus)
    if path.exists() or corpus not in corpora.CATALOGUE:
        return None, path
    return corpus, corpora.ensure(corpus)
