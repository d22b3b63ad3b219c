"""The `charrnn` command line: train | sample | complete | eval | export | corpora | folk | inspect | seq2seq.

A front end beside the web app: one module per command group, each with `add_parser(sub)`; the libraries
below know nothing of it. User errors (CharRNNError) print one line and exit 1; argparse errors exit 2;
Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import difflib
import sys

from charrnn.cli import complete, corpora, export, folk, inspect, sample, seq2seq, train
from charrnn.cli import eval as evaluate  # the module of `charrnn eval`, not the builtin
from charrnn.errors import CharRNNError

COMMANDS = (train, sample, complete, evaluate, export, corpora, folk, inspect, seq2seq)  # in the help's order


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="charrnn", description="Character-level RNN language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _command_parser(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.ArgumentParser:
    """The (sub)command's own parser that `argv` names, e.g. `seq2seq translate`'s."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = next((a for a in argv if a in action.choices), None)
            if chosen is not None:
                return _command_parser(action.choices[chosen], argv[argv.index(chosen) + 1 :])
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """Parse; an unknown flag is refused by its command's parser (its usage, not the top level's), with the
    nearest flag that command has."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = _command_parser(parser, argv)
        flags = [o for a in command._actions for o in a.option_strings]
        flag = next((u for u in unknown if u.startswith("-")), unknown[0]).split("=")[0]
        near = difflib.get_close_matches(flag, flags, n=1)
        command.error(f"unrecognized arguments: {' '.join(unknown)}" + (f" (did you mean {near[0]}?)" if near else ""))
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(build_parser(), sys.argv[1:] if argv is None else list(argv))
    try:
        return args.func(args)
    except CharRNNError as e:
        print(f"charrnn: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ncharrnn: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `charrnn sample ... | head`
        sys.stderr.close()
        return 0

