#!/usr/bin/env bash
# One prepared command for a borrowed GPU machine reached through a remote runner (one command of at most 10
# minutes, a few files copied back; a shared machine may lend only minutes of device time): the iteration
# speed-ups of DM, DataDAM and ATOM (bench_batched.py), the ensemble evaluation (bench_ensemble.py), then budget
# curves at the papers' full budgets (suites/budget_fashion_gpu.yaml: DM 20000 iterations, DataDAM and ATOM 8000,
# log-spaced snapshots, every snapshot evaluated on the GPU while the distillations run). Everything it measures
# is written under $OUT (a runner may copy back only a few files), the whole results folder as one archive.
#
#   bash benchmarks/gpu_budget.sh                                        # on the GPU machine (OUT: the folder copied back)
#   BUDGET=tiny DEVICE=cpu OUT=/tmp/gb RESULTS=/tmp/gbr bash benchmarks/gpu_budget.sh   # rehearsal on a CPU
#
# DEADLINE (seconds from the start, default 560) bounds the whole script: the benchmarks come first (each method
# at most 80-95 s, each path 35 s, the ensemble 30 s per size in ENSEMBLE_K), the suite gets what is left; a distillation cut off keeps its snapshots (and
# resumes from them in a later call that brings the results folder back: send results/budget_fashion_gpu/run with the call).
# PHASES, PATHS, ENSEMBLE, WORKERS and SUITE_LIMIT (below) size a shorter call, e.g. the rest of a session's time:
#   PHASES="suite bench" SUITE_LIMIT=100 REPORT=0 PATHS="per_class before batched" ENSEMBLE=0 DEADLINE=190 bash ... IPC (default "1 10") picks the IPCs of the
# suite (the file lists 1, 10 and 50; IPC 50 does not fit in one 10-minute call with the benchmarks).
# Where a method's CUDA-graph path ran in the benchmark at >= 1.3x the default path (the faster of `graph`, the whole
# iteration as one graph with `cuda_graph: true`, and `cuda_graphs`, `compile: reduce-overhead`), the suite distils
# that method with it (it is part of the set's key and of results.csv's config column, so such a set starts afresh
# instead of resuming a default-path snapshot).
# Where the GPU machine has torch, timm, pandas, seaborn and joblib but no atombench, atombench is put on PYTHONPATH
# with its entry points (read from pyproject.toml). Fashion-MNIST can travel in the ignored folder .fmnist (send it).
set -uo pipefail
START=$(date +%s)
OUT=${OUT:-results/gpu_budget_out}
BUDGET=${BUDGET:-full}
DEVICE=${DEVICE:-cuda}
DEADLINE=${DEADLINE:-570}
IPC=${IPC:-1 10}
PHASES=${PHASES:-bench suite}       # in this order; "suite bench" puts the budget curves first
PATHS=${PATHS:-per_class batched graph graph_combined before combined cuda_graphs bf16 channels_last}  # most important first
ENSEMBLE=${ENSEMBLE:-1}             # 0: no bench_ensemble
ENSEMBLE_K=${ENSEMBLE_K:-10 40}     # ensemble sizes (models trained at once), 30 s each
WORKERS=${WORKERS:-8}               # units in flight on the GPU during the suite
SUITE_LIMIT=${SUITE_LIMIT:-}        # seconds for the suite (default: what is left before DEADLINE)
REPORT=${REPORT:-1}                 # 0: no report on the device (about 20 s; `atombench report` redraws it at home)
RESULTS=${RESULTS:-results/budget_fashion_gpu}
PY=${PYTHON:-$(command -v python3 || command -v python)}
mkdir -p "$OUT" "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)

# -- atombench importable, with its entry points (benchmarks/gpu_env.sh) --------------------------------------
. benchmarks/gpu_env.sh
gpu_env_setup "$RESULTS/site"
[ -d .fmnist ] && export ATOMBENCH_DATA="$PWD/.fmnist"  # the carried idx files (staged there on first use)
gpu_machine fashion_mnist

bench_phase() {  # seconds per iteration: per-class reference loop vs before issue 15 vs today's default vs each speed-up
  local iters=12 small="" m t ens
  if [ "$BUDGET" = tiny ]; then iters=2; small="--batch-real 16 --shape 1,16,16"; fi
  for m in atom datadam dm; do
    t=80; [ "$m" = atom ] && t=95
    timeout "$t" "$PY" benchmarks/bench_batched.py --method "$m" --ipc 10 --iters "$iters" --device "$DEVICE" \
      --path-timeout 35 --paths $PATHS $small > "$OUT/bench_$m.txt" 2>&1
    log "bench_batched $m: exit $?"
    { echo "== bench_batched $m"; cat "$OUT/bench_$m.txt"; } >> "$OUT/bench.txt"; rm -f "$OUT/bench_$m.txt"
  done
  [ "$ENSEMBLE" = 1 ] || return 0
  local k ipcs="1 10"
  for k in $ENSEMBLE_K; do  # the first K at IPC 1 and 10, the others at IPC 1 (the target's setting)
    ens="--models $k --epochs 100"; [ "$BUDGET" = tiny ] && ens="--models $(( k < 4 ? k : 4 )) --epochs 2"
    timeout 30 "$PY" benchmarks/bench_ensemble.py --device "$DEVICE" --ipc $ipcs $ens >> "$OUT/bench.txt" 2>&1
    log "bench_ensemble K=$k: exit $?"
    ipcs=1
  done
}

suite_phase() {  # the budget curves: the suite, with CUDA graphs for each method whose benchmark showed them faster
  local suite="$RESULTS/suite_this_call.yaml" limit t
  touch "$OUT/bench.txt"
  "$PY" - "$suite" "$OUT/bench.txt" "$BUDGET" "$IPC" "$WORKERS" <<'PY'
import re, sys, yaml
out, bench, budget = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
ipc, workers = [int(i) for i in sys.argv[4].split()], int(sys.argv[5])
doc = yaml.safe_load(open("suites/budget_fashion_gpu.yaml"))
doc["ipc"] = ipc
doc.setdefault("execution", {})["workers"] = workers  # every distillation at once; the GPU is mostly idle under each
fast, options = {}, {"graph": {"cuda_graph": True}, "cuda_graphs": {"compile": "reduce-overhead"}}
for method, block in re.findall(r"(?ms)^== bench_batched (\w+)\n(.*?)(?=^== |\Z)", bench):
    speed = dict(re.findall(r"(?m)^(\w+)\s+([\d.]+) it/s", block))
    gains = [(float(speed[p]) / float(speed["batched"]), p) for p in options if p in speed and "batched" in speed]
    if gains:
        fast[method] = max(gains)
dist = []
for d in doc["distillers"]:
    d = d if isinstance(d, dict) else {"name": d}
    cfg = dict(d.get("config") or {})
    if d["name"] in fast and fast[d["name"]][0] >= 1.3:
        cfg.update(options[fast[d["name"]][1]])
    if budget == "tiny" and d["name"] != "random":
        cfg.update(iterations=8, batch_real=16)
    dist.append({"name": d["name"], "config": cfg} if cfg else d["name"])
doc["distillers"] = dist
if budget == "tiny":
    doc.update(snapshots=[2, 4], eval={"epochs": 5, "augment": "dsa", "models_per_set": 2})
    doc["execution"]["workers"] = 2
yaml.safe_dump(doc, open(out, "w"), sort_keys=False)
print("fastest CUDA-graph path vs default (bench):", {k: (round(v, 2), p) for k, (v, p) in fast.items()})
PY
  cp "$suite" "$OUT/suite_this_call.yaml"
  limit=${SUITE_LIMIT:-$(( $(left) - 35 ))}  # its stop (up to 11 s) and the report (20 s) after it
  log "suite: $limit s for it; $(grep -cE 'reduce-overhead|cuda_graph: true' "$suite") method(s) with CUDA graphs"
  gpu_run_suite "$suite" "$RESULTS/run" "$limit"
  if [ "$REPORT" = 1 ]; then
    timeout 20 "$PY" -m atombench report "$RESULTS/run" --output "$RESULTS/report" >> "$OUT/suite.log" 2>&1
    log "report exit $?"
  fi
  gpu_tables "$RESULTS/report" budget cost_to_reach main
  [ -f "$RESULTS/run/results.csv" ] && cp "$RESULTS/run/results.csv" "$OUT/"
  tar -czf "$OUT/results.tgz" -C "$RESULTS" run $([ -d "$RESULTS/report" ] && echo report) 2>/dev/null
  log "archive $(du -h "$OUT/results.tgz" 2>/dev/null | cut -f1)"
}

for phase in $PHASES; do "${phase}_phase"; done
log "total"
