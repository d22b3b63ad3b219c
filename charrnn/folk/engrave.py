"""Sheet music (SVG) of a checked tune: verovio, fed MusicXML by music21, in an isolated worker process.

verovio can crash the whole process on malformed input, so it runs in a worker: a crash costs a
restart, not the caller.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from charrnn.errors import CharRNNError
from charrnn.folk.check import require_passed

ENGRAVE_TIMEOUT = 10.0  # seconds; verovio takes about 10 ms for a tune


_VEROVIO_OPTIONS = {
    "pageHeight": 60000,  # verovio's largest: the whole tune on one page ...
    "adjustPageHeight": True,  # ... cut to the music's height
    "pageWidth": 2100,
    "scale": 40,
    "footer": "none",
    "svgViewBox": True,  # scales with the page it is shown in
    "svgRemoveXlink": True,
}


def serve_engraver() -> None:
    """The worker process's loop: a line in is a JSON-encoded ABC text, a line out a JSON [kind, text],
    kind "svg", or "error" with a message.

    The answers go to the original stdout; the worker's own stdout is pointed at stderr, so that nothing
    verovio or music21 prints can get into them.
    """
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    import music21  # noqa: F401  (imported now, so that the first tune does not wait for it)
    import verovio

    verovio.enableLog(verovio.LOG_OFF)
    toolkit = verovio.toolkit()
    toolkit.setOptions(_VEROVIO_OPTIONS)
    for line in sys.stdin:
        answers.write(json.dumps(_engrave(toolkit, json.loads(line))) + "\n")
        answers.flush()


def _engrave(toolkit, abc: str) -> list[str]:
    """verovio's SVG of a tune, read through music21's MusicXML, which keeps first and second endings
    (verovio's own ABC reader drops them); verovio reads the ABC itself if music21 cannot."""
    from music21 import converter
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    try:
        data, kind = GeneralObjectExporter(converter.parseData(abc, format="abc")).parse().decode("utf-8"), "musicxml"
    except Exception:  # music21 raises many types on odd ABC
        data, kind = abc, "abc"
    toolkit.setInputFrom(kind)
    if not toolkit.loadData(data):
        return ["error", "verovio could not read the tune"]
    return ["svg", toolkit.renderToSVG(1)]


def _forward_lines(stream: IO[str], lines: queue.Queue) -> None:
    """Put each line of stream on the queue, then None at its end (the worker exited or crashed)."""
    for line in stream:
        lines.put(line)
    lines.put(None)


class Engraver:
    """A long-lived verovio worker process, started on first use and restarted after a crash or timeout.

    A subprocess rather than multiprocessing, which would run the caller's main script again in the
    worker. `render` takes any ABC text; `to_svg` lets only checked tunes through.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # one tune at a time through the pipe (the web app has threads)
        self._process: subprocess.Popen | None = None
        self._answers: queue.Queue = queue.Queue()

    def render(self, abc: str, timeout: float = ENGRAVE_TIMEOUT) -> str:
        """The first page of verovio's SVG of abc; a CharRNNError if verovio fails, crashes or hangs."""
        with self._lock:
            self.start()
            assert self._process is not None and self._process.stdin is not None
            try:
                self._process.stdin.write(json.dumps(abc) + "\n")
                self._process.stdin.flush()
                answer = self._answers.get(timeout=timeout)
            except OSError:  # the worker is gone (killed between calls): as a crash
                answer = None
            except queue.Empty:
                self.close()
                raise CharRNNError(f"engraving the sheet music took more than {timeout:g}s; it was stopped") from None
            if answer is None:
                code = self.close()
                raise CharRNNError(f"the sheet-music engraver (verovio) crashed on this tune (exit code {code}); "
                                   "it restarts for the next one")
        kind, text = json.loads(answer)
        if kind == "error":
            raise CharRNNError(text)
        return text

    def start(self) -> None:
        """Start the worker unless it runs (a web app may call this at launch, to spare its first tune)."""
        if self._process is not None and self._process.poll() is None:
            return
        missing = [name for name in ("verovio", "music21") if importlib.util.find_spec(name) is None]
        if missing:
            raise CharRNNError(f"sheet music needs {' and '.join(missing)}: pip install {' '.join(missing)}")
        self.close()
        env = dict(os.environ)  # the worker imports this very charrnn, installed or not
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(Path(__file__).resolve().parents[2]),
                                                          env.get("PYTHONPATH"))))
        self._process = subprocess.Popen(
            [sys.executable, "-c", "from charrnn.folk.engrave import serve_engraver; serve_engraver()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True,
            encoding="utf-8")
        self._answers = queue.Queue()
        threading.Thread(target=_forward_lines, args=(self._process.stdout, self._answers), daemon=True,
                         name="charrnn-engraver-answers").start()

    def close(self) -> int | None:
        """Stop the worker, if one runs; returns its exit code (negative: killed by that signal)."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        code = process.wait()
        for stream in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        return code

    @property
    def pid(self) -> int | None:
        """The worker's process id, while it runs."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None


ENGRAVER = Engraver()
atexit.register(ENGRAVER.close)


def to_svg(abc: str, timeout: float = ENGRAVE_TIMEOUT) -> str:
    """Sheet music of a tune that passed the checks, as one SVG document."""
    require_passed(abc)
    return ENGRAVER.render(abc, timeout)
