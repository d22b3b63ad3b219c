"""`charrnn sample`: text from a language model by sampling, greedy decoding or beam search."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace

import torch

from charrnn.cli.common import add_inference_args, finite_float, load_lm, positive_int
from charrnn.data import read_text
from charrnn.decoding.beam import beam_search
from charrnn.decoding.processors import SamplingSettings
from charrnn.decoding.sampling import generate, prepare_prompt
from charrnn.errors import CharRNNError

MAX_BEAM_LENGTH = 10_000  # characters `sample --beam` may write


def add_parser(sub) -> None:
    p = sub.add_parser("sample", help="generate text (sampling, greedy or beam search)")
    add_inference_args(p)
    prime = p.add_mutually_exclusive_group()
    prime.add_argument("--prime", default="", help="text to start from (default: none)")
    prime.add_argument("--prime-file", help="read the prime from this UTF-8 file ('-': standard input); for "
                                            "primes too long for a command line")
    p.add_argument("--length", type=int, default=500, help="characters to generate (default 500)")
    p.add_argument("--temperature", type=finite_float, default=0.8, help="0 = greedy (default 0.8)")
    p.add_argument("--top-k", type=int, help="sample from the k most likely characters")
    p.add_argument("--top-p", type=finite_float, help="nucleus sampling: the smallest set with this much probability")
    p.add_argument("--repetition-penalty", type=finite_float, default=1.0,
                   help="above 1, characters already generated are less likely (default 1: none)")
    p.add_argument("--num", type=positive_int, default=1,
                   help="how many samples (with --beam: how many of the best beams; the beam widens to fit)")
    p.add_argument("--seed", type=int, help="sample i uses seed + i: same seed, same text")
    p.add_argument("--stop", action="append", default=[], help="stop a sample after this string (repeatable)")
    p.add_argument("--stream", action="store_true", help="print characters as they are generated")
    p.add_argument("--beam", type=positive_int, help="beam search with this width instead of sampling")
    p.add_argument("--length-penalty", type=finite_float, default=1.0,
                   help="beam ranking: logprob / length**this (default 1.0)")
    p.set_defaults(func=cmd_sample)


def cmd_sample(args) -> int:
    prime = read_text(args.prime_file) if args.prime_file else args.prime
    model, vocab, run = load_lm(args)
    prompt = prepare_prompt(model, vocab, prime, args.unknown, run.char_counts)
    if args.beam:
        return _beam(args, model, vocab, prompt)
    settings = SamplingSettings(args.temperature, args.top_k, args.top_p, stop=tuple(args.stop),
                                repetition_penalty=args.repetition_penalty).validate(len(vocab))
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
