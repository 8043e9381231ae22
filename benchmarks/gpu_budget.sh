#!/usr/bin/env bash
# One prepared command for a lent GPU (the `device` tool): budget curves of DM, DataDAM and ATOM on Fashion-MNIST
# (suites/budget_fashion_gpu.yaml: IPC 1/10/50, the papers' full iterations, 5 snapshots each, evaluated under the
# common protocol), then the iteration speed-ups and the ensemble evaluation benchmarks; everything it measures is
# written under $OUT (the device tool copies it back: at most 8 files).
#
#   bash benchmarks/gpu_budget.sh                   # on the GPU machine, OUT=... set by the device tool
#   BUDGET=tiny DEVICE=cpu OUT=/tmp/gb bash benchmarks/gpu_budget.sh   # the CPU rehearsal at a tiny budget
#
# LIMIT (seconds, default 240) bounds the suite: a distillation cut off there keeps its snapshots, and the
# benchmarks still run; the report covers whatever finished. A second call resumes from the snapshots (the results
# folder must be carried or left in place).
set -uo pipefail
OUT=${OUT:-results/gpu_budget_out}
BUDGET=${BUDGET:-full}
DEVICE=${DEVICE:-cuda}
LIMIT=${LIMIT:-240}
RESULTS=${RESULTS:-results/gpu_budget}
mkdir -p "$OUT" "$RESULTS"
python -c "import atombench" 2>/dev/null || pip install --no-deps --no-build-isolation -q -e . >/dev/null 2>&1 \
  || export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
suite=suites/budget_fashion_gpu.yaml
if [ "$BUDGET" = tiny ]; then  # the rehearsal: a few iterations, IPC 1, a few epochs
  suite="$RESULTS/budget_tiny.yaml"
  python - "$suite" <<'PY'
import sys, yaml
doc = yaml.safe_load(open("suites/budget_fashion_gpu.yaml"))
doc.update(name="budget_tiny", ipc=[1], snapshots=[2, 4], eval={"epochs": 5, "augment": "dsa"},
           execution={"workers": 2})
doc["distillers"] = ["random"] + [{"name": m, "config": {"iterations": 8, "batch_real": 16}} for m in ("dm", "datadam", "atom")]
yaml.safe_dump(doc, open(sys.argv[1], "w"))
PY
fi
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU"; python -c "import torch; print('torch', torch.__version__)"; } > "$OUT/machine.txt"
start=$(date +%s)
timeout "$LIMIT" python -m atombench run "$suite" --device "$DEVICE" --output "$RESULTS/run" --quiet > "$OUT/run.log" 2>&1
echo "suite exit $? after $(( $(date +%s) - start )) s" >> "$OUT/run.log"
python -m atombench report "$RESULTS/run" --output "$RESULTS/report" >> "$OUT/run.log" 2>&1
for t in budget cost_to_reach main cost; do
  [ -f "$RESULTS/report/tables/$t.md" ] && cat "$RESULTS/report/tables/$t.md" >> "$OUT/tables.md"
done
[ -f "$RESULTS/report/plots/budget.png" ] && cp "$RESULTS/report/plots/budget.png" "$OUT/"
[ -f "$RESULTS/run/results.csv" ] && cp "$RESULTS/run/results.csv" "$OUT/"
iters=20; [ "$BUDGET" = tiny ] && iters=2
# the GPU levers only (chunk32 and plain compile are CPU levers); the whole script stays under 600 s:
# LIMIT + 3 x 90 + 60
paths="per_class before batched bf16 channels_last cuda_graphs combined"
for m in atom datadam dm; do  # seconds per iteration: per-class reference loop vs before vs each speed-up
  timeout 90 python benchmarks/bench_batched.py --method "$m" --ipc 10 --iters "$iters" --device "$DEVICE" \
    --paths $paths $([ "$BUDGET" = tiny ] && echo "--batch-real 16 --shape 1,16,16") >> "$OUT/bench.txt" 2>&1
done
timeout 60 python benchmarks/bench_ensemble.py --device "$DEVICE" $([ "$BUDGET" = tiny ] && echo "--models 2 --epochs 2") \
  >> "$OUT/bench.txt" 2>&1
echo "total $(( $(date +%s) - start )) s" >> "$OUT/run.log"
