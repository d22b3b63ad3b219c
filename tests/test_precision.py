"""bf16 step weights (StepWeights.step_precision): close to fp32, which stays exact; chosen and refused cleanly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from charrnn.checkpoint import load_model
from charrnn.cli import main
from charrnn.models.rnn import CharRNN, ModelConfig

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="bf16 steps need oneDNN")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("rows", [1, 5])
def test_bf16_steps_stay_close_to_fp32_which_stays_exact(cell, rows):
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(50, cell=cell, layers=2, hidden=96, embed=16)).eval()
    ids = torch.randint(50, (rows, 40))
    with torch.inference_mode():
        fused, _ = model(ids)
        for precision, tolerance in (("fp32", 1e-5), ("bf16", 5e-2)):
            model.step_precision = precision
            state, steps = model.init_state(rows), []
            for t in range(ids.shape[1]):
                logits, state = model.step(ids[:, t], state)
                steps.append(logits)
            stepped = torch.stack(steps, 1)
            assert (stepped - fused).abs().max() < tolerance, precision
        assert (stepped - fused).abs().max() > 0  # bf16 really ran: not the fp32 weights again


def test_switching_precision_rebuilds_the_step_weights(tiny_run):
    model, _, _ = load_model(tiny_run, torch.device("cpu"))
    fp32 = model.step_weights()
    model.step_precision = "bf16"
    assert model.step_weights() is not fp32 and model.step_precision == "bf16"
    model.step_precision = "fp32"
    assert model.step_weights()[0][1][2].low is None
    with pytest.raises(ValueError, match="one of fp32, bf16"):
        model.step_precision = "int4"


def test_the_held_out_loss_stays_within_bound(tiny_run, small_text):
    """The bound the default must keep (0.003 nats), on the tiny run's text; benchmarks/bench_precision.py
    measures it for the shipped models."""
    model, vocab, _ = load_model(tiny_run, torch.device("cpu"))
    ids = torch.as_tensor(vocab.encode(small_text.read_text(encoding="utf-8")[-4000:]), dtype=torch.long).view(8, -1)
    losses = {}
    with torch.inference_mode():
        for precision in ("fp32", "bf16"):
            model.step_precision = precision
            state, total = model.init_state(8), 0.0
            for t in range(ids.shape[1] - 1):
                logits, state = model.step(ids[:, t], state)
                total += F.cross_entropy(logits, ids[:, t + 1], reduction="sum").item()
            losses[precision] = total / (8 * (ids.shape[1] - 1))
    assert abs(losses["bf16"] - losses["fp32"]) <= 0.003, losses


def test_the_command_line_samples_in_bf16_reproducibly(tiny_run, capsys):
    argv = ["sample", str(tiny_run), "--length", "200", "--seed", "3", "--precision", "bf16"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0 and capsys.readouterr().out == first  # same machine, same seed: same text
