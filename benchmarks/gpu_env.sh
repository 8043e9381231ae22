# Sourced by the prepared GPU scripts (gpu_budget.sh, gpu_cifar.sh), from the repository's root, with PY set.
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
