"""Wall time of one suite with 8 distillations: serial vs 2 loky workers vs a local Dask cluster of 2 workers.

    python benchmarks/bench_scheduler.py                    # Fashion-MNIST when installed, else digits
    python benchmarks/bench_scheduler.py --dataset digits --iterations 150

The suite: 2 distillers (DM, DataDAM) x 2 IPCs (1, 10) x 2 seeds = 8 distillations, each followed by the
evaluation of a ConvNet on its set. Each engine runs the whole suite from scratch into its own folder, in a fresh
subprocess, one after the other (never two at once):

* ``serial``: today's behaviour before the job graph: ``backend: sequential`` (one process, every core as torch
  threads; distillations one after another, then evaluations);
* ``loky``: the job graph on 2 loky workers (1 thread each): distillations in parallel, an evaluation starts as
  soon as its set exists;
* ``dask``: the same on a local Dask cluster of 2 worker processes.

It prints each wall time and its ratio to serial (target: at most 0.7 for the parallel engines), and checks that
the three tables hold the same jobs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SUITE = """\
name: bench_scheduler
datasets: [{{name: {dataset}{options}}}]
ipc: [1, 10]
distillers:
  - name: dm
    config: {{iterations: {iterations}, batch_real: {batch_real}}}
  - name: datadam
    config: {{iterations: {iterations}, batch_real: {batch_real}}}
models: [convnet]
seeds: 2
eval: {{epochs: {epochs}, models_per_set: 1}}
execution: {{backend: {backend}, workers: {workers}}}
device: cpu
output: {output}
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    fashion = Path("/usr/share/datasets/fashion-mnist").is_dir()
    p.add_argument("--dataset", default="fashion_mnist" if fashion else "digits")
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--batch-real", type=int, default=64)
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--engines", default="serial,loky,dask")
    args = p.parse_args()
    options = ", options: {size: 16}" if args.dataset == "digits" else ""
    cores = len(os.sched_getaffinity(0))
    print(f"{args.dataset}: 8 distillations (DM, DataDAM x IPC 1, 10 x 2 seeds) of {args.iterations} iterations, "
          f"then a ConvNet for {args.epochs} epochs on each; {cores} cores")
    times, tables = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in args.engines.split(","):
            backend, workers = {"serial": ("sequential", "null"), "loky": ("loky", 2), "dask": ("dask", 2)}[engine]
            out = Path(tmp) / engine
            suite = Path(tmp) / f"{engine}.yaml"
            suite.write_text(SUITE.format(dataset=args.dataset, options=options, iterations=args.iterations,
                                          batch_real=args.batch_real, epochs=args.epochs, backend=backend,
                                          workers=workers, output=out))
            start = time.perf_counter()
            res = subprocess.run([sys.executable, "-m", "atombench", "run", str(suite), "--quiet", "--no-report"],
                                 capture_output=True, text=True)
            times[engine] = time.perf_counter() - start
            if res.returncode != 0:
                sys.exit(f"{engine} failed: {res.stderr.strip().splitlines()[-1]}")
            import pandas as pd

            import json

            tables[engine] = t = pd.read_csv(out / "results.csv")
            metas = [json.loads(f.read_text()) for f in (out / "synsets").glob("*.json")]
            distill = sum(m["wall_time_s"] for m in metas)
            evaluate = float((t["train_time_s"] + t["eval_time_s"]).sum())
            overlap = t["started_at"].min() < max(m["finished_at"] for m in metas)
            print(f"{engine:>7}: {times[engine]:7.1f} s wall; compute inside jobs: distillation {distill:.1f} s, "
                  f"evaluation {evaluate:.1f} s; an evaluation started before the last distillation ended: "
                  f"{'yes' if overlap else 'no'}", flush=True)
    base = times.get("serial")
    if base:
        for engine, t in times.items():
            if engine != "serial":
                print(f"{engine} / serial = {t / base:.2f}  (target <= 0.70)")
    keys = {e: sorted(t["job_key"]) for e, t in tables.items()}
    assert all(k == next(iter(keys.values())) for k in keys.values()), "the engines ran different jobs"
    acc = {e: t.set_index("job_key")["accuracy"] for e, t in tables.items()}
    first = next(iter(acc.values()))
    for e, a in acc.items():
        print(f"max |accuracy - {next(iter(acc))}| on {e}: {(a - first.loc[a.index]).abs().max():.2f} points")


if __name__ == "__main__":
    main()
