"""Who may reach the app, checked before Gradio is imported: credentials, the address, the port.

`--auth USER:PASSWORD` (repeatable) and `--auth-file FILE` become Gradio's own login (`launch(auth=...)`),
which guards the page, the API and the file routes. An address other than loopback without credentials
is refused unless `--no-auth` says so. A port already in use is one line naming it, not a traceback.
`ReadOnlyUploads` is the ASGI middleware that refuses uploads in `--read-only` mode; `KnownEndpoints` answers
404 for API names the page does not have. `stay_offline` is what the launcher sets in its environment before
it imports gradio.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import os
import re
import socket
from collections.abc import Collection, Iterable
from pathlib import Path

from charrnn.errors import CharRNNError

DEFAULT_PORT = 7860
PORT_VARIABLE = "GRADIO_SERVER_PORT"  # Gradio's own variable: the app honours it as its default port
LOOPBACK_NAMES = ("localhost",)
UPLOAD_ROUTES = ("/gradio_api/upload", "/gradio_api/process_recording")  # Gradio's routes that take files
CALL_ROUTE = re.compile(r"/gradio_api/(?:call|run|api)/([^/]+)")  # Gradio's routes that call an event by its API name
# Read by gradio and huggingface_hub when they are imported: no analytics, no telemetry, no hub requests.
OFFLINE = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1",
           "DO_NOT_TRACK": "1"}


def stay_offline() -> None:
    """Turn Gradio's analytics and the Hugging Face hub's telemetry off in this process's environment (a
    variable the user set wins, but analytics stay off); for the launcher, before gradio is imported."""
    for name, value in OFFLINE.items():
        if name == "GRADIO_ANALYTICS_ENABLED":
            os.environ[name] = value
        else:
            os.environ.setdefault(name, value)


def default_port() -> str:
    """The port when --port is not given: $GRADIO_SERVER_PORT, else 7860 (a string: argparse applies --port's type)."""
    return os.environ.get(PORT_VARIABLE) or str(DEFAULT_PORT)


def port_number(text: str) -> int:
    """argparse type of --port: a whole number 1..65535 (a bad $GRADIO_SERVER_PORT is reported the same way)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number 1-65535 (from --port or ${PORT_VARIABLE}), "
                                         f"not {text!r}")
    return port


def parse_credential(text: str, where: str) -> tuple[str, str]:
    """"USER:PASSWORD" as (user, password); the password may contain ':' but neither part may be empty."""
    user, colon, password = text.partition(":")
    if not colon or not user.strip() or not password:
        raise CharRNNError(f"{where}: expected USER:PASSWORD (a user name, a colon, a password)")
    return user.strip(), password


def credentials(auth: Iterable[str] = (), auth_file: str | None = None) -> list[tuple[str, str]]:
    """The (user, password) pairs of --auth and of --auth-file (one USER:PASSWORD a line; blank lines skipped)."""
    pairs = [parse_credential(text, "--auth") for text in auth]
    if auth_file:
        try:
            lines = Path(auth_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise CharRNNError(f"cannot read --auth-file {auth_file}: {getattr(e, 'strerror', None) or e}") from None
        pairs += [parse_credential(line.strip(), f"{auth_file} line {n}")
                  for n, line in enumerate(lines, 1) if line.strip()]
        if not any(line.strip() for line in lines):
            raise CharRNNError(f"--auth-file {auth_file} has no USER:PASSWORD line")
    users = [user for user, _ in pairs]
    twice = sorted({user for user in users if users.count(user) > 1})
    if twice:
        raise CharRNNError(f"user {twice[0]!r} is given more than once (--auth / --auth-file)")
    return pairs


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach `host` (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure(host: str, port: int, has_auth: bool, no_auth: bool, read_only: bool) -> str:
    """The warning to print ("" for none); raises when an address other than loopback would be served open."""
    if no_auth and has_auth:
        raise CharRNNError("--no-auth and --auth/--auth-file contradict each other: give one of them")
    if is_loopback(host) or has_auth:
        return ""
    if not no_auth:
        raise CharRNNError(f"--host {host} lets other machines reach the app: give --auth USER:PASSWORD "
                           f"(or --auth-file FILE), or --no-auth to serve it to anyone anyway")
    reach = "use the app" if read_only else "use the app, upload files and train models (see --read-only)"
    return f"warning: --no-auth on {host}: anyone who can reach port {port} can {reach}"


def serving(host: str, port: int, local_url: str) -> str:
    """Where the app can be reached, for its start-up line: a wildcard address serves every interface."""
    if host in ("0.0.0.0", "::", ""):
        return (f"every network interface of this machine (--host {host or '0.0.0.0'}), port {port}: "
                f"here at {local_url}, from elsewhere at this machine's address")
    return local_url


def port_in_use(host: str, port: int) -> str:
    """The one line to show when `port` is taken on `host`."""
    return (f"port {port} on {host} is already in use: stop what is using it, or choose another "
            f"with --port N (or ${PORT_VARIABLE})")


def check_port(host: str, port: int) -> None:
    """Raise a one-line CharRNNError if the app could not listen on host:port (taken, not allowed, no such host)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise CharRNNError(f"cannot listen on --host {host}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server's own socket: TIME_WAIT is no clash
        try:
            s.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise CharRNNError(port_in_use(host, port)) from None
            raise CharRNNError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None


async def _refuse(send, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class KnownEndpoints:
    """ASGI middleware: a call to an API name the page does not have (--read-only leaves out training's) is
    a 404 that says so, where Gradio would answer 500 and log a traceback."""

    def __init__(self, app, names: Collection[str], read_only: bool = False):
        # "predict": the route of the page's own unqueued events (queue=False), which go by index, not by name
        self.app, self.names, self.read_only = app, frozenset(names) | {"predict"}, read_only

    async def __call__(self, scope, receive, send):
        found = CALL_ROUTE.search(scope["path"]) if scope["type"] == "http" else None
        if found and found[1] not in self.names:
            why = " (this app runs with --read-only: it does not train)" if self.read_only else ""
            await _refuse(send, 404, f"no API endpoint /{found[1]} here{why}")
            return
        await self.app(scope, receive, send)


class ReadOnlyUploads:
    """ASGI middleware of --read-only mode: every upload is refused (403) before Gradio reads it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith(UPLOAD_ROUTES):
            await _refuse(send, 403, "uploads are off: this app runs with --read-only")
            return
        await self.app(scope, receive, send)
