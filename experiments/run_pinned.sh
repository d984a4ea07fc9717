#!/usr/bin/env bash
# Run evidence cells one after another on one CPU core, single-threaded XLA (docs/BENCHMARKS.md: one
# pinned process per core finishes ~1.5x the runs/hour of one process on both cores).
# Usage: experiments/run_pinned.sh CORE DEADLINE_EPOCH GRID:SEED:MINUTES ...
# The grid file is experiments/evidence.toml, or AWMP_GRID_FILE; the runs go to runs/evidence, or
# AWMP_RUNS; AWMP_EXTRA_ARGS is passed on to awmp experiment (e.g. "--budget 60000").
# A cell starts only if its estimated MINUTES fit before DEADLINE_EPOCH (unix seconds), so a
# session never leaves a half-finished run behind. A SIGTERM or SIGINT stops the run after its
# step with a checkpoint (the same command resumes it) and ends the queue.
set -u
core=$1; deadline=$2; shift 2
cd "$(dirname "$0")/.."
export XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
# A frozen copy of the code (AWMP_SRC) keeps queued runs safe from edits made meanwhile.
if [[ -n "${AWMP_SRC:-}" ]]; then export PYTHONPATH="$AWMP_SRC"; fi
source experiments/pass_signals.sh
for item in "$@"; do
  IFS=: read -r grid seed minutes <<<"$item"
  if (( stop )); then exit "$stop"; fi
  left=$(( deadline - $(date +%s) ))
  if (( left < minutes * 60 )); then
    echo "$(date -u +%FT%TZ) skip $grid seed $seed: ${minutes} min estimated, $((left / 60)) min left"
    continue
  fi
  echo "$(date -u +%FT%TZ) start $grid seed $seed on core $core"
  # shellcheck disable=SC2086 # AWMP_EXTRA_ARGS is split into words on purpose
  run_child taskset -c "$core" .venv/bin/awmp experiment \
    "${AWMP_GRID_FILE:-experiments/evidence.toml}" --only "$grid" --seeds "$seed" \
    --out "${AWMP_RUNS:-runs/evidence}" --workers 1 ${AWMP_EXTRA_ARGS:-}
  echo "$(date -u +%FT%TZ) end $grid seed $seed rc=$rc"
  if (( stop )); then echo "stopped: resume with the same command"; exit "$stop"; fi
done
