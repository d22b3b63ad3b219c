"""`charrnn sample`: text from a language model by sampling, greedy decoding or beam search."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import torch

from charrnn.cli.common import (
    BadValue,
    adapted_lm,
    add_adapt_args,
    add_encoding,
    add_inference_args,
    bad_values,
    finite_float,
    load_lm,
    non_negative_int,
    positive_int,
    whole_number,
)
from charrnn.data import read_text
from charrnn.decoding.beam import beam_search, unused_by_beam
from charrnn.decoding.processors import DEFAULT_TEMPERATURE, SamplingSettings
from charrnn.decoding.sampling import MAX_LENGTH, generate, prepare_prompt

MAX_BEAM_LENGTH = 10_000  # characters `sample --beam` may write


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="generate text (sampling, greedy or beam search)")
    add_inference_args(p)
    prime = p.add_mutually_exclusive_group()
    prime.add_argument("--prime", default="", help="text to start from (default: none)")
    prime.add_argument("--prime-file", help="read the prime from this text file ('-': standard input); for "
                                            "primes too long for a command line")
    add_encoding(p, "--prime-file")
    p.add_argument("--length", type=positive_int, default=500,
                   help=f"characters to generate (default 500; at most {MAX_LENGTH:,}, with --beam "
                        f"{MAX_BEAM_LENGTH:,})")
    p.add_argument("--temperature", type=finite_float,
                   help=f"0 = greedy (default {DEFAULT_TEMPERATURE}, as the app's)")
    p.add_argument("--top-k", type=non_negative_int, default=0,
                   help="sample from the k most likely characters (default 0: from all of them)")
    p.add_argument("--top-p", type=finite_float, help="nucleus sampling: the smallest set with this much probability")
    p.add_argument("--repetition-penalty", type=finite_float, default=1.0,
                   help="above 1, characters already generated are less likely (default 1: none)")
    p.add_argument("--no-repeat", type=non_negative_int, default=0, metavar="N",
                   help="never write the same run of N characters twice (N >= 2; e.g. 16 ends the loops of greedy "
                        "text; default 0: off)")
    p.add_argument("--num", type=positive_int, default=1,
                   help="how many samples, each after a line '--- sample I of N (seed S) ---' when more than one "
                        "(with --beam: how many of the best beams; the beam widens to fit)")
    p.add_argument("--seed", type=whole_number, help="sample i uses seed + i: same seed, same text")
    p.add_argument("--stop", action="append", default=[], help="stop a sample after this string (repeatable)")
    p.add_argument("--stream", action="store_true", help="print characters as they are generated")
    p.add_argument("--beam", type=positive_int, help="beam search with this width instead of sampling")
    p.add_argument("--length-penalty", type=finite_float, default=1.0,
                   help="beam ranking: logprob / length**this (default 1.0)")
    add_adapt_args(p, "first learn from the prime (one SGD step per segment: dynamic evaluation)")
    p.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
    limit = MAX_BEAM_LENGTH if args.beam else MAX_LENGTH
    if args.length > limit:
        raise BadValue(f"argument --length: must be at most {limit:,}{' with --beam' if args.beam else ''}, "
                       f"got {args.length:,}")
    given = {"temperature": args.temperature, "top-k": args.top_k or None, "top-p": args.top_p, "seed": args.seed,
             "repetition-penalty": args.repetition_penalty if args.repetition_penalty != 1 else None,
             "no-repeat": args.no_repeat or None}
    if args.beam and (note := unused_by_beam(name for name, value in given.items() if value is not None)):
        print(f"charrnn: note: {note}", file=sys.stderr)
    temperature = DEFAULT_TEMPERATURE if args.temperature is None else args.temperature
    with bad_values():  # the settings' own checks, before the model is loaded
        settings = SamplingSettings(temperature, args.top_k or None, args.top_p, stop=tuple(args.stop),
                                    repetition_penalty=args.repetition_penalty, no_repeat=args.no_repeat)
    prime = read_text(args.prime_file, args.encoding) if args.prime_file else args.prime
    model, vocab, run = load_lm(args)
    model = adapted_lm(args, model, vocab, prime)
    prompt = prepare_prompt(model, vocab, prime, args.unknown, run.char_counts)
    if args.beam:
        return _beam(args, model, vocab, prompt)
    with bad_values():
        settings.validate(len(vocab))
    base_seed = args.seed if args.seed is not None else int(torch.seed() % 2**31)
    samples, t0, chars = [], time.perf_counter(), 0
    for i in range(args.num):
        seed = base_seed + i
        header = f"--- sample {i + 1} of {args.num} (seed {seed}) ---\n" if args.num > 1 else ""
        pieces = generate(model, vocab, prompt, args.length, replace(settings, seed=seed))
        if args.stream and not args.json:
            print(header + prompt.text, end="", flush=True)
            chars_out = []
            for ch in pieces:
                print(ch, end="", flush=True)
                chars_out.append(ch)
            print()
            text = "".join(chars_out)
        else:
            text = "".join(pieces)
            if not args.json:
                print(header + prompt.text + text)
        chars += len(text)
        samples.append({"text": text, "seed": seed})
    rate = chars / max(time.perf_counter() - t0, 1e-9)
    if args.json:
        print(json.dumps({"prime": prompt.text, "samples": samples, "chars_per_s": round(rate)}, ensure_ascii=False))
    print(f"[{chars} chars at {rate:,.0f} chars/s]", file=sys.stderr)
    return 0


def _beam(args, model, vocab, prompt) -> int:
    if args.beam > len(vocab):
        raise BadValue(f"argument --beam: must be between 1 and the vocabulary size {len(vocab)}, got {args.beam}")
    t0 = time.perf_counter()
    hyps = beam_search(model, vocab, prompt, args.beam, args.length, args.num, stop=args.stop,
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
