"""The editable install, as users' scripts meet it (issue #16: a clone beside a script shadowed it)."""

import subprocess
import sys
from pathlib import Path


def test_a_script_beside_a_checkout_named_charrnn_imports_the_installed_package(tmp_path: Path) -> None:
    # A folder named like the package, without an __init__.py, is what `git clone .../charrnn` leaves
    # beside a user's script; Python would take it for a namespace package if the install lost to it.
    (tmp_path / "charrnn" / "docs").mkdir(parents=True)
    script = tmp_path / "tune.py"
    script.write_text("from charrnn.folk import FolkModel\nimport charrnn\nprint(charrnn.__file__)\n")
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert Path(done.stdout.strip()).parent == Path(__file__).resolve().parents[1] / "charrnn"
