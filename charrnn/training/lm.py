"""The language-model task: a text corpus read as B carried streams, next-character cross-entropy."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from charrnn import checkpoint as ckpt
from charrnn.data import StreamBatcher, encode_corpus
from charrnn.errors import CharRNNError
from charrnn.models.rnn import CharRNN, detach_state
from charrnn.training.config import TrainConfig
from charrnn.training.distributed import Dist
from charrnn.training.task import resolve_corpus


@torch.no_grad()
def evaluate(model: CharRNN, ids: np.ndarray, batch_size: int = 32, seq_len: int = 256,
             device: torch.device | str = "cpu", dist: Dist | None = None,
             progress: Callable[[int], None] | None = None) -> tuple[float, int]:
    """Mean cross-entropy (nats/char) of predicting ids[1:] from what precedes, and the count predicted;
    `progress(chars)` is called after each window with the characters it predicted.

    The text is cut into `batch_size` contiguous streams read `seq_len` at a time with carried state;
    the few characters left over continue the last stream, so every character is predicted once.
    Under torchrun each rank reads its share of the streams and the sums are added up.
    """
    dist = dist or Dist()
    n = len(ids) - 1
    if n < 1:
        raise CharRNNError("evaluation needs at least 2 characters of text")
    was_training = model.training
    model.eval()
    b = max(1, min(batch_size, n // seq_len))
    length = n // b
    data = torch.from_numpy(np.asarray(ids, dtype=np.int64))
    rows = slice(dist.rank, b, dist.world)  # this rank's streams (all of them in one process)
    xs = data[: b * length].view(b, length)[rows]
    ys = data[1 : b * length + 1].view(b, length)[rows]
    total = torch.zeros((), dtype=torch.float64)
    state = None
    for lo in range(0, length if len(xs) else 0, seq_len):
        x, y = xs[:, lo : lo + seq_len].to(device), ys[:, lo : lo + seq_len].to(device)
        logits, state = model(x, state)
        total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").double().cpu()
        if progress is not None:
            progress(y.numel())
    if b * length < n and (b - 1) % dist.world == dist.rank:  # the tail continues the last stream
        last = (state[0][:, -1:], state[1][:, -1:]) if isinstance(state, tuple) else state[:, -1:]
        x = data[b * length : n].view(1, -1).to(device)
        y = data[b * length + 1 : n + 1].view(1, -1).to(device)
        logits, _ = model(x, last)
        total += F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum").double().cpu()
    (total_all,) = dist.sum(total.item())
    model.train(was_training)
    return total_all / n, n


def check_split(cfg: TrainConfig, chars: int, val_chars: int) -> None:
    """Refuse a corpus too small for its val split, saying how large it must be."""
    if cfg.val_frac > 0 and val_chars < 2:
        # Enough for one training batch and 2 val characters, after the val and test shares.
        need = math.ceil(max(cfg.batch_size * (cfg.seq_len + 1) / (1 - cfg.val_frac - cfg.test_frac),
                             2 / cfg.val_frac))
        raise CharRNNError(f"the corpus has {chars:,} characters, too few for a val split "
                           f"(--val-frac {cfg.val_frac:g}): with batch size {cfg.batch_size} x sequence length "
                           f"{cfg.seq_len} it needs at least {need:,}")


class LMTask:
    """What the trainer needs of a language-model run: data, model, loss, evaluation, carried state."""

    def __init__(self, cfg: TrainConfig, dist: Dist):
        self.cfg, self.dist, self.device = cfg, dist, dist.device
        if not dist.main:  # rank 0 fetches and encodes the corpus first; the others find it cached
            dist.barrier()
        self.corpus_name, path = resolve_corpus(cfg.corpus)
        corpus = encode_corpus(path, cfg.cache_dir, cfg.encoding)
        if dist.main:
            dist.barrier()
        self.corpus, self.sha256 = corpus, corpus.sha256
        train_ids, self.val_ids, _ = corpus.split(cfg.val_frac, cfg.test_frac)
        check_split(cfg, len(corpus.ids), len(self.val_ids))
        self.has_val, self.notes = len(self.val_ids) >= 2, []
        self.batches = StreamBatcher(train_ids, cfg.batch_size, cfg.seq_len, dist.rank, dist.world)
        self.batches_per_epoch = self.batches.batches_per_epoch
        self.local_batch = cfg.batch_size // dist.world
        self.model = CharRNN(cfg.model_config(len(corpus.vocab))).to(self.device)
        self.state = self.model.init_state(self.local_batch)

    def loss(self, net: torch.nn.Module, step: int) -> tuple[torch.Tensor, int]:
        """The mean loss of step's batch, and how many characters the whole step predicts."""
        index = step % self.batches_per_epoch
        if index == 0:  # a new epoch: the streams start over, so does the hidden state
            self.state = self.model.init_state(self.local_batch, self.device)
        x, y = self.batches.get(index)
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        logits, state = net(x, self.state)
        self.state = detach_state(state)
        return F.cross_entropy(logits.flatten(0, 1), y.flatten()), self.cfg.batch_size * self.cfg.seq_len

    def evaluate(self) -> dict:
        if not self.has_val:
            return {"val_loss": None}
        loss, _ = evaluate(self.model, self.val_ids, self.cfg.eval_batch, 256, self.device, self.dist)
        return {"val_loss": loss}

    def carried(self) -> dict[str, torch.Tensor]:
        """The hidden state of every global stream (all ranks call this; rank 0 gets the whole)."""
        state = self.state if isinstance(self.state, tuple) else (self.state,)
        return dict(zip(ckpt.HIDDEN, (self.dist.gather_streams(s) for s in state), strict=False))

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        """The hidden state is saved for the global streams; this rank continues its share of them."""
        mine = slice(self.dist.rank, None, self.dist.world)
        h, c = ckpt.HIDDEN
        hidden = tensors[h][:, mine].to(self.device)
        self.state = (hidden, tensors[c][:, mine].to(self.device)) if c in tensors else hidden

    def run_fields(self) -> dict:
        corpus = self.corpus
        return {"model": self.model.cfg.to_dict(), "vocab": corpus.vocab.chars,
                "char_counts": corpus.counts,
                "corpus": ckpt.CorpusInfo(self.corpus_name, str(corpus.path), corpus.sha256, len(corpus.ids))}
