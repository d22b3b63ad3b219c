"""docs/ARCHITECTURE.md's map against the code: its layer table (ground floor first) and its table of the
packages only some modules may import are read and compared with every import in the package (lazy ones and
those under TYPE_CHECKING included), so the page stays true and no import runs up the layers."""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "charrnn"
DOC = REPO / "docs" / "ARCHITECTURE.md"
LAYERS_HEADING = "## The layers"
ONLY_HEADING = "## Packages only some parts import"


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. charrnn.cli.sample
    target: str  # what it imports: a charrnn module (e.g. charrnn.decoding.beam) or a top-level package name
    where: str  # file:line, for the message


@functools.cache
def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its __init__.py)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


@functools.cache
def imports(package: Path = PACKAGE) -> tuple[Import, ...]:
    """Every import statement of every module, wherever it stands in the file."""
    known = modules(package)
    found = []
    for name, path in known.items():
        home = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            where = f"{path.relative_to(package.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # from . import x, from ..y import z
                    up = home.split(".")[: len(home.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                # `from charrnn import corpora` imports the module charrnn.corpora, not the package's __init__
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
            else:
                continue
            for target in targets:
                if target.split(".")[0] == "charrnn":
                    while target not in known:  # charrnn.x.Name -> charrnn.x
                        target = target.rpartition(".")[0]
                else:
                    target = target.split(".")[0]
                found.append(Import(name, target, where))
    return tuple(found)


def table(heading: str) -> list[list[str]]:
    """The rows (cells as text) of the first Markdown table after `heading` in the page."""
    text = DOC.read_text(encoding="utf-8")
    assert heading in text, f"{DOC.relative_to(REPO)} has no section {heading!r}"
    lines = text.split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start + 2:]:  # past the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
    return rows


def names(cell: str) -> list[str]:
    """The `backticked` names of a cell."""
    return re.findall(r"`([^`]+)`", cell)


@dataclass(frozen=True)
class Part:
    row: int  # 0 = the ground floor
    names: tuple[str, ...]  # as the table spells them: errors.py, cli/ ...
    depends: tuple[str, ...]  # the names in its "depends on" cell


def parts() -> list[Part]:
    """The layer table, ground floor first: each row's parts and what it says they import."""
    return [Part(i, tuple(names(row[0])), tuple(names(row[-1]))) for i, row in enumerate(table(LAYERS_HEADING))]


def owner(module: str, layers: list[Part]) -> tuple[Part, str] | None:
    """The row and table name a module belongs to: the longest name that covers its file (a folder covers
    everything under it)."""
    path = modules()[module].relative_to(PACKAGE).as_posix()
    best = None
    for part in layers:
        for name in part.names:
            covers = path.startswith(name) if name.endswith("/") else path == name
            if covers and (best is None or len(name) > len(best[1])):
                best = (part, name)
    return best


def test_the_table_names_each_part_once_and_only_parts_that_exist():
    seen = [name for part in parts() for name in part.names]
    assert seen, "the layer table has no rows"
    assert len(seen) == len(set(seen)), f"named twice: {sorted({n for n in seen if seen.count(n) > 1})}"
    missing = [n for n in seen if not (PACKAGE / n).exists()]
    assert not missing, f"the layer table names what is not in charrnn/: {missing}"


def test_every_module_is_on_the_map():
    layers = parts()
    lost = [m for m in modules() if owner(m, layers) is None]
    assert not lost, f"modules in no row of the layer table (add them to a row, or a row for them): {lost}"


def test_a_part_depends_only_on_parts_below_it():
    layers = parts()
    rows = {name: part.row for part in layers for name in part.names}
    for part in layers:
        for name in part.depends:
            assert name in rows, f"row {part.names}: depends on {name!r}, which no row names"
            assert rows[name] < part.row, (f"row {part.names} says it depends on {name}, which is not below it: "
                                           "the table is in the order of the layers, ground floor first")


def test_no_import_runs_up_the_layers_and_every_import_is_on_the_map():
    """The imports the code has are the ones the table says: none missing, none stale, none upward."""
    layers = parts()
    rows = {name: part.row for part in layers for name in part.names}
    actual: dict[int, dict[int, list[str]]] = {part.row: {} for part in layers}
    up = []
    for imp in imports():
        if not imp.target.startswith("charrnn"):
            continue
        (source, _), (target, _) = owner(imp.module, layers), owner(imp.target, layers)
        if source.row == target.row:
            continue  # within one row: a part's own modules
        if target.row > source.row:
            up.append(f"{imp.where}: {imp.module} imports {imp.target}, a layer above it")
        actual[source.row].setdefault(target.row, []).append(f"{imp.where} ({imp.target})")
    assert not up, "imports that run up the layers:\n" + "\n".join(up)
    wrong = []
    for part in layers:
        said = {rows[name] for name in part.depends}
        for row in sorted(set(actual[part.row]) - said):
            wrong.append(f"row {part.names} imports {layers[row].names} but its 'depends on' cell does not say so: "
                         + ", ".join(actual[part.row][row][:3]))
        for row in sorted(said - set(actual[part.row])):
            wrong.append(f"row {part.names} says it depends on {layers[row].names}, but imports none of it")
    assert not wrong, "docs/ARCHITECTURE.md's 'depends on' column disagrees with the code:\n" + "\n".join(wrong)


def test_the_packages_only_some_parts_import_are_imported_only_there():
    """E.g. only web/ imports gradio; music21 and verovio only where the table says."""
    layers = parts()
    rules = {names(row[0])[0]: set(names(row[1])) for row in table(ONLY_HEADING)}
    assert rules, "the table of packages only some parts import is empty"
    by_package: dict[str, set[str]] = {package: set() for package in rules}
    stray = []
    for imp in imports():
        if imp.target in rules:
            name = owner(imp.module, layers)
            path = modules()[imp.module].relative_to(PACKAGE).as_posix()
            allowed = rules[imp.target]
            if path in allowed or name[1] in allowed:
                by_package[imp.target] |= {path if path in allowed else name[1]}
            else:
                stray.append(f"{imp.where}: imports {imp.target}, which only {sorted(allowed)} may import")
    assert not stray, "\n".join(stray)
    stale = {package: sorted(rules[package] - users) for package, users in by_package.items() if rules[package] - users}
    assert not stale, f"the table says these import a package they no longer import: {stale}"


@pytest.mark.parametrize(("source", "expected"), [
    ("from charrnn.training.trainer import Trainer", "charrnn.training.trainer"),
    ("from charrnn import corpora", "charrnn.corpora"),
    ("from . import render", "charrnn.folk.render"),
    ("from ..decoding.beam import complete", "charrnn.decoding.beam"),
    ("import charrnn.seq2seq.data as d", "charrnn.seq2seq.data"),
])
def test_the_import_reader_resolves_each_spelling(tmp_path, source, expected):
    """The reader behind the checks above sees every spelling of an import, inside a function too."""
    folk = tmp_path / "charrnn" / "folk"
    folk.mkdir(parents=True)
    for path in ("__init__.py", "folk/__init__.py", "folk/render.py", "corpora.py"):
        (tmp_path / "charrnn" / path).write_text("")
    for path in ("decoding", "training", "seq2seq"):
        (tmp_path / "charrnn" / path).mkdir()
        (tmp_path / "charrnn" / path / "__init__.py").write_text("")
    for path in ("decoding/beam.py", "training/trainer.py", "seq2seq/data.py"):
        (tmp_path / "charrnn" / path).write_text("")
    (folk / "generate.py").write_text(f"def later():\n    {source}\n")
    found = {i.target for i in imports(tmp_path / "charrnn") if i.module == "charrnn.folk.generate"}
    assert found == {expected}
