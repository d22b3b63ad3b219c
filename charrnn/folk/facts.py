"""What folk generation knows of the corpus a model learnt from: the part layouts its tunes have, by type
and meter (the default form of a new tune), and its note index (how much a new tune copies).

The corpus build writes both beside the corpus (folk.forms.json, folk.notes.gz), each with the corpus's
sha256; a model folder may carry its own copies (corpus.forms.json, corpus.notes.gz), which are used
first. Both are plain data: JSON and gzipped text.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from charrnn.errors import CharRNNError
from charrnn.files import atomic_path
from charrnn.folk.check import split_tunes
from charrnn.folk.form import corpus_layouts, read_form
from charrnn.folk.originality import NoteIndex, index_path, write_index
from charrnn.runfile import RunFile

MODEL_FORMS = "corpus.forms.json"  # the names of the copies a model folder may carry
MODEL_INDEX = "corpus.notes.gz"
MIN_GROUP_TUNES = 10  # a type and meter with fewer tunes takes the meter's layouts over all types


def forms_path(corpus: Path) -> Path:
    """Where a corpus's layouts live: folk.abc -> folk.forms.json."""
    return corpus.with_suffix(".forms.json")


def write_facts(corpus: Path, text: str) -> None:
    """Write the layouts and the note index of the corpus whose text (the file at `corpus`) is `text`."""
    sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()
    layouts = corpus_layouts(read_form(tune) for tune in split_tunes(text))
    with atomic_path(forms_path(corpus)) as tmp:
        tmp.write_text(json.dumps({"sha256": sha256, "layouts": layouts}, indent=1) + "\n", encoding="utf-8")
    write_index(corpus, text)


@dataclass
class CorpusFacts:
    """A model's corpus facts; empty (no layouts, no index) when none are found."""

    layouts: dict[str, dict[str, int]]
    index_file: Path | None = None
    _index: NoteIndex | None = None

    def layouts_for(self, tune_type: str | None, meter: str) -> dict[str, int]:
        """The corpus's layouts for a type and meter, or for the meter alone if the type has too few tunes."""
        typed = self.layouts.get(f"{tune_type} {meter}", {}) if tune_type else {}
        return typed if sum(typed.values()) >= MIN_GROUP_TUNES else self.layouts.get(f" {meter}", {})

    @property
    def index(self) -> NoteIndex | None:
        """The note index (read on first use), or None when the model's corpus has none here."""
        if self._index is None and self.index_file is not None:
            self._index = NoteIndex.load(self.index_file)
        return self._index

    @classmethod
    def find(cls, config: RunFile, model_dir: str | Path | None = None, corpora: Path | None = None) -> CorpusFacts:
        """The facts in the model folder, else those beside the model's corpus in the folder `corpora` (the
        corpus catalogue's, which the caller names: folk sits below it) if they are of the same text."""
        if model_dir is not None and (Path(model_dir) / MODEL_INDEX).is_file():
            folder = Path(model_dir)
            return cls(_layouts(folder / MODEL_FORMS, None), folder / MODEL_INDEX)
        corpus = config.corpus
        if corpus is None or not corpus.sha256 or corpora is None:
            return cls({})
        path = corpora / Path(corpus.path).name
        index = index_path(path)
        layouts = _layouts(forms_path(path), corpus.sha256)
        return cls(layouts, index if layouts and index.is_file() else None)


def _layouts(path: Path, sha256: str | None) -> dict[str, dict[str, int]]:
    """The layouts in a forms file ({} if it is missing, or is of another text than `sha256`)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise CharRNNError(f"{path} is not a folk forms file ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("layouts"), dict):
        raise CharRNNError(f"{path} is not a folk forms file")
    return data["layouts"] if sha256 is None or data.get("sha256") == sha256 else {}
