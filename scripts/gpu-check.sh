#!/usr/bin/env bash
# GPU check (stop 32; results: bench/results/2026-12-04-cuda-h200/, docs/performance.md "CUDA"):
# CPU vs CUDA eval of a committed run, short GPT-2 trainings and a LoRA run on the committed base on
# both, generation on both; writes to $OUT. Runs inside the kit that scripts/gpu-kit.sh builds
# (cd app; it holds this script as check.sh and only runs/arithmetic-tiny and runs/base-llama-small,
# as all of runs/ is over a device call's 64 MiB). On the GPU machine, with the kit in /root:
#   cd /root && tar xJf app.tar.xz && cat kit/cuda.part-* | xz -d \
#     > app/node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so
#   cd app && OUT=/some/dir bash check.sh
set -u
export PATH=$PWD:$PATH
L=$(python3 -c "import nvidia, os; print(':'.join(r for p in nvidia.__path__ for r, d, f in os.walk(p) if r.endswith('/lib')))" 2>/dev/null)
export LD_LIBRARY_PATH=$L:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
node --version; nproc
for prov in cpu cuda; do
  echo "== eval $prov"; /usr/bin/time -v node dist/cli.js eval --run runs/arithmetic-tiny --n 500 --provider $prov > "$OUT/eval-$prov.txt" 2> "$OUT/eval-$prov.err"; tail -3 "$OUT/eval-$prov.txt"; grep -E "Elapsed|Maximum resident" "$OUT/eval-$prov.err"; tail -3 "$OUT/eval-$prov.err" | grep -v -E "^\s" 
done
for preset in tiny small; do for prov in cuda cpu; do
  echo "== train $preset $prov 200 steps"; s=$(date +%s)
  node dist/cli.js train --task arithmetic --preset $preset --seed 0 --steps 200 --provider $prov --out /tmp/t-$preset-$prov --force > "$OUT/train-$preset-$prov.txt" 2>&1; echo "rc $? wall $(( $(date +%s) - s )) s"
  tr '\r' '\n' < "$OUT/train-$preset-$prov.txt" | grep -v "^$" | tail -2
done; done
for prov in cuda cpu; do
  echo "== lora $prov"; s=$(date +%s)
  node dist/cli.js train --base runs/base-llama-small --lora --task arithmetic --seed 0 --out /tmp/l-$prov --epochs 2 --eval-n 100 --provider $prov --force 2>&1 | tr '\r' '\n' | grep -E "step/s|kept|stopped" | tail -3
  echo "wall $(( $(date +%s) - s )) s"
  echo "== generate $prov"; node dist/cli.js generate --run runs/base-llama-small --prompt "12+34+56+78=" --provider $prov 2>&1 | tail -2
done
