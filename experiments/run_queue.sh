#!/usr/bin/env bash
# Run a study's cells one after another on one CPU core, single-threaded XLA, from a frozen copy
# of the code, with no deadline: a SIGTERM or SIGINT (to this script, or to its process group)
# stops the run after its current step with a checkpoint, and the same command later skips the
# finished cells and resumes that one (awmp experiment resumes a partial cell). Keep RUNS outside
# the work tree.
# Usage: AWMP_SRC=FROZEN experiments/run_queue.sh CORE GRID_FILE RUNS GRID:SEED ...
#   FROZEN: a folder made by experiments/freeze_src.sh (its runs record its commit).
set -u
core=$1; grid_file=$2; runs=$3; shift 3
cd "$(dirname "$0")/.."
if [[ -z "${AWMP_SRC:-}" || ! -f "$AWMP_SRC/awmp/FROZEN.json" ]]; then
  echo "run_queue: set AWMP_SRC to a folder made by experiments/freeze_src.sh" >&2
  exit 2
fi
export PYTHONPATH="$AWMP_SRC" XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
source experiments/pass_signals.sh
for item in "$@"; do
  IFS=: read -r grid seed <<<"$item"
  if (( stop )); then exit "$stop"; fi
  echo "$(date -u +%FT%TZ) start $grid seed $seed on core $core"
  run_child taskset -c "$core" .venv/bin/awmp experiment "$grid_file" --only "$grid" \
    --seeds "$seed" --out "$runs" --workers 1
  if (( stop )); then
    echo "$(date -u +%FT%TZ) stopped in $grid seed $seed: resume with the same command"
    exit "$stop"
  fi
  echo "$(date -u +%FT%TZ) end $grid seed $seed rc=$rc"
  if (( rc == 143 || rc == 130 )); then echo "stopped: resume with the same command"; exit "$rc"; fi
done
