#!/usr/bin/env bash
# The GPU check, in one short run (about 5 minutes) on a machine with CUDA: the tests that use CUDA,
# training throughput against bare cuDNN, sampling, the batcher, and a torchrun job with NCCL on one GPU.
#
#     bash benchmarks/gpu.sh [CORPUS]      # default ../shared/corpora/tinyshakespeare.txt
#
# It writes gpu-results/ (logs of each part) and stops at the first part that fails.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD
CORPUS=${1:-../shared/corpora/tinyshakespeare.txt}
OUT=gpu-results
mkdir -p "$OUT"
python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: this script needs one')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"

echo "== tests that use CUDA (they skip without it; here they must run)"
python -m pytest -q -rs -k "cuda or gpu or device" tests/ 2>&1 | tee "$OUT/tests.txt"

echo "== training throughput: charrnn's step against bare nn.LSTM (cuDNN), same shapes"
python - "$CORPUS" <<'PY' 2>&1 | tee "$OUT/train.txt"
import sys, tempfile, time
import torch, torch.nn.functional as F
from charrnn.training.trainer import TrainConfig, Trainer
dev = torch.device("cuda")
def rate(fn, chars, n=30):
    fn(); torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(n): fn()
    torch.cuda.synchronize(); return chars * n / (time.perf_counter() - t)
for hidden, batch, seq in ((512, 64, 128), (1024, 128, 128)):
    emb = torch.nn.Embedding(65, 64).to(dev); rnn = torch.nn.LSTM(64, hidden, 2, batch_first=True).to(dev)
    head = torch.nn.Linear(hidden, 65).to(dev)
    params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, 1e-3)
    x = torch.randint(0, 65, (batch, seq), device=dev); y = torch.randint(0, 65, (batch, seq), device=dev)
    def bare():
        out, _ = rnn(emb(x)); loss = F.cross_entropy(head(out).flatten(0, 1), y.flatten())
        opt.zero_grad(); loss.backward(); opt.step()
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(TrainConfig(corpus=sys.argv[1], out=d + "/run", hidden=hidden, layers=2, batch_size=batch, seq_len=seq,
                                 device="cuda", max_steps=10**6), progress=False)
        ours = rate(tr.train_step, batch * seq)
    print(f"2x{hidden} B{batch}xT{seq}: bare cuDNN {rate(bare, batch * seq):,.0f} chars/s, charrnn {ours:,.0f} chars/s")
PY

echo "== sampling on the GPU (the shipped 2x512 model)"
python -m charrnn sample models/shakespeare --device cuda --length 2000 --seed 1 --prime "ROMEO:" 2>&1 \
  | tail -n 3 | tee "$OUT/sample.txt"

echo "== the batcher on the GPU: alone, threads and batched"
python -m benchmarks.bench_batcher --device cuda --clients 1 8 32 --rounds 1 2>&1 | tee "$OUT/batcher.txt"

echo "== torchrun with NCCL on one GPU"
rm -rf "$OUT/torchrun-run"
torchrun --standalone --nproc_per_node=1 -m charrnn train "$CORPUS" --out "$OUT/torchrun-run" --device cuda \
  --max-steps 200 --quiet 2>&1 | tee "$OUT/torchrun.txt"
test -f "$OUT/torchrun-run/model.safetensors"
echo "gpu.sh: all parts ran; logs in $OUT/"
