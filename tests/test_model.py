import copy

import pytest
import torch

from charrnn.models.rnn import CharRNN, ModelConfig


def run_steps(model, x, state):
    outs = []
    for t in range(x.shape[1]):
        logits, state = model.step(x[:, t], state)
        outs.append(logits)
    return torch.stack(outs, 1), state


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("batch", [1, 3])  # one row and several use different weight layouts
def test_step_equals_fused_forward(kind, layers, batch):
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(vocab_size=11, cell=kind, layers=layers, hidden=24, embed=5)).eval()
    x = torch.randint(0, 11, (batch, 17))
    with torch.inference_mode():
        fused, fused_state = model(x)
        stepped, step_state = run_steps(model, x, model.init_state(batch))
    torch.testing.assert_close(stepped, fused, atol=1e-5, rtol=1e-5)
    for a, b in zip(torch.utils._pytree.tree_leaves(step_state), torch.utils._pytree.tree_leaves(fused_state),
                    strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_states_interchange_between_paths(kind):
    """Generation reads the prime with the fused kernel, then continues with step()."""
    torch.manual_seed(1)
    model = CharRNN(ModelConfig(vocab_size=7, cell=kind, layers=2, hidden=16, embed=4)).eval()
    x = torch.randint(0, 7, (2, 12))
    with torch.inference_mode():
        full, _ = model(x)
        _, state = model(x[:, :8])
        rest, _ = run_steps(model, x[:, 8:], state)
    torch.testing.assert_close(rest, full[:, 8:], atol=1e-5, rtol=1e-5)


def test_step_weights_follow_training_and_loading():
    torch.manual_seed(2)
    model = CharRNN(ModelConfig(vocab_size=5, layers=1, hidden=8, embed=3)).eval()
    x = torch.tensor([1])
    with torch.no_grad():
        before, _ = model.step(x, model.init_state(1))
    model.train()
    with torch.no_grad():
        model.head.bias += 1.0
    model.eval()
    with torch.no_grad():
        after, _ = model.step(x, model.init_state(1))
        torch.testing.assert_close(after, before + 1.0)
        other = CharRNN(ModelConfig(vocab_size=5, layers=1, hidden=8, embed=3))
        model.load_state_dict(other.state_dict())
        loaded, _ = model.step(x, model.init_state(1))
        expected, _ = other.eval().step(x, other.init_state(1))
    torch.testing.assert_close(loaded, expected)


def test_reorder_picks_rows():
    model = CharRNN(ModelConfig(vocab_size=5, layers=2, hidden=4, embed=3))
    h, c = model.init_state(3)
    h[:, 1] = 7.0
    picked = model.reorder((h, c), torch.tensor([1, 1, 0]))
    assert picked[0].shape == (2, 3, 4) and (picked[0][:, :2] == 7).all() and (picked[0][:, 2] == 0).all()
    gru = CharRNN(ModelConfig(vocab_size=5, cell="gru", layers=2, hidden=4, embed=3))
    h = gru.init_state(2)
    h[:, 0] = 1.0
    assert torch.equal(gru.reorder(h, torch.tensor([0])), h[:, :1])


def test_read_gives_the_logits_after_the_last_id():
    torch.manual_seed(5)
    model = CharRNN(ModelConfig(vocab_size=6, layers=2, hidden=8, embed=3)).eval()
    x = torch.randint(0, 6, (2, 9))
    with torch.inference_mode():
        fused, fused_state = model(x, model.init_state(2))
        last, state = model.read(x, model.init_state(2))
    assert last.shape == (2, 6) and torch.equal(last, fused[:, -1])
    assert all(torch.equal(a, b) for a, b in zip(state, fused_state, strict=True))


@pytest.mark.parametrize(("cast", "dtype", "tol"), [
    (lambda m: m.double(), torch.float64, 1e-9),
    (lambda m: m.half(), torch.float16, 2e-2),
    (lambda m: m.to(torch.bfloat16), torch.bfloat16, 1e-1),
])
def test_casting_the_model_rebuilds_the_step_weights(cast, dtype, tol):
    """step keeps rearranged weights; a cast (or a move) must not leave it on the old ones."""
    torch.manual_seed(6)
    model = CharRNN(ModelConfig(vocab_size=7, layers=2, hidden=16, embed=4)).eval()
    x = torch.randint(0, 7, (3, 5))
    with torch.inference_mode():
        model.step(x[:, 0], model.init_state(3))  # builds the float32 step weights
        cast(model)
        stepped, _ = run_steps(model, x, model.init_state(3))
        assert stepped.dtype == dtype
        reference = copy.deepcopy(model).double()  # the cast weights, through the fused kernel in float64
        fused, _ = reference(x)
    torch.testing.assert_close(stepped.double(), fused, atol=tol, rtol=tol)


def test_unknown_cell_type():
    with pytest.raises(ValueError, match="lstm, gru, rnn"):
        ModelConfig(vocab_size=5, cell="transformer")
