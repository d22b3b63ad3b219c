"""The `charrnn` command line: train | sample | complete | eval | export | corpora | folk | inspect | seq2seq.

A front end beside the web app: one module per command group, each with `add_parser(sub)`; the libraries
below know nothing of it. A bad flag value prints one line and exits 2 (an unknown or missing argument also
shows its command's usage); other user errors (CharRNNError) print one line and exit 1; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys

from charrnn.cli import complete, corpora, export, folk, inspect, sample, seq2seq, train
from charrnn.cli import eval as evaluate  # the module of `charrnn eval`, not the builtin
from charrnn.cli.common import BadValue
from charrnn.errors import CharRNNError

COMMANDS = (train, sample, complete, evaluate, export, corpora, folk, inspect, seq2seq)  # in the help's order


class CommandParser(argparse.ArgumentParser):
    """A (sub)command's parser. It names itself in the namespace it fills (the innermost one given the
    arguments wins), so an unknown flag is refused by its own command; a bad value is one line."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.set_defaults(parser=self)

    def flags(self) -> list[str]:
        """Its flags, as its usage line lists them (argparse offers no public list of a parser's options)."""
        return re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", self.format_usage())

    def error(self, message: str):
        if message.startswith("argument "):  # argparse's ArgumentError: one argument's value, or a clash
            self.exit(2, f"{self.prog}: error: {message}\n")
        super().error(message)  # a missing or unknown argument: the usage, then the message


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="charrnn", description="Character-level RNN language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse; an unknown flag is refused by its command's parser (its usage, not the top level's), with the
    nearest flag that command has."""
    args, unknown = parser.parse_known_args(folk.spelled_out(argv))
    if unknown:
        command = args.parser
        flag = next((u for u in unknown if u.startswith("-")), unknown[0]).split("=")[0]
        near = difflib.get_close_matches(flag, command.flags(), n=1)
        command.error(f"unrecognized arguments: {' '.join(unknown)}" + (f" (did you mean {near[0]}?)" if near else ""))
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parse(build_parser(), argv)
    args.argv = argv  # what was typed: a run records the command that started it
    try:
        return args.func(args)
    except BadValue as e:  # a flag's value that only the loaded model or file shows to be wrong
        print(f"{args.parser.prog}: error: {e}", file=sys.stderr)
        return 2
    except CharRNNError as e:
        print(f"charrnn: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ncharrnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `charrnn sample ... | head`
        sys.stderr.close()
        return 0
