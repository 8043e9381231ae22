# Sourced by the prepared GPU scripts (gpu_budget.sh, gpu_cifar.sh), from the repository's root, with PY, OUT,
# START, DEADLINE and DEVICE set: the set-up, the machine's description, the suite run in a session of its own and
# the tables it brings back, which both scripts share.
left() { echo $(( DEADLINE - ($(date +%s) - START) )); }
log() { echo "[$(( $(date +%s) - START )) s] $*" | tee -a "$OUT/run.log"; }

# A borrowed GPU machine may have torch, timm, pandas, seaborn and joblib but no atombench installed: then atombench
# is put on PYTHONPATH with its entry points (the built-in distillers, datasets and models), read from pyproject.toml
# into a dist-info folder under $1.
gpu_env_setup() {
  local site=$1
  if ! "$PY" -c "import atombench, importlib.metadata as m; assert m.entry_points(group='atombench.distillers')" 2>/dev/null; then
    "$PY" - "$site" <<'PY'
import pathlib, sys, tomllib
proj = tomllib.load(open("pyproject.toml", "rb"))["project"]
info = pathlib.Path(sys.argv[1]) / f"atombench-{proj.get('version', '0.0.0')}.dist-info"
info.mkdir(parents=True, exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: atombench\nVersion: {proj.get('version', '0.0.0')}\n")
(info / "entry_points.txt").write_text("".join(
    f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
    for group, eps in proj.get("entry-points", {}).items()))
PY
    export PYTHONPATH="$PWD:$site${PYTHONPATH:+:$PYTHONPATH}"
  fi
  export PYTHONUNBUFFERED=1
}

# $OUT/machine.txt: the GPU, the cores, torch and timm, and DATASET loaded (its training images' shape); logged
gpu_machine() {
  local dataset=$1
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU"
    nproc; "$PY" -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__)"
    "$PY" -c "import atombench.runner as r, sys; d = r.load_dataset(sys.argv[1], {}); print(sys.argv[1], tuple(d.train_x.shape))" "$dataset"
  } > "$OUT/machine.txt" 2>&1
  log "setup done: $(tr '\n' ' ' < "$OUT/machine.txt")"
}

# atombench run SUITE into RESULTS_DIR for at most LIMIT seconds (nothing under 21 s), more `run` arguments after
# them; in a session of its own, so that its worker processes, and only they, are stopped with it
gpu_run_suite() {
  local suite=$1 results=$2 limit=$3 sid
  shift 3
  [ "$limit" -gt 20 ] || { log "suite: no time left for it ($limit s)"; return 0; }
  setsid timeout -k 10 "$limit" "$PY" -m atombench run "$suite" --device "$DEVICE" --output "$results" --quiet \
    --no-report "$@" >> "$OUT/suite.log" 2>&1 &
  sid=$!
  wait "$sid"
  log "suite exit $? (124, or 137 when it had to be killed: cut at its limit; snapshots and checkpoints kept, a later call resumes)"
  kill -9 -- "-$sid" 2>/dev/null; sleep 1  # its workers, if any outlived it (never another run's)
}

# $OUT/tables.md: the markdown tables NAME... of the report in REPORT_DIR that exist, each under its name
gpu_tables() {
  local report=$1 t
  shift
  rm -f "$OUT/tables.md"
  for t in "$@"; do
    [ -f "$report/tables/$t.md" ] && { echo "## $t"; cat "$report/tables/$t.md"; echo; } >> "$OUT/tables.md"
  done
  return 0
}
