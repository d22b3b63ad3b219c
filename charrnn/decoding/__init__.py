"""Decoding: logits processors and sampling, beam search, and prefix completion."""
