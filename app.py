"""The charrnn web app: `python app.py` serves Generate, Autocomplete, Folk tunes and Train on 127.0.0.1:7860.

A thin launcher: it reads the flags and hands them to charrnn.web.app, which builds the page from its
tabs (charrnn/web/tabs/) and serves it; the work is done by charrnn.serve.service.
"""

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent
DEFAULT_MODELS = REPO / "models"
MAX_UPLOAD_MB = 20
MAX_SESSIONS = 256  # each holds ~150 KB of Gradio state; see --max-sessions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="The charrnn web app: generate, autocomplete, folk tunes, training.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="default 7860")
    p.add_argument("--models", default=str(DEFAULT_MODELS),
                   help="folder of model folders (config.json + model.safetensors each); default ./models")
    p.add_argument("--runs", default=None, help="where the Train tab writes its runs (default: runs/app/ beside "
                                                "the models folder); they appear in the model menus as trained/NAME")
    p.add_argument("--max-upload-mb", type=float, default=MAX_UPLOAD_MB, help=f"default {MAX_UPLOAD_MB}")
    p.add_argument("--queue-size", type=int, default=64, help="requests waiting at most; more get 'queue is full'")
    p.add_argument("--max-sessions", type=int, default=MAX_SESSIONS,
                   help=f"browser sessions whose state (a tab's tune history) is kept; the oldest go first "
                        f"(default {MAX_SESSIONS}). Every API call without a session is a new one.")
    p.add_argument("--train-threads", type=int, default=None,
                   help="CPU threads for a training job (default: all cores but one; inference uses 1)")
    p.add_argument("--train-device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    from charrnn.web import app  # imports gradio (seconds): only once the flags are good, so --help is quick

    return app.serve(args, started)


if __name__ == "__main__":
    sys.exit(main())
