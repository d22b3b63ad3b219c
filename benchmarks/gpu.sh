#!/usr/bin/env bash
# The GPU check, in one short run (about 5 minutes) on a machine with CUDA: the tests that use CUDA,
# training throughput against bare cuDNN, sampling, the batcher, seq2seq training and decoding, and a
# torchrun job with NCCL on one GPU.
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
# Arguments: the corpus, the device, then one HIDDENxBATCHxSEQ per shape (a CPU check: cpu 32x4x16).
python - "$CORPUS" cuda 512x64x128 1024x128x128 <<'PY' 2>&1 | tee "$OUT/train.txt"
import sys, tempfile, time
import torch, torch.nn.functional as F
from charrnn.training.config import TrainConfig
from charrnn.training.lm import evaluate
from charrnn.training.trainer import Trainer
corpus, dev, shapes = sys.argv[1], torch.device(sys.argv[2]), sys.argv[3:]
def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()
def rate(fn, n=30):  # fn() makes one step and returns how many characters it predicted
    fn(); sync(); t = time.perf_counter(); chars = 0
    for _ in range(n): chars += fn()
    sync(); return chars / (time.perf_counter() - t)
for hidden, batch, seq in (map(int, s.split("x")) for s in shapes):
    emb = torch.nn.Embedding(65, 64).to(dev); rnn = torch.nn.LSTM(64, hidden, 2, batch_first=True).to(dev)
    head = torch.nn.Linear(hidden, 65).to(dev)
    params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, 1e-3)
    x = torch.randint(0, 65, (batch, seq), device=dev); y = torch.randint(0, 65, (batch, seq), device=dev)
    def bare():
        out, _ = rnn(emb(x)); loss = F.cross_entropy(head(out).flatten(0, 1), y.flatten())
        opt.zero_grad(); loss.backward(); opt.step(); return batch * seq
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(TrainConfig(corpus=corpus, out=d + "/run", hidden=hidden, layers=2, batch_size=batch, seq_len=seq,
                                 device=dev.type, max_steps=10**6, cache_dir=d + "/cache"), progress=False)
        ours = rate(lambda: tr.train_step()[1])  # train_step returns (loss, characters predicted)
        sync(); t = time.perf_counter()
        evaluate(tr.model, tr.task.val_ids, tr.cfg.eval_batch, 256, dev); sync()
        eval_s = time.perf_counter() - t
        tr.release()
    print(f"2x{hidden} B{batch}xT{seq}: bare cuDNN {rate(bare):,.0f} chars/s, charrnn {ours:,.0f} chars/s, "
          f"one val eval {eval_s:.2f} s")
PY

echo "== sampling on the GPU (the shipped 2x512 model)"
python -m charrnn sample models/shakespeare --device cuda --length 2000 --seed 1 --prime "ROMEO:" 2>&1 \
  | tail -n 3 | tee "$OUT/sample.txt"

echo "== the batcher on the GPU: alone, threads and batched"
python -m benchmarks.bench_batcher --device cuda --clients 1 8 32 --rounds 1 2>&1 | tee "$OUT/batcher.txt"

echo "== seq2seq on the GPU: training against the bare modules, then greedy and beam decoding"
test -f corpora/cmudict.train.tsv || python -m charrnn corpora build cmudict
G2P=models/g2p
if [ ! -f "$G2P/config.json" ]; then  # no shipped model here: a short run gives one to decode with
  G2P=$OUT/g2p-run
  rm -rf "$G2P"
  python -m charrnn seq2seq train cmudict --out "$G2P" --target-tokens space --device cuda --max-steps 300 \
    --eval-every 300 --quiet 2>&1 | tee "$OUT/g2p-train.txt"
fi
python -m benchmarks.bench_seq2seq --device cuda --threads 2 --rounds 2 --model "$G2P" 2>&1 | tee "$OUT/seq2seq.txt"

echo "== torchrun with NCCL on one GPU"
rm -rf "$OUT/torchrun-run"
torchrun --standalone --nproc_per_node=1 -m charrnn train "$CORPUS" --out "$OUT/torchrun-run" --device cuda \
  --max-steps 200 --quiet 2>&1 | tee "$OUT/torchrun.txt"
test -f "$OUT/torchrun-run/model.safetensors"
echo "gpu.sh: all parts ran; logs in $OUT/"
