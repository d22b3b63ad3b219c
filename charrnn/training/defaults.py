"""What a new run's settings leave open, filled in: its length and size (an LM), its length and symbols
(seq2seq). The command line and the app's Train tab give the trainer what these return."""

from __future__ import annotations

from charrnn.training import autosize

DEFAULT_EPOCHS = 10  # when a new seq2seq run gives no --max-steps, --epochs or --time-budget (an LM's follows
# its corpus size: autosize.default_budget)
LENGTH_FLAGS = ("max_steps", "epochs", "time_budget")


def lm_defaults(given: dict) -> str | None:
    """Fill in what a new LM run's settings leave open: its length (from the corpus size) and its size (auto when
    there is a budget and no size setting; a preset's fields unless given). Returns what to tell the user about a
    length chosen for them, or None."""
    note = None
    if not any(k in given for k in LENGTH_FLAGS):
        from charrnn.training.task import resolve_corpus

        path = resolve_corpus(given["corpus"])[1]
        if path.is_file():  # else the trainer says it is missing
            chars = path.stat().st_size  # bytes: close enough to characters for a default
            given["time_budget"] = autosize.default_budget(chars)
            note = (f"no --time-budget, --epochs or --max-steps: training for "
                    f"{autosize.format_duration(given['time_budget'])}, the default for "
                    f"{autosize.count_text(chars)} bytes of text")
    size = given.get("size")
    if size is None and "time_budget" in given and not any(k in given for k in autosize.SIZE_FLAGS):
        given["size"] = "auto"
    elif size in autosize.PRESETS:
        preset = dict(zip(("layers", "hidden", "embed", "dropout"), autosize.PRESETS[size], strict=True))
        given.update({k: v for k, v in preset.items() if k not in given})
    return note


def seq2seq_defaults(given: dict) -> None:
    """Fill in what a new seq2seq run's settings leave open: its length, and a catalogue corpus's symbols
    (cmudict's targets are space-separated phonemes)."""
    from charrnn.training.task import catalogue_entry

    if not any(k in given for k in LENGTH_FLAGS):
        given["epochs"] = DEFAULT_EPOCHS
    corpus = catalogue_entry(given["corpus"])
    if corpus is not None:
        given.setdefault("source_tokens", corpus.tokens[0])
        given.setdefault("target_tokens", corpus.tokens[1])
