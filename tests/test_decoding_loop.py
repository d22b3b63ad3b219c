"""Tests for charrnn.decoding.loop and its strategies, stop rule and history-aware processors, on a bigram
stand-in model whose state is the whole history (so a wrong reorder or rollback shows in the state)."""

from __future__ import annotations

import math

import pytest
import torch

from charrnn.data import Vocab
from charrnn.decoding.loop import NO_IDS, History, decode, steps
from charrnn.decoding.processors import ForbidFirst, NoRepeat, RepetitionPenalty, SamplingSettings, Temperature
from charrnn.decoding.sampling import Forced, Guided, Sample
from charrnn.decoding.search import Beam, BeamHypotheses, Greedy, beam_search, greedy_search
from charrnn.decoding.stopping import Stopping
from charrnn.errors import CharRNNError


class Bigram:
    """A stand-in model: the logits after token x are table[x]; the state (B, T) is every token read so far."""

    def __init__(self, table: torch.Tensor):
        self.table = table
        self.steps: list[int] = []  # rows of each step

    def start(self, rows: int = 1, first: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        return self.table[[first] * rows], torch.empty(rows, 0, dtype=torch.long)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.steps.append(len(x))
        return self.table[x], torch.cat([state, x[:, None]], 1)

    @staticmethod
    def reorder(state: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return state[index]


def random_bigram(vocab: int = 6, seed: int = 0, scale: float = 3.0) -> Bigram:
    return Bigram(torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(seed)) * scale)


def hand_greedy(model: Bigram, first: int, length: int) -> list[int]:
    out, x = [], first
    for _ in range(length):
        x = int(model.table[x].argmax())
        out.append(x)
    return out


class Recorder:
    """A processor that keeps a copy of the ids it is handed at every step."""

    def __init__(self):
        self.seen: list[list[list[int]]] = []

    def __call__(self, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        assert ids.dtype == torch.long and ids.shape[0] == logits.shape[0]
        self.seen.append(ids.tolist())
        return logits


# --- the stop rule ------------------------------------------------------------------------------


def test_stopping_ends_at_the_limit_an_end_id_or_a_sequence():
    stop = Stopping(5, eos=[9], sequences=[[1, 2], [3]])
    assert not stop.ends([0]) and not stop.ends([0, 1]) and not stop.ends([2, 1])
    assert stop.ends([0, 1, 2]) and stop.ends([3]) and stop.ends([9]) and stop.ends([0, 0, 0, 0, 0])
    assert stop.eos == {9, 3}  # a one-token sequence is an end id


def test_stopping_per_row_limits_and_a_sequence_that_begins_before():
    stop = Stopping([1, 10], sequences=[[4, 4, 5]], before=[7, 4, 4])
    assert stop.limit(0) == 1 and stop.limit(1) == 10
    assert stop.ends([0], 0) and not stop.ends([0], 1) and stop.ends([0] * 10, 1)
    assert stop.ends([5], 1) and stop.ends([4, 5], 1)  # 4 4 came before the first generated tokens
    assert not stop.ends([0, 5], 1) and stop.ends([0, 4, 4, 5], 1) and not stop.ends([0, 4, 5], 1)
    with pytest.raises(CharRNNError, match="2 length limits for 3 inputs"):
        stop.check_rows(3)
    with pytest.raises(CharRNNError, match="at least 1"):
        Stopping([3, 0])


def test_stopping_text_drops_stop_strings_the_vocabulary_cannot_write():
    vocab = Vocab(sorted("ab\n"))  # ids: \n 0, a 1, b 2
    stop = Stopping.text(vocab, 10, ["\n\n", "x", "", "ba"], before="a\n")
    assert stop.sequences == ([0, 0], [2, 1])
    assert stop.ends([0]) and stop.ends([2, 1]) and not stop.ends([1])


# --- processors that see the history -------------------------------------------------------------


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits_of_seen_ids():
    logits = torch.tensor([[2.0, -1.0, 0.5, 4.0], [2.0, -1.0, 0.5, 4.0]])
    ids = torch.tensor([[0, 1, 0], [3, 3, 3]])
    out = RepetitionPenalty(2.0)(ids, logits)
    assert out.tolist() == [[1.0, -2.0, 0.5, 4.0], [2.0, -1.0, 0.5, 2.0]]
    assert torch.equal(RepetitionPenalty(2.0)(ids[:, :0], logits), logits)  # nothing generated yet
    assert torch.equal(RepetitionPenalty(1.0)(ids, logits), logits)


@pytest.mark.parametrize("penalty", [0, -1.5, math.inf, math.nan, "2", True])
def test_repetition_penalty_checks_its_argument(penalty):
    with pytest.raises(CharRNNError, match="repetition penalty must be a finite number > 0"):
        RepetitionPenalty(penalty)
    with pytest.raises(CharRNNError, match="repetition penalty"):
        SamplingSettings(repetition_penalty=penalty)


def test_greedy_with_a_repetition_penalty_sees_the_ids_it_wrote():
    """Constant logits 5 4 3 2 1: greedy writes 0 forever; penalised by 2, a seen id's 5 becomes 2.5, and so on."""
    model = Bigram(torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0]).expand(5, 5))
    (plain,) = greedy_search(model, *model.start(), Stopping(6))
    (penalised,) = greedy_search(model, *model.start(), Stopping(6), [RepetitionPenalty(2.0)])
    assert plain.tokens == (0,) * 6
    assert penalised.tokens == (0, 1, 2, 0, 0, 0)


def test_no_repeat_forbids_what_followed_an_earlier_run_equal_to_the_last():
    logits = torch.zeros(2, 4)
    ids = torch.tensor([[0, 1, 2, 0, 1], [3, 3, 2, 1, 0]])  # row 0 ends "0 1", which "2" followed before
    out = NoRepeat(3)(ids, logits)
    assert out[0].tolist() == [0, 0, -math.inf, 0] and out[1].tolist() == [0, 0, 0, 0]
    assert torch.equal(NoRepeat(6)(ids, logits), logits)  # no run of 6 written yet
    everything = torch.tensor([[0, 1, 0, 0]])  # after "0", both "1" and "0" came before: all would go
    assert torch.equal(NoRepeat(2)(everything, logits[:1, :2]), logits[:1, :2])


@pytest.mark.parametrize("n", [2, 3, 5])
def test_no_repeat_forbids_exactly_what_a_plain_reading_forbids(n):
    ids = torch.randint(3, (4, 40), generator=torch.Generator().manual_seed(n))  # 3 letters: many repeats
    out = NoRepeat(n)(ids, torch.zeros(4, 5))
    for row, got in zip(ids.tolist(), out, strict=True):
        last = row[len(row) - n + 1 :]
        banned = {row[j + n - 1] for j in range(len(row) - n + 1) if row[j : j + n - 1] == last}
        banned = set() if len(banned) == 5 else banned
        assert {i for i in range(5) if got[i] == -math.inf} == banned


@pytest.mark.parametrize("n", [1, -3, 2.5, "16", True, None])
def test_no_repeat_checks_its_argument(n):
    with pytest.raises(CharRNNError, match="no-repeat length must be a whole number of characters >= 2"):
        SamplingSettings(no_repeat=n)
    assert SamplingSettings(no_repeat=0).processors == ()


def test_greedy_that_loops_leaves_the_loop_and_never_writes_a_run_twice():
    """Logits 0 -> 1 -> 2 -> 0 ...: greedy loops "0 1 2" forever; with no-repeat 4 no run of 4 comes twice."""
    table = torch.full((4, 4), -5.0)
    table[0, 1] = table[1, 2] = table[2, 0] = 5.0
    table[:, 3] = 0.0
    model = Bigram(table)
    (plain,) = greedy_search(model, *model.start(), Stopping(12))
    assert plain.tokens == (1, 2, 0) * 4
    (free,) = greedy_search(model, *model.start(), Stopping(12), list(SamplingSettings(0, no_repeat=4).processors))
    runs = [free.tokens[i : i + 4] for i in range(len(free.tokens) - 3)]
    assert len(runs) == len(set(runs)) and free.tokens[:3] == (1, 2, 0)


def test_forbid_first_masks_only_the_first_step():
    logits = torch.zeros(2, 4)
    out = ForbidFirst([1, 3])(torch.empty(2, 0, dtype=torch.long), logits)
    assert torch.isinf(out[:, [1, 3]]).all() and (out[:, [0, 2]] == 0).all()
    assert torch.equal(ForbidFirst([1])(torch.zeros(2, 1, dtype=torch.long), logits), logits)
    with pytest.raises(CharRNNError, match="ids >= 0"):
        ForbidFirst([-1])


# --- the loop -----------------------------------------------------------------------------------


def test_processors_see_each_rows_ids_so_far_starting_empty():
    model = random_bigram()
    recorder = Recorder()
    (hyp,) = greedy_search(model, *model.start(), Stopping(5), [recorder])
    assert recorder.seen == [[list(hyp.tokens[:t])] for t in range(5)]


def test_no_history_is_kept_when_no_processor_looks():
    model = random_bigram()
    handed = []

    def blind(ids, logits):
        handed.append(ids)
        return logits

    blind.uses_ids = False
    greedy_search(model, *model.start(), Stopping(4), [blind, Temperature(0.5)])
    assert all(ids is NO_IDS for ids in handed) and len(handed) == 4


def test_history_grows_past_its_first_buffer_and_reorders():
    history = History(2, torch.device("cpu"))
    for t in range(150):
        history.append(torch.tensor([t, -t]))
    assert history.view().shape == (2, 150) and history.view()[1, 149] == -149
    history.reorder(torch.tensor([1, 1, 0]))
    assert history.view()[:, 2].tolist() == [-2, -2, 2]


def test_steps_yields_before_each_step_and_returns_where_it_stopped():
    model = random_bigram()
    greedy = Greedy(Stopping(4))
    run = steps(model, greedy, *model.start())
    lengths = []
    for _ in run:
        lengths.append((len(greedy.out[0]), len(model.steps)))
    assert lengths == [(1, 0), (2, 1), (3, 2), (4, 3)]  # the last token is chosen but not stepped
    logits, state = decode(model, Forced(torch.tensor([[2, 4, 1]])), *model.start())
    assert state.tolist() == [[2, 4, 1]] and torch.equal(logits, model.table[[1]])


def test_sampling_same_seed_same_tokens_and_greedy_is_the_hand_argmax():
    model = random_bigram(scale=1.0)

    def sample(seed):
        strategy = Sample(Stopping(30), torch.Generator().manual_seed(seed))
        decode(model, strategy, *model.start())
        return strategy.out[0]

    assert sample(1) == sample(1) != sample(2)
    (greedy,) = greedy_search(model, *model.start(first=3), Stopping(12))
    assert list(greedy.tokens) == hand_greedy(model, 3, 12)


def test_greedy_rows_that_end_early_leave_the_batch_and_match_running_alone():
    model = random_bigram(vocab=7, seed=4)
    stop = Stopping([3, 9, 6, 1], eos=[5])
    together = greedy_search(model, *model.start(4), stop)
    alone = [greedy_search(model, *model.start(), Stopping(stop.limit(i), eos=[5]))[0] for i in range(4)]
    assert together == alone
    assert model.steps == sorted(model.steps, reverse=True)  # rows only ever leave


# --- beam ---------------------------------------------------------------------------------------


def test_beam_hypotheses_keep_the_num_best_and_know_when_they_are_done():
    done = BeamHypotheses(num=2, max_len=4, length_penalty=1.0)
    done.add((1, 2), -2.0)  # score -1
    done.add((3,), -1.5)  # -1.5
    done.add((4, 5), -2.0)  # -1, ties with the first: added later, ranked after it
    assert [h.tokens for h in done.best] == [(1, 2), (4, 5)] and [h.score for h in done.best] == [-1.0, -1.0]
    assert not done.is_done(-3.9)  # could still reach -3.9 / 4 > -1
    assert done.is_done(-4.0)
    assert not BeamHypotheses(num=3, max_len=4).is_done(-100.0)  # not yet full


def test_beam_width_one_is_greedy_and_a_wide_beam_is_the_exhaustive_best():
    model = random_bigram(vocab=4, seed=1)
    (greedy,) = greedy_search(model, *model.start(), Stopping(5))
    ((beam,),) = beam_search(model, *model.start(), 1, Stopping(5))
    assert beam.tokens == greedy.tokens and abs(beam.logprob - greedy.logprob) < 1e-9
    logp = model.table.log_softmax(-1).double()
    ((wide,),) = beam_search(model, *model.start(), 16, Stopping(3))
    best = max((((a, b, c), float(logp[0, a] + logp[a, b] + logp[b, c]))
                for a in range(4) for b in range(4) for c in range(4)), key=lambda kv: kv[1])
    assert wide.tokens == best[0] and abs(wide.logprob - best[1]) < 1e-9


def test_beam_ids_are_reordered_with_the_beams():
    model = random_bigram(vocab=5, seed=2, scale=1.0)
    beam = Beam(3, Stopping([6, 4], eos=[4]), rows=2, num=2)
    calls = []

    def check(ids, logits):
        calls.append(len(beam.live))
        assert [tuple(row) for row in ids.tolist()] == [b.tokens for b in beam.live]
        return logits

    logits, state = model.start(2)
    decode(model, beam, logits, state, [check])
    assert len(calls) > 2 and max(calls) > 2
    assert all(len(done.best) == 2 for done in beam.results)


def test_beam_checks_its_arguments():
    with pytest.raises(CharRNNError, match="beam width and number of results must be at least 1"):
        Beam(0, Stopping(3), rows=1)
    with pytest.raises(CharRNNError, match="length penalty must be a number >= 0"):
        Beam(2, Stopping(3), rows=1, length_penalty=-1.0)


# --- guided sampling ----------------------------------------------------------------------------


def test_guided_sampling_redraws_a_rejected_piece_from_where_it_began():
    """Token 0 ends a piece; the guide rejects pieces holding a 3. Rolled back, the model's state and
    the ids the processors see are the kept tokens again."""
    model = random_bigram(vocab=5, seed=3, scale=0.5)
    verdicts = []

    def guide(tokens):
        piece = tokens[: -1]
        piece = piece[len(piece) - piece[::-1].index(0):] if 0 in piece else piece
        verdicts.append(3 in piece)
        return 0 if 3 in piece else None

    strategy = Guided(Stopping(40), torch.Generator().manual_seed(0), boundary=0, guide=guide)
    recorder = Recorder()

    def same_as_kept(ids, logits):
        assert ids[0].tolist() == strategy.out[0]
        return recorder(ids, logits)

    _, state = decode(model, strategy, *model.start(), [same_as_kept])
    out = strategy.out[0]
    assert any(verdicts) and not all(verdicts)
    pieces = "".join(map(str, out)).split("0")
    assert all("3" not in piece for piece in pieces[:-1])  # the last piece was cut by the length limit
    assert len(out) == 40 and state[0].tolist() == out[:-1]
    sampled = Sample(Stopping(40), torch.Generator().manual_seed(0))
    decode(model, sampled, *model.start())
    first = sampled.out[0][: sampled.out[0].index(0) + 1]
    assert not verdicts[0] and out[: len(first)] == first  # a first piece kept is the plain sample's, draw for draw
