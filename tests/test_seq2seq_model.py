"""The encoder-decoder's invariants: padding never counts, the step path equals the fused path, a source's
output does not depend on its batch, and beam search agrees with greedy and with exhaustive search."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from charrnn.decoding.search import beam_search, greedy_search
from charrnn.decoding.stopping import Stopping
from charrnn.models.seq2seq import EOS, PAD, Seq2Seq, Seq2SeqConfig
from charrnn.seq2seq.data import make_batch
from charrnn.seq2seq.translate import begin_ids, decode_ids

CELLS = ["lstm", "gru", "rnn"]
ATTENTION = ["dot", "general", "additive"]


def tiny(cell="lstm", attention="general", seed=0, target_vocab=7, **kw):
    torch.manual_seed(seed)
    cfg = dict(source_vocab_size=9, target_vocab_size=target_vocab, cell=cell, layers=2, hidden=12, embed=6)
    return Seq2Seq(Seq2SeqConfig(**{**cfg, "attention": attention, **kw})).eval()


SOURCES = [[3, 4, 5], [6, 1, 2, 7, 8, 3], [5], [2, 2, 4, 1]]
TARGETS = [[3, 4], [5, 6, 3, 4, 5], [6], [4, 3, 5]]


def token_losses(model, batch):
    logits = model(batch.source, batch.lengths, batch.target_in)
    loss = F.cross_entropy(logits.flatten(0, 1), batch.target_out.flatten(), ignore_index=PAD, reduction="none")
    return loss.view(batch.target_out.shape), logits


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("attention", ATTENTION)
def test_more_padding_changes_no_output_and_no_loss(cell, attention):
    model = tiny(cell, attention)
    with torch.no_grad():
        tight, logits = token_losses(model, make_batch(SOURCES, TARGETS))
        loose, padded_logits = token_losses(model, make_batch(SOURCES, TARGETS, extra_pad=5))
    real = make_batch(SOURCES, TARGETS).target_out != PAD
    t = real.shape[1]
    assert torch.allclose(tight[real], loose[:, :t][real], atol=1e-6)
    assert abs(tight.sum() / real.sum() - loose.sum() / real.sum()) < 1e-6
    assert torch.allclose(logits[real], padded_logits[:, :t][real], atol=1e-6)
    assert (loose[:, t:] == 0).all()  # padding is never scored


def test_attention_never_looks_at_padding():
    model = tiny()
    batch = make_batch(SOURCES, TARGETS, extra_pad=3)
    with torch.no_grad():
        _, weights = model.attention_map(batch.source, batch.lengths, batch.target_in)
    for row, n in enumerate(batch.lengths.tolist()):
        assert (weights[row, :, n:] == 0).all()
        assert torch.allclose(weights[row].sum(-1), torch.ones(weights.shape[1]))


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("attention", ATTENTION)
@pytest.mark.parametrize("count", [len(SOURCES), 1])  # one source takes step's own fast path
def test_step_path_gives_the_fused_log_probability(cell, attention, count):
    model = tiny(cell, attention)
    batch = make_batch(SOURCES[:count], TARGETS[:count])
    with torch.inference_mode():
        losses, _ = token_losses(model, batch)
        fused = -losses.sum(1)
        logits, state = model.start(batch.source, batch.lengths)
        stepped = torch.zeros(count, dtype=torch.float64)
        for t in range(batch.target_out.shape[1]):
            y = batch.target_out[:, t]
            lp = logits.log_softmax(-1).gather(1, y.clamp_min(0)[:, None])[:, 0].double()
            stepped += torch.where(y != PAD, lp, torch.zeros_like(lp))
            logits, state = model.step(y.clamp_min(1), state)
    assert torch.allclose(fused.double(), stepped, atol=1e-5)


@pytest.mark.parametrize("beam", [1, 3])
@pytest.mark.parametrize("attention", ATTENTION)
def test_a_source_alone_or_in_a_batch_gives_the_same_outputs(beam, attention):
    model = tiny("gru", attention, target_vocab=6)
    limits = [8] * len(SOURCES)
    together = decode_ids(model, SOURCES, limits, beam=beam, num=beam)
    for i, src in enumerate(SOURCES):
        (alone,) = decode_ids(model, [src], [8], beam=beam, num=beam)
        assert [h.tokens for h in alone] == [h.tokens for h in together[i]]
        assert all(abs(a.logprob - b.logprob) < 1e-5 for a, b in zip(alone, together[i], strict=True))


def start(model, sources):
    batch = make_batch(sources, [[3]] * len(sources))
    with torch.inference_mode():
        return model.start(batch.source, batch.lengths)


def test_width_one_equals_greedy():
    for seed in range(4):
        model = tiny("lstm", "dot", seed=seed)
        beams = beam_search(model, *start(model, SOURCES), width=1, stop=Stopping(10, eos=[EOS]))
        greedy = greedy_search(model, *start(model, SOURCES), stop=Stopping(10, eos=[EOS]))
        for (b,), g in zip(beams, greedy, strict=True):
            assert b.tokens == g.tokens and abs(b.logprob - g.logprob) < 1e-9


def exhaustive(model, source, max_len, vocab):
    """Every output of at most max_len tokens (ending in EOS, or cut at max_len), scored by the fused path."""
    best = (-math.inf, None)
    for n in range(1, max_len + 1):
        for body in itertools.product(range(3, vocab), repeat=n - 1):
            for last in ([EOS] if n < max_len else [EOS, *range(3, vocab)]):
                target = [*body, last]
                batch = make_batch([source], [target[:-1] if last == EOS else target])
                with torch.no_grad():
                    losses, _ = token_losses(model, batch)
                lp = -float(losses[0, : len(target)].sum())
                best = max(best, (lp, tuple(target)))
    return best


@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_a_wide_beam_finds_the_exhaustive_best(penalty):
    vocab, max_len = 5, 4  # two real target symbols: 3 and 4
    model = tiny("lstm", "general", seed=3, target_vocab=vocab)
    with torch.no_grad():  # make long outputs likely, so the best one is not simply [EOS]
        model.head.bias[EOS] -= 3.0
    for source in SOURCES:
        found = beam_search(model, *start(model, [source]), width=64, num=1, stop=Stopping(max_len, eos=[EOS]),
                            length_penalty=penalty)[0][0]
        if penalty == 0:
            lp, tokens = exhaustive(model, source, max_len, vocab)
            assert found.tokens == tokens and abs(found.logprob - lp) < 1e-5


def test_num_best_are_distinct_and_ordered():
    model = tiny(seed=2)
    (found,) = beam_search(model, *start(model, [SOURCES[1]]), width=6, num=6, stop=Stopping(6, eos=[EOS]),
                           length_penalty=0.5)
    assert len({h.tokens for h in found}) == 6
    assert [h.score for h in found] == sorted((h.score for h in found), reverse=True)
    assert all(abs(h.score - h.logprob / len(h.tokens) ** 0.5) < 1e-12 for h in found)


def test_config_rejects_what_no_model_could_be():
    with pytest.raises(ValueError, match="even"):
        Seq2SeqConfig(5, 5, hidden=7)
    with pytest.raises(ValueError, match="attention"):
        Seq2SeqConfig(5, 5, attention="luong")


@pytest.mark.parametrize("cell", CELLS)
def test_an_encoding_once_gives_what_encoding_again_does(cell):
    """Decoding from `begin_ids` and scoring from `encoded_rows` (rows repeated, out of order) equal the
    paths that run the encoder themselves."""
    model = tiny(cell, "additive")
    limits = [8] * len(SOURCES)
    begun = begin_ids(model, SOURCES)
    fresh, reused = decode_ids(model, SOURCES, limits, 3, 3), decode_ids(model, SOURCES, limits, 3, 3, begun=begun)
    for a, b in zip(fresh, reused, strict=True):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert all(abs(x.logprob - y.logprob) < 1e-6 for x, y in zip(a, b, strict=True))
    rows = [2, 0, 0, 3, 1]
    batch = make_batch([SOURCES[r] for r in rows], [TARGETS[r] for r in rows])
    with torch.inference_mode():
        logits, weights = model.attention_map(batch.source, batch.lengths, batch.target_in)
        again = model.encoded_rows(begun[1], torch.tensor(rows))
        logits2, weights2 = model.attention_map(batch.source, batch.lengths, batch.target_in, again)
    real = batch.target_out != PAD
    assert torch.allclose(logits[real], logits2[real], atol=1e-5)
    width = batch.source.shape[1]  # the shared encoding is as wide as the longest of all the sources
    assert torch.allclose(weights[real], weights2[real][:, :width], atol=1e-6)
    assert (weights2[real][:, width:] == 0).all()
