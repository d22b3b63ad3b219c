"""The editable install, as users' scripts meet it (issue #16: a clone beside a script shadowed it)."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


def test_a_script_beside_a_checkout_named_charrnn_imports_the_installed_package(tmp_path: Path) -> None:
    # A folder named like the package, without an __init__.py, is what `git clone .../charrnn` leaves
    # beside a user's script; Python would take it for a namespace package if the install lost to it.
    (tmp_path / "charrnn" / "docs").mkdir(parents=True)
    script = tmp_path / "tune.py"
    script.write_text("from charrnn.folk import FolkModel\nimport charrnn\nprint(charrnn.__file__)\n")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Path(done.stdout.strip()).parent == Path(__file__).resolve().parents[1] / "charrnn"


@pytest.mark.slow
def test_the_wheel_ships_the_static_files(tmp_path: Path) -> None:
    """The inspect page's CSS and JavaScript and the app's static files are package data, in the wheel."""
    repo = Path(__file__).resolve().parents[1]
    source = tmp_path / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    shutil.copytree(repo / "charrnn", source / "charrnn", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(repo / name, source / name)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("charrnn-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    static = sorted(p.relative_to(repo).as_posix() for p in (repo / "charrnn").rglob("static/*") if p.is_file())
    assert static and {"charrnn/inside/static/page.js", "charrnn/web/static/autocomplete.js"} <= set(static)
    assert not [name for name in static if name not in shipped], shipped
