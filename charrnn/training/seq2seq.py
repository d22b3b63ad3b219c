"""The seq2seq task: pairs from a TSV file, token cross-entropy over the real (unpadded) target tokens, and
at each evaluation the val loss plus the greedy WER and TER of a fixed sample of val sources."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from charrnn import checkpoint as ckpt
from charrnn import corpora
from charrnn.errors import CharRNNError
from charrnn.files import sha256_file
from charrnn.models.seq2seq import PAD, Seq2Seq, Seq2SeqExtra
from charrnn.seq2seq.data import (
    SOURCE_SPECIALS,
    TARGET_SPECIALS,
    PairBatches,
    Pairs,
    TokenVocab,
    make_batch,
    max_output_len,
    read_pairs,
)
from charrnn.seq2seq.metrics import Score, score
from charrnn.seq2seq.translate import decode_ids
from charrnn.training.config import Seq2SeqTrainConfig
from charrnn.training.distributed import Dist
from charrnn.training.task import resolve_corpus

EVAL_ROWS = 256  # pairs per batch when computing the val loss


def load_splits(cfg: Seq2SeqTrainConfig) -> tuple[str | None, dict[str, Pairs], dict[str, int]]:
    """The train/val/test pairs: from --val-file/--test-file, a catalogue corpus's fixed split files, or
    split from the one file by a hash of the source; and the bad lines skipped in each file read."""
    name, path = resolve_corpus(cfg.corpus)
    files = {"train": path, "val": cfg.val_file, "test": cfg.test_file}
    if name and corpora.CATALOGUE[name].splits:
        files = {**corpora.split_files(name), **{k: v for k, v in files.items() if k != "train" and v}}
    read = {split: read_pairs(f, cfg.source_tokens, cfg.target_tokens, cfg.skip_bad_lines)
            for split, f in files.items() if f}
    skipped = {p.path: p.skipped for p in read.values() if p.skipped}
    if "val" in read or "test" in read:
        return name, {"train": read["train"], **{k: v for k, v in read.items() if k != "train"}}, skipped
    splits = read["train"].split(cfg.val_frac, cfg.test_frac)
    if cfg.val_frac > 0 and not len(splits["val"]):
        raise CharRNNError(
            f"no pair of {path} falls in the val split (--val-frac {cfg.val_frac:g}: its "
            f"{len(read['train'].references()):,} distinct sources all hash into train or test); give a --val-file, "
            f"a larger --val-frac, or --val-frac 0 to keep the checkpoint with the lowest train loss")
    return name, splits, skipped


class Seq2SeqTask:
    def __init__(self, cfg: Seq2SeqTrainConfig, dist: Dist):
        self.cfg, self.dist, self.device = cfg, dist, dist.device
        self.corpus_name, splits, skipped = load_splits(cfg)
        train, self.val = splits["train"], splits.get("val")
        self.has_val = bool(self.val)
        self.train_path = train.path
        self.sha256 = sha256_file(train.path)
        self.skipped = sum(skipped.values())
        self.notes = [f"skipped {n:,} bad line{'s' if n != 1 else ''} of {path} (--skip-bad-lines)"
                      for path, n in skipped.items()]
        known = [p for p in splits.values() if p is not None]  # the vocabularies cover every split's symbols
        self.source_vocab = TokenVocab.of([s for p in known for s in p.sources], SOURCE_SPECIALS)
        self.target_vocab = TokenVocab.of([t for p in known for t in p.targets], TARGET_SPECIALS)
        sources = [self.source_vocab.encode(s) for s in train.sources]
        targets = [self.target_vocab.encode(t) for t in train.targets]
        self.pairs, self.tokens = len(train), sum(map(len, train.sources)) + sum(map(len, train.targets))
        self.max_ratio = max((len(t) + 1) / len(s) for s, t in zip(sources, targets, strict=True))
        self.batches = PairBatches(sources, targets, cfg.batch_size, cfg.seed, dist.rank, dist.world)
        self.batches_per_epoch = self.batches.batches_per_epoch
        self.model = Seq2Seq(cfg.seq2seq_config(len(self.source_vocab), len(self.target_vocab))).to(self.device)

    def loss(self, net: torch.nn.Module, step: int) -> tuple[torch.Tensor, int]:
        """The mean loss per real target token of step's batch, and how many the whole step predicts."""
        batch = self.batches.get(step).to(self.device)
        logits = net(batch.source, batch.lengths, batch.target_in)
        loss = F.cross_entropy(logits.flatten(0, 1), batch.target_out.flatten(), ignore_index=PAD)
        return loss, round(self.cfg.batch_size * self.batches.mean_target_tokens)

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Val loss (nats per target token) over every val pair; greedy WER/TER over the first eval_sample sources."""
        if not self.has_val:
            return {"val_loss": None}
        was_training = self.model.training
        self.model.eval()
        rank, world = self.dist.rank, self.dist.world
        sources = [self.source_vocab.encode(s) for s in self.val.sources]
        targets = [self.target_vocab.encode(t) for t in self.val.targets]
        order = sorted(range(len(sources)), key=lambda i: (len(sources[i]), len(targets[i])))
        total, count = 0.0, 0
        for lo in range(rank * EVAL_ROWS, len(order), world * EVAL_ROWS):
            rows = order[lo : lo + EVAL_ROWS]
            batch = make_batch([sources[i] for i in rows], [targets[i] for i in rows]).to(self.device)
            logits = self.model(batch.source, batch.lengths, batch.target_in)
            total += F.cross_entropy(logits.flatten(0, 1), batch.target_out.flatten(), ignore_index=PAD,
                                     reduction="sum").item()
            count += int((batch.target_out != PAD).sum())
        refs = list(self.val.references().items())[: self.cfg.eval_sample][rank::world]
        mine = Score(0, 0, 0, 0)
        if refs:
            ids = [self.source_vocab.encode(src) for src, _ in refs]
            found = decode_ids(self.model, ids, [max_output_len(len(s), self.max_ratio) for s in ids])
            mine = score([self.target_vocab.decode(h[0].tokens) for h in found], [r for _, r in refs])
        total, count, *totals = self.dist.sum(total, count, *mine.totals())
        scored = Score(*map(round, totals))
        self.model.train(was_training)
        return {"val_loss": total / count, "val_wer": scored.wer, "val_ter": scored.ter}

    def carried(self) -> dict[str, torch.Tensor]:
        """Nothing carries from one batch to the next: each pair starts afresh."""
        return {}

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        pass

    def run_fields(self) -> dict:
        extra = Seq2SeqExtra(self.source_vocab.tokens, self.target_vocab.tokens, self.cfg.source_tokens,
                             self.cfg.target_tokens, round(self.max_ratio, 4), self.pairs, self.skipped)
        corpus = ckpt.CorpusInfo(self.corpus_name, str(self.train_path), self.sha256, self.tokens)
        return {"model": self.model.cfg.to_dict(), "vocab": [], "corpus": corpus, "extra": extra}

