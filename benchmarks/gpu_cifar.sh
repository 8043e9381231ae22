#!/usr/bin/env bash
# CIFAR-10 (JPEG q75) at the papers' full budgets on a borrowed GPU machine (suites/cifar10_jpeg_gpu.yaml), in calls
# of at most 10 minutes that each resume the last: the archive travels with every call (xz-compressed, 19 MB instead
# of 65), the results folder of the part being run travels back and forth as a split .tgz. Three steps:
#
#   bash benchmarks/gpu_cifar.sh stage [FETCHED_DIR]   # here: .cifar/ gets the archive from $ATOMBENCH_DATA (once)
#                                                      # and, from FETCHED_DIR, the last call's results.tgz.part-*
#   bash benchmarks/gpu_cifar.sh                       # there, in the repository's root (carry: .cifar)
#   bash benchmarks/gpu_cifar.sh unpack FETCHED_DIR    # here: that call's results into results/ (atombench report)
#
#   BUDGET=tiny DEVICE=cpu OUT=/tmp/gc bash benchmarks/gpu_cifar.sh   # rehearsal on a CPU (8 iterations, 5 epochs)
#
# ONLY (default "ipc=1"): the part of the suite this call runs, as `atombench run --only` items separated by spaces,
# e.g. "ipc=1 seed=0" (the claims' first seed) or "ipc=10 seed=0". Each part has its own results folder
# (results/cifar10_jpeg_gpu_<part>), because what a call may bring back is limited (8 files of 16 MiB, 64 MiB in
# all, and 64 MiB for everything sent with the next call): the IPC-1 part with its snapshots is about 11 MB, one seed
# of the IPC-10 part about 36 MB, one IPC-50 set with its snapshots 30 MB. `atombench report` merges the parts'
# folders into one report.
# DEADLINE (seconds from the start, default 570) bounds the call; the suite gets what is left after the set-up,
# less 120 s for the report and the archive (SUITE_LIMIT overrides). A distillation cut off resumes in the next call
# from its last snapshot or checkpoint (the suite keeps one every minute: execution.checkpoint_minutes); stage the
# parts the call brought back first. WORKERS (default 6): distillations and evaluations in flight on the one GPU
# at once (each leaves it mostly idle at these sizes). The archive is unpacked at DATA_AT (/tmp/atombench-cifar),
# the same path in every call (since 2026-12-08 no key depends on where the data lies).
set -uo pipefail
START=$(date +%s)
SHA=fe7ad1bda81725a23f60cf00af53fef0ac90a2bab9e7e9bd9d975017224b47fe   # cifar10_jpeg.zip, as published
PY=${PYTHON:-$(command -v python3 || command -v python)}

if [ "${1:-}" = stage ]; then  # -- here, before a call ------------------------------------------------------------
  mkdir -p .cifar
  if [ ! -f .cifar/cifar10_jpeg.zip.xz ]; then
    src="${ATOMBENCH_DATA:-$HOME/.cache/atombench/data}/cifar10_jpeg.zip"
    [ -f "$src" ] || { echo "error: no $src; set ATOMBENCH_DATA to the folder that holds cifar10_jpeg.zip" >&2; exit 2; }
    xz -T0 -6 -c "$src" > .cifar/cifar10_jpeg.zip.xz.tmp && mv .cifar/cifar10_jpeg.zip.xz.tmp .cifar/cifar10_jpeg.zip.xz
  fi
  rm -f .cifar/cifar10_jpeg.zip  # the unpacked archive is made again there (65 MB would not travel)
  if [ -n "${2:-}" ]; then
    ls "$2"/results.tgz.part-* >/dev/null 2>&1 || { echo "error: no results.tgz.part-* in '$2' (the folder a call's files were fetched to)" >&2; exit 2; }
    cat "$2"/results.tgz.part-* > .cifar/results.tgz
  fi
  du -ch .cifar/* | sed 's/^/staged: /'
  [ -f .cifar/results.tgz ] && echo "results staged: $(tar -tzf .cifar/results.tgz | cut -d/ -f1 | sort -u | tr '\n' ' ')(the call resumes that part: give the same ONLY)" \
    || echo "no results staged: the call starts its part afresh"
  sent=$(( $(du -cb .cifar/* | tail -1 | cut -f1) + $(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) ))
  [ "$sent" -gt $(( 62 * 1048576 )) ] && echo "warning: $(( sent / 1048576 )) MiB would travel (limit 64 MiB): run smaller parts (ONLY) into new folders" >&2
  echo "call with: carry [\".cifar\"], command: bash benchmarks/gpu_cifar.sh (ONLY=... before it for another part)"
  exit 0
fi
if [ "${1:-}" = unpack ]; then  # -- here, after a call ------------------------------------------------------------
  [ -n "${2:-}" ] && ls "$2"/results.tgz.part-* >/dev/null 2>&1 \
    || { echo "error: give the folder a call's files were fetched to (it holds results.tgz.part-*)" >&2; exit 2; }
  mkdir -p results && cat "$2"/results.tgz.part-* | tar -xzf - -C results && echo "unpacked into results/: $(cat "$2"/results.tgz.part-* | tar -tzf - | cut -d/ -f1 | sort -u | tr '\n' ' ')"
  exit $?
fi

# -- there: the call --------------------------------------------------------------------------------------------------
OUT=${OUT:-results/gpu_cifar_out}
BUDGET=${BUDGET:-full}
DEVICE=${DEVICE:-cuda}
DEADLINE=${DEADLINE:-570}
ONLY=${ONLY:-ipc=1}
WORKERS=${WORKERS:-6}
SUITE_LIMIT=${SUITE_LIMIT:-}
PART=$(echo "$ONLY" | sed 's/ /_/g; s/=/-/g; s/,/+/g')
RESULTS=${RESULTS:-results/cifar10_jpeg_gpu_$PART}
[ "$BUDGET" = tiny ] && RESULTS=${RESULTS}_tiny
mkdir -p "$OUT" "$RESULTS"
RESULTS=$(cd "$RESULTS" && pwd)
: > "$OUT/run.log"
. benchmarks/gpu_env.sh
gpu_env_setup "$RESULTS/site"

# the archive: carried in .cifar (xz), unpacked at a fixed path (the dataset's root is one of its options, so in
# every set's key: a repository copied elsewhere by a later call must find the same keys), else $ATOMBENCH_DATA
DATA_AT=${DATA_AT:-/tmp/atombench-cifar}
if [ -f .cifar/cifar10_jpeg.zip.xz ]; then
  mkdir -p "$DATA_AT"
  [ -f "$DATA_AT/cifar10_jpeg.zip" ] || "$PY" -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'), 1 << 22)" \
    .cifar/cifar10_jpeg.zip.xz "$DATA_AT/cifar10_jpeg.zip"
  export ATOMBENCH_DATA="$DATA_AT"
fi
got=$(sha256sum "${ATOMBENCH_DATA:-$HOME/.cache/atombench/data}/cifar10_jpeg.zip" 2>/dev/null | cut -d' ' -f1)
[ "$got" = "$SHA" ] || { log "error: cifar10_jpeg.zip missing or altered (sha256 '${got:-none}'): stage it with 'bash benchmarks/gpu_cifar.sh stage' and carry .cifar"; exit 2; }
# the results of earlier calls, carried back
if [ -f .cifar/results.tgz ]; then
  tar -xzf .cifar/results.tgz -C "$(dirname "$RESULTS")"
  parts=$(tar -tzf .cifar/results.tgz | cut -d/ -f1 | sort -u | tr '\n' ' ')
  log "carried results unpacked: $parts"
  case " $parts" in *" $(basename "$RESULTS") "*) ;; *) log "warning: none of them is this part's folder ($(basename "$RESULTS")): it starts afresh";; esac
fi
gpu_machine cifar10_jpeg

suite="$RESULTS/suite_this_call.yaml"
"$PY" - "$suite" "$BUDGET" "$WORKERS" <<'PY'
import sys, yaml
out, budget, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
doc = yaml.safe_load(open("suites/cifar10_jpeg_gpu.yaml"))
doc.setdefault("execution", {})["workers"] = workers
if budget == "tiny":  # the rehearsal: every step of the call, at a size a CPU runs in a minute or two
    for d in doc["distillers"]:
        d["options"] = {**(d.get("options") or {}), "iterations": 8, "batch_real": 16}
    doc.update(snapshots=[2, 4], eval={"protocol": "common", "epochs": 5, "augment": "dsa"}, seeds=1)  # own: 1000+ epochs
    doc["execution"]["workers"] = min(workers, 2)
yaml.safe_dump(doc, open(out, "w"), sort_keys=False)
PY
set -f; only=(); for o in $ONLY; do only+=(--only "$o"); done; set +f  # ONLY's items are not file patterns
limit=${SUITE_LIMIT:-$(( $(left) - 120 ))}  # the report and the archive after it take up to about 90 s
log "suite part '$ONLY': $limit s for it, $WORKERS in flight, results in $RESULTS/run"
gpu_run_suite "$suite" "$RESULTS/run" "$limit" "${only[@]}"
"$PY" -c "import collections, csv, sys; rows = list(csv.DictReader(open(sys.argv[1]))); print('results.csv:', dict(collections.Counter(r.get('status') for r in rows)))" \
  "$RESULTS/run/results.csv" >> "$OUT/run.log" 2>/dev/null  # ok / failed / pending (the rest of the part, and the other parts)
timeout 45 "$PY" -m atombench report "$RESULTS/run" --published all --no-plots --no-images \
  --output "$RESULTS/report" >> "$OUT/suite.log" 2>&1
log "report exit $?"
gpu_tables "$RESULTS/report" claims preprocessing budget fairness main
cat "$OUT/machine.txt" >> "$OUT/run.log" && rm -f "$OUT/machine.txt"
# the results folder, in parts that come back (at most 16 MiB each; with run.log, suite.log and tables.md, 8 files)
tar -czf - -C "$(dirname "$RESULTS")" "$(basename "$RESULTS")/run" | split -b 15M -d -a 1 - "$OUT/results.tgz.part-"
n=$(ls "$OUT"/results.tgz.part-* | wc -l)
bytes=$(du -cb "$OUT"/results.tgz.part-* | tail -1 | cut -f1)
# what comes back: 8 files, 64 MiB; what the next call can send back: 64 MiB with the 19 MB archive and the tree
log "archive: $n part(s), $(( bytes / 1048576 )) MiB$([ "$bytes" -gt $(( 40 * 1048576 )) ] && echo ' - too large to send with the next call (about 40 MiB at most): run smaller parts (ONLY) into new folders')"
log "total"
