"""The charrnn web app: `python app.py` serves Generate, Autocomplete, Folk tunes and Train on 127.0.0.1:7860.

A thin launcher: it reads the flags and hands them to charrnn.web.app, which builds the page from its
tabs (charrnn/web/tabs/) and serves it; the work is done by charrnn.serve.service.
"""

import argparse
import sys
import time
from pathlib import Path

from charrnn.cli import CommandParser
from charrnn.cli.common import positive_float, positive_int
from charrnn.errors import CharRNNError
from charrnn.serve.limits import MAX_UPLOAD_MB
from charrnn.web import access

REPO = Path(__file__).resolve().parent
DEFAULT_MODELS = REPO / "models"
MAX_SESSIONS = 256  # each holds ~150 KB of Gradio state; see --max-sessions


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = CommandParser(prog="app.py", description="The charrnn web app: generate, autocomplete, folk tunes, look "
                                                 "inside a model, pronounce words, training.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=access.port_number, default=access.default_port(),
                   help=f"default ${access.PORT_VARIABLE}, else {access.DEFAULT_PORT}")
    p.add_argument("--auth", action="append", default=[], metavar="USER:PASSWORD",
                   help="require a login (repeat for more users); needed to serve on an address other than loopback")
    p.add_argument("--auth-file", metavar="FILE", help="users from a file: one USER:PASSWORD a line")
    p.add_argument("--no-auth", action="store_true",
                   help="serve an address other than loopback without a login (a warning says so)")
    p.add_argument("--read-only", action="store_true",
                   help="a demo: no Train tab, no uploads, no training API; the other tabs as usual")
    p.add_argument("--models", default=str(DEFAULT_MODELS),
                   help="folder of model folders (config.json + model.safetensors each); default ./models")
    p.add_argument("--runs", default=None, help="where the Train tab writes its runs (default: runs/app/ beside "
                                                "the models folder); they appear in the model menus as trained/NAME")
    p.add_argument("--max-upload-mb", type=positive_float, default=MAX_UPLOAD_MB, help=f"default {MAX_UPLOAD_MB}")
    p.add_argument("--queue-size", type=positive_int, default=64,
                   help="requests waiting at most; more get 'queue is full'")
    p.add_argument("--max-sessions", type=positive_int, default=MAX_SESSIONS,
                   help=f"browser sessions whose state (a tab's tune history) is kept; the oldest go first "
                        f"(default {MAX_SESSIONS}). Every API call without a session is a new one.")
    p.add_argument("--train-threads", type=positive_int, default=None,
                   help="CPU threads for a training job (default: the cores no other process is using, less one "
                        "left to the page's requests, looked at again every 5 s; inference uses 1)")
    p.add_argument("--train-device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    try:
        args.credentials = access.credentials(args.auth, args.auth_file)
        warning = access.exposure(args.host, args.port, bool(args.credentials), args.no_auth, args.read_only)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        if not Path(args.models).is_dir():  # the app still runs (the Train tab fills the menus), but say so
            print(f"app.py: warning: no models folder at {args.models}: the menus offer only models trained "
                  "in the Train tab", file=sys.stderr, flush=True)
        access.check_port(args.host, args.port)  # before importing gradio: a taken port says so at once
        access.stay_offline()
        from charrnn.web import app  # imports gradio (seconds): only once the flags are good, so --help is quick

        return app.serve(args, started)
    except CharRNNError as e:
        print(f"app.py: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
