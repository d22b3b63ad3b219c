"""Tests for charrnn.decoding.processors and .sampling: logits processors, settings, prompts and generation."""

from __future__ import annotations

import math

import pytest
import torch

from charrnn.checkpoint import load_model
from charrnn.data import Vocab
from charrnn.decoding.processors import RepetitionPenalty, SamplingSettings, Temperature, TopK, TopP
from charrnn.decoding.sampling import MAX_LENGTH, MAX_PRIME, draw, generate, prepare_prompt
from charrnn.errors import CharRNNError
from charrnn.models.rnn import CharRNN, ModelConfig

from conftest import greedy_text

# Probabilities that are exact in binary, so the cumulative sums top-p compares are exact too.
PROBS = [0.125, 0.5, 0.125, 0.25]  # sorted: index 1 (0.5), 3 (0.25), then 0 and 2 (0.125 each)
LOGITS = torch.log(torch.tensor([PROBS]))
NO_IDS = torch.empty(1, 0, dtype=torch.long)  # the ids so far: none (these processors do not look)


def kept(logits: torch.Tensor) -> set[int]:
    """The indices a processor left finite (row 0)."""
    return {i for i, finite in enumerate(torch.isfinite(logits[0]).tolist()) if finite}


@pytest.fixture(scope="module")
def tiny(tiny_run):
    model, vocab, cfg = load_model(tiny_run)
    return model, vocab, cfg


def small_model(vocab_size: int = 4, model: str = "lstm", seed: int = 0, scale: float = 1.0) -> CharRNN:
    torch.manual_seed(seed)
    m = CharRNN(ModelConfig(vocab_size=vocab_size, cell=model, layers=2, hidden=16, embed=8))
    if scale != 1.0:
        with torch.no_grad():
            m.head.weight.mul_(scale)
    return m.eval()


# --- processors ---------------------------------------------------------------------------------


def test_temperature_divides_logits():
    logits = torch.tensor([[2.0, -1.0, 0.5, 4.0]])
    assert torch.equal(Temperature(2.0)(NO_IDS, logits), logits / 2)
    sharp = Temperature(0.5)(NO_IDS, logits).softmax(-1)
    flat = Temperature(2.0)(NO_IDS, logits).softmax(-1)
    assert sharp.max() > logits.softmax(-1).max() > flat.max()
    assert kept(Temperature(0.3)(NO_IDS, logits)) == {0, 1, 2, 3}


@pytest.mark.parametrize(("k", "expected"), [(1, {1}), (2, {1, 3}), (3, {0, 1, 2, 3}), (4, {0, 1, 2, 3})])
def test_top_k_kept_sets(k, expected):
    # k=3 cuts inside the tie of 0 and 2 (both 0.125): ties with the k-th value are kept, as in Hugging Face.
    out = TopK(k)(NO_IDS, LOGITS)
    assert kept(out) == expected
    assert torch.equal(out[0, list(expected)], LOGITS[0, list(expected)])  # kept logits are untouched


def test_top_k_ties_at_the_top_and_batches():
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0, -2.0],
                           [0.0, 1.0, 2.0, 3.0, 4.0]])
    out = TopK(2)(NO_IDS, logits)
    assert {i for i in range(5) if math.isfinite(out[0, i])} == {1, 2}
    assert {i for i in range(5) if math.isfinite(out[1, i])} == {3, 4}  # each row keeps its own top k


@pytest.mark.parametrize(("p", "expected"), [
    (0.3, {1}),
    (0.5, {1}),  # 0.5 reaches p exactly: nothing more is needed
    (0.6, {1, 3}),
    (0.75, {1, 3}),
    (0.8, None),  # one of the tied 0.125s
    (0.875, None),
    (0.9, {0, 1, 2, 3}),
    (1.0, {0, 1, 2, 3}),
])
def test_top_p_kept_sets(p, expected):
    out = TopP(p)(NO_IDS, LOGITS)
    if expected is None:  # the nucleus ends inside a tie: exactly one of the tied characters is kept
        assert len(kept(out)) == 3 and {1, 3} <= kept(out)
    else:
        assert kept(out) == expected
    assert torch.equal(out[0, list(kept(out))], LOGITS[0, list(kept(out))])


def test_top_p_always_keeps_the_most_likely_and_works_per_row():
    logits = torch.tensor([[10.0, 0.0, 0.0], [0.0, 0.0, 5.0]])
    out = TopP(0.01)(NO_IDS, logits)
    assert [kept(out[i : i + 1]) for i in range(2)] == [{0}, {2}]
    uniform = torch.zeros(1, 4)
    assert len(kept(TopP(0.5)(NO_IDS, uniform))) == 2
    assert len(kept(TopP(0.51)(NO_IDS, uniform))) == 3
    assert kept(TopP(1.0)(NO_IDS, uniform)) == {0, 1, 2, 3}


def test_top_p_one_keeps_even_tiny_probabilities():
    logits = torch.tensor([[20.0, 0.0, 0.0]])  # the two small ones have probability 2e-9 each, not zero
    assert kept(TopP(1.0)(NO_IDS, logits)) == {0, 1, 2}


def draws(logits: torch.Tensor, processors, n: int = 400, seed: int = 0) -> set[int]:
    g = torch.Generator().manual_seed(seed)
    logits = logits.expand(n, -1)
    for proc in processors:
        logits = proc(NO_IDS, logits)
    return set(draw(logits, generator=g).tolist())


def test_processors_compose_in_the_order_given():
    # Temperature first sharpens to [.045, .727, .045, .182]: top-p 0.6 keeps only index 1.
    assert kept(TopP(0.6)(NO_IDS, Temperature(0.5)(NO_IDS, LOGITS))) == {1}
    # Top-p first keeps {1, 3}; the temperature does not bring the others back.
    assert kept(Temperature(0.5)(NO_IDS, TopP(0.6)(NO_IDS, LOGITS))) == {1, 3}
    # Top-k 2 renormalises to [2/3, 1/3]: top-p 0.6 after it keeps one; before it, two.
    assert kept(TopP(0.6)(NO_IDS, TopK(2)(NO_IDS, LOGITS))) == {1}
    assert kept(TopK(2)(NO_IDS, TopP(0.6)(NO_IDS, LOGITS))) == {1, 3}
    # A chain applies in list order.
    assert draws(LOGITS, [Temperature(0.5), TopP(0.6)]) == {1}
    assert draws(LOGITS, [TopP(0.6), Temperature(0.5)]) == {1, 3}
    assert draws(LOGITS, []) == {0, 1, 2, 3}


def test_settings_build_the_processor_chain():
    assert SamplingSettings(1.0, None, None).processors == ()
    greedy = SamplingSettings(0, None, 1.0)  # greedy needs no temperature; top-p 1 keeps everything
    assert greedy.processors == () and greedy.greedy
    assert not SamplingSettings(0.5).greedy and SamplingSettings(0.5, greedy=True).greedy
    chain = SamplingSettings(0.7, 5, 0.9).processors
    assert [type(p) for p in chain] == [Temperature, TopK, TopP]
    assert (chain[0].t, chain[1].k, chain[2].p) == (0.7, 5, 0.9)
    assert SamplingSettings(stop=["", "\n"]).stop == ("\n",)  # empty stop strings would stop at once


@pytest.mark.parametrize(("make", "match"), [
    (lambda: Temperature(0), r"temperature must be a finite number > 0; use greedy=True \(or --temperature 0\)"),
    (lambda: Temperature(-1), "temperature must be a finite number > 0"),
    (lambda: Temperature(math.inf), "temperature must be a finite number > 0"),
    (lambda: TopK(0), r"top-k must be a whole number >= 1 \(leave it out to keep every character\); got 0"),
    (lambda: TopK(2.5), "top-k must be a whole number"),
    (lambda: TopP(0), r"top-p must be in \(0, 1\]; 1 \(or leaving it out\) keeps every character; got 0"),
    (lambda: TopP(1.5), "top-p must be in"),
])
def test_each_processor_checks_its_argument(make, match):
    with pytest.raises(CharRNNError, match=match):
        make()


# --- argument checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"temperature": -1.0}, "temperature"),
    ({"temperature": -1e-9}, "temperature"),
    ({"temperature": math.nan}, "temperature"),
    ({"temperature": math.inf}, "temperature"),
    ({"top_k": 0}, "top-k"),
    ({"top_k": -3}, "top-k"),
    ({"top_k": 11}, "top-k"),
    ({"top_p": 0.0}, "top-p"),
    ({"top_p": -0.5}, "top-p"),
    ({"top_p": 1.0000001}, "top-p"),
    ({"top_p": 1.5}, "top-p"),
    ({"top_p": math.nan}, "top-p"),
])
def test_sampling_settings_reject(kwargs, match):
    with pytest.raises(CharRNNError, match=match):
        SamplingSettings(**kwargs).validate(10)


def test_sampling_settings_accept_the_edges():
    SamplingSettings(temperature=0).validate(10)
    SamplingSettings(temperature=0.0, top_k=1, top_p=1.0).validate(10)
    SamplingSettings(temperature=5, top_k=10, top_p=1e-6).validate(10)
    SamplingSettings().validate(10)


def test_sampling_settings_message_names_the_vocab_size():
    with pytest.raises(CharRNNError, match=r"vocabulary size 10; got 11"):
        SamplingSettings(top_k=11).validate(10)


# --- draw ---------------------------------------------------------------------------------------


def test_greedy_settings_leave_the_warpers_out_and_top_k_one_draws_the_argmax():
    torch.manual_seed(3)
    logits = torch.randn(64, 30)
    # Greedy: temperature, top-k and top-p never move the argmax, so they are not run at all.
    assert SamplingSettings(0, top_k=5, top_p=0.5).processors == ()
    assert [type(p) for p in SamplingSettings(0, top_k=5, repetition_penalty=1.3).processors] == [RepetitionPenalty]
    # Sampling through top-k 1 is greedy.
    assert torch.equal(draw(TopK(1)(NO_IDS, logits), generator=torch.Generator().manual_seed(0)), logits.argmax(-1))


def test_draw_samples_from_the_softmax():
    g = torch.Generator().manual_seed(1)
    n = 40_000
    ids = draw(LOGITS.expand(n, -1), generator=g)
    freq = torch.bincount(ids, minlength=4).double() / n
    assert torch.allclose(freq, torch.tensor(PROBS, dtype=torch.float64), atol=0.01)


def test_draw_never_draws_a_masked_character():
    """Masked characters first, last and between: 50,000 draws land on the two that may be drawn only."""
    logits = torch.tensor([[-math.inf, 0.0, -math.inf, 1.0, -math.inf]]).expand(50_000, -1)
    ids = draw(logits, generator=torch.Generator().manual_seed(2))
    assert ids.unique().tolist() == [1, 3]
    assert abs((ids == 3).double().mean().item() - math.e / (1 + math.e)) < 0.01


# --- prepare_prompt -----------------------------------------------------------------------------


def test_prompt_unknown_characters_are_listed(tiny):
    model, vocab, _ = tiny
    assert not {"\u2603", "\u20ac"} & set(vocab.chars)
    with pytest.raises(CharRNNError) as e:
        prepare_prompt(model, vocab, "hello \u2603 wor\u20acld \u2603")
    message = str(e.value)
    assert "'\u2603'" in message and "'\u20ac'" in message
    assert message.count("\u2603") == 1  # each unknown character once
    assert "skip" in message


def test_prompt_unknown_skip_drops_them(tiny):
    model, vocab, _ = tiny
    skipped = prepare_prompt(model, vocab, "hello \u2603wor\u20acld", unknown="skip")
    clean = prepare_prompt(model, vocab, "hello world")
    assert skipped.text == "hello world"
    assert torch.equal(skipped.logits, clean.logits)


def test_prompt_all_unknown_with_skip_is_an_empty_prime(tiny):
    model, vocab, cfg = tiny
    prompt = prepare_prompt(model, vocab, "\u2603\u2603", unknown="skip", char_counts=cfg.char_counts)
    assert prompt.text == ""
    assert torch.allclose(prompt.logits, prepare_prompt(model, vocab, "", char_counts=cfg.char_counts).logits)


def test_empty_prime_starts_from_char_counts(tiny):
    model, vocab, cfg = tiny
    assert len(cfg.char_counts) == len(vocab)
    for ch in ("Q", "q", "e"):
        counts = [0] * len(vocab)
        counts[vocab.index[ch]] = 1000
        prompt = prepare_prompt(model, vocab, "", char_counts=counts)
        assert prompt.text == ""
        assert int(prompt.logits.argmax()) == vocab.index[ch]
        text = "".join(generate(model, vocab, prompt, 5, SamplingSettings(temperature=0)))
        assert text[0] == ch
    # The corpus's own counts: the first character follows its frequencies.
    prompt = prepare_prompt(model, vocab, "", char_counts=cfg.char_counts)
    probs = prompt.logits.softmax(-1)[0]
    total = sum(cfg.char_counts)
    for i, c in enumerate(cfg.char_counts):
        if c:
            assert probs[i].item() == pytest.approx(c / total, rel=1e-4)
    # No counts: uniform.
    logits = prepare_prompt(model, vocab, "").logits
    assert torch.allclose(logits.softmax(-1), torch.full((1, len(vocab)), 1 / len(vocab)))


def test_empty_prime_state_is_zero(tiny):
    model, vocab, _ = tiny
    prompt = prepare_prompt(model, vocab, "")
    h, c = prompt.state
    assert h.shape == (model.cfg.layers, 1, model.cfg.hidden)
    assert not h.any() and not c.any()


def test_long_prime_conditions_on_its_tail(tiny, small_text, monkeypatch):
    model, vocab, _ = tiny
    text = small_text.read_text(encoding="utf-8")
    prime = text[: MAX_PRIME + 777]
    tail = prime[-MAX_PRIME:]
    read = []
    forward = model.forward

    def spy(x, state=None):
        read.append(vocab.decode(x[0].tolist()))
        return forward(x, state)

    monkeypatch.setattr(model, "forward", spy)
    long, short = prepare_prompt(model, vocab, prime), prepare_prompt(model, vocab, tail)
    assert read == [tail, tail]  # the model reads the tail only, in one call
    monkeypatch.undo()
    assert torch.allclose(long.logits, short.logits, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(long.state, short.state, strict=True))


def test_prompt_logits_match_a_step_loop():
    model = small_model(vocab_size=5)
    vocab = Vocab(list("abcde"))
    prime = "abcdeedcba"
    prompt = prepare_prompt(model, vocab, prime)
    assert prompt.text == prime and prompt.logits.shape == (1, 5)
    state = model.init_state(1)
    with torch.inference_mode():
        for ch in prime:
            logits, state = model.step(torch.tensor([vocab.index[ch]]), state)
    assert torch.allclose(prompt.logits, logits, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_step_matches_the_fused_forward(cell):
    """generate advances with model.step; its logits must be those of the fused kernel."""
    model = small_model(vocab_size=7, model=cell, seed=4, scale=3.0)
    ids = torch.randint(0, 7, (3, 12), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        fused, _ = model(ids)
        state = model.init_state(3)
        for t in range(ids.shape[1]):
            logits, state = model.step(ids[:, t], state)
            assert torch.allclose(logits, fused[:, t], atol=1e-5), (cell, t)


# --- generate -----------------------------------------------------------------------------------


def test_generate_same_seed_same_text(tiny):
    model, vocab, _ = tiny
    prompt = prepare_prompt(model, vocab, "ROMEO:")
    a = "".join(generate(model, vocab, prompt, 120, SamplingSettings(temperature=1.0, seed=7)))
    b = "".join(generate(model, vocab, prompt, 120, SamplingSettings(temperature=1.0, seed=7)))
    c = "".join(generate(model, vocab, prompt, 120, SamplingSettings(temperature=1.0, seed=8)))
    assert a == b
    assert a != c
    assert len(a) == len(c) == 120
    assert set(a) <= set(vocab.chars)


def test_generate_does_not_change_the_prompt(tiny):
    model, vocab, _ = tiny
    prompt = prepare_prompt(model, vocab, "ROMEO:")
    logits = prompt.logits.clone()
    first = "".join(generate(model, vocab, prompt, 50, SamplingSettings(seed=1)))
    assert torch.equal(prompt.logits, logits)
    assert "".join(generate(model, vocab, prompt, 50, SamplingSettings(seed=1))) == first


def test_generate_temperature_zero_is_greedy(tiny):
    model, vocab, _ = tiny
    prompt = prepare_prompt(model, vocab, "ROMEO:")
    expected = greedy_text(model, vocab, "ROMEO:", 80)
    assert "".join(generate(model, vocab, prompt, 80, SamplingSettings(temperature=0, seed=1))) == expected
    assert "".join(generate(model, vocab, prompt, 80, SamplingSettings(temperature=0, seed=2))) == expected
    # top-k 1 and a tiny nucleus leave one character: sampling is greedy whatever the seed.
    for settings in (SamplingSettings(temperature=1.0, top_k=1, seed=3), SamplingSettings(0.9, top_p=1e-6, seed=4)):
        assert "".join(generate(model, vocab, prompt, 80, settings)) == expected


def test_generate_first_character_follows_the_tempered_distribution():
    model = small_model(vocab_size=4, seed=2, scale=4.0)
    vocab = Vocab(list("abcd"))
    prompt = prepare_prompt(model, vocab, "abca")
    for temperature in (1.0, 0.5):
        expected = (prompt.logits[0] / temperature).softmax(-1).double()
        n = 4000
        firsts = [next(generate(model, vocab, prompt, 1, SamplingSettings(temperature, seed=s))) for s in range(n)]
        freq = torch.tensor([firsts.count(c) / n for c in vocab.chars], dtype=torch.float64)
        assert torch.allclose(freq, expected, atol=0.03), (temperature, freq, expected)


def test_generate_stops_right_after_a_stop_string(tiny):
    model, vocab, _ = tiny
    prompt = prepare_prompt(model, vocab, "KING:")
    for temperature, seed in ((0, None), (1.0, 11)):
        full = "".join(generate(model, vocab, prompt, 300, SamplingSettings(temperature=temperature, seed=seed)))
        stop = full[100:103]
        end = full.index(stop) + len(stop)
        text = "".join(generate(model, vocab, prompt, 300, SamplingSettings(temperature, seed=seed, stop=[stop])))
        assert text == full[:end]
        assert text.endswith(stop) and stop not in text[:-1]
        # Several stop strings: the first to appear ends the text.
        other = full[150:152]
        text = "".join(generate(model, vocab, prompt, 300, SamplingSettings(temperature, seed=seed,
                                                                          stop=[other, stop])))
        assert text == full[: min(end, full.index(other) + len(other))]
    # A stop string that never appears: the full length.
    assert len("".join(generate(model, vocab, prompt, 60, SamplingSettings(seed=1, stop=["\u2603\u2603"])))) == 60


def test_empty_stop_string_is_ignored_or_rejected_consistently(tiny):
    model, vocab, _ = tiny
    prompt = prepare_prompt(model, vocab, "ROMEO:")
    full = "".join(generate(model, vocab, prompt, 40, SamplingSettings(seed=5)))

    def text_or_none(stop):
        try:
            return "".join(generate(model, vocab, prompt, 40, SamplingSettings(seed=5, stop=stop)))
        except CharRNNError:
            return None

    outcomes = {text_or_none([""]), text_or_none(["", "\u2603\u2603"])}
    assert outcomes in ({full}, {None})


@pytest.mark.parametrize("length", [0, -1, MAX_LENGTH + 1, 10**12])
def test_generate_length_bounds(tiny, length):
    model, vocab, _ = tiny
    prompt = prepare_prompt(model, vocab, "a")
    with pytest.raises(CharRNNError, match="length"):
        "".join(generate(model, vocab, prompt, length, SamplingSettings(seed=0)))


def test_generate_length_one_and_bad_sampling_args(tiny):
    model, vocab, _ = tiny
    prompt = prepare_prompt(model, vocab, "a")
    assert len("".join(generate(model, vocab, prompt, 1, SamplingSettings(seed=0)))) == 1
    with pytest.raises(CharRNNError, match="top-k"):
        "".join(generate(model, vocab, prompt, 10, SamplingSettings(top_k=len(vocab) + 1)))
    with pytest.raises(CharRNNError, match="temperature"):
        "".join(generate(model, vocab, prompt, 10, SamplingSettings(temperature=math.nan)))
