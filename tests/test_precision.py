"""bf16 and int8 step weights (StepWeights.step_precision): close to fp32, which stays exact; chosen and refused
cleanly; int8 the default of sampling and the app's language models where the CPU has fbgemm."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from charrnn.checkpoint import load_model
from charrnn.cli import main
from charrnn.models.rnn import CharRNN, ModelConfig, int8_supported, serving_precision

# What this machine can run (an x86 CPU, as CI runs on, has both)
LOW = [pytest.param("bf16", marks=pytest.mark.skipif(not torch.backends.mkldnn.is_available(),
                                                     reason="bf16 steps need oneDNN")),
       pytest.param("int8", marks=pytest.mark.skipif(not int8_supported(), reason="int8 steps need fbgemm (x86)"))]


@pytest.mark.parametrize("low", LOW)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("rows", [1, 5])
def test_low_precision_steps_stay_close_to_fp32_which_stays_exact(cell, rows, low):
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(50, cell=cell, layers=2, hidden=96, embed=16)).eval()
    ids = torch.randint(50, (rows, 40))
    with torch.inference_mode():
        fused, _ = model(ids)
        for precision, tolerance in (("fp32", 1e-5), (low, 5e-2)):
            model.step_precision = precision
            state, steps = model.init_state(rows), []
            for t in range(ids.shape[1]):
                logits, state = model.step(ids[:, t], state)
                steps.append(logits)
            stepped = torch.stack(steps, 1)
            assert (stepped - fused).abs().max() < tolerance, precision
        assert (stepped - fused).abs().max() > 0  # it really ran: not the fp32 weights again


@pytest.mark.parametrize("low", LOW)
def test_switching_precision_rebuilds_the_step_weights(tiny_run, low):
    model, _, _ = load_model(tiny_run, torch.device("cpu"))
    fp32 = model.step_weights()
    model.step_precision = low
    assert model.step_weights() is not fp32 and model.step_precision == low
    model.step_precision = "fp32"
    hh = model.step_weights()[0][1][2]
    assert hh.low is None and hh.int8 is None
    with pytest.raises(ValueError, match="one of fp32, bf16, int8"):
        model.step_precision = "int4"


@pytest.mark.parametrize("low", LOW)
def test_the_held_out_loss_stays_within_bound(tiny_run, small_text, low):
    """The bound the default must keep (0.003 nats), on the tiny run's text; benchmarks/bench_precision.py
    measures it for the shipped models."""
    model, vocab, _ = load_model(tiny_run, torch.device("cpu"))
    ids = torch.as_tensor(vocab.encode(small_text.read_text(encoding="utf-8")[-4000:]), dtype=torch.long).view(8, -1)
    losses = {}
    with torch.inference_mode():
        for precision in ("fp32", low):
            model.step_precision = precision
            state, total = model.init_state(8), 0.0
            for t in range(ids.shape[1] - 1):
                logits, state = model.step(ids[:, t], state)
                total += F.cross_entropy(logits, ids[:, t + 1], reduction="sum").item()
            losses[precision] = total / (8 * (ids.shape[1] - 1))
    assert abs(losses[low] - losses["fp32"]) <= 0.003, losses


@pytest.mark.parametrize("low", LOW)
def test_the_command_line_samples_in_low_precision_reproducibly(tiny_run, capsys, low):
    argv = ["sample", str(tiny_run), "--length", "200", "--seed", "3", "--precision", low]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0 and capsys.readouterr().out == first  # same machine, same seed: same text


@pytest.mark.skipif(not int8_supported(), reason="int8 steps need fbgemm (x86)")
def test_sampling_and_the_app_default_to_int8_where_the_cpu_has_it(tiny_run, tmp_path, capsys):
    from charrnn.serve.registry import Registry

    assert serving_precision(torch.device("cpu")) == "int8"
    argv = ["sample", str(tiny_run), "--length", "300", "--seed", "3"]
    texts = {}
    for precision in (None, "int8", "fp32"):
        assert main(argv + (["--precision", precision] if precision else [])) == 0
        texts[precision] = capsys.readouterr().out
    assert texts[None] == texts["int8"] != texts["fp32"]
    registry = Registry(tmp_path, tiny_run.parent)
    assert registry.load(f"trained/{tiny_run.name}").model.step_precision == "int8"


@pytest.mark.skipif(not int8_supported(), reason="int8 steps need fbgemm (x86)")
def test_an_int8_row_answers_the_same_alone_as_batched_with_others():
    """fbgemm quantizes a batch's input on the batch's range: requests batched together (the app's batcher,
    beams) must not move each other's answers."""
    torch.manual_seed(0)
    model = CharRNN(ModelConfig(50, layers=2, hidden=96, embed=16)).eval()
    model.step_precision = "int8"
    ids = torch.randint(50, (4, 30))
    with torch.inference_mode():
        batched, alone = model.init_state(4), [model.init_state(1) for _ in range(4)]
        for t in range(ids.shape[1]):
            logits, batched = model.step(ids[:, t], batched)
            rows = []
            for i in range(4):
                row, alone[i] = model.step(ids[i : i + 1, t], alone[i])
                rows.append(row)
            assert (logits - torch.cat(rows)).abs().max() < 1e-4
