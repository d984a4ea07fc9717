#!/usr/bin/env bash
# Start-up benchmark (docs/BENCHMARKS.md "Start-up"): wall time of
# `awmp train` to its first update and of `awmp eval --episodes 1`, cold (empty compilation
# cache) and warm, for the code under SRC_BEFORE and SRC_AFTER (e.g. a `git archive` of an old
# commit's src/ and this checkout's src/). Run on an otherwise idle machine.
# Usage: SRC_BEFORE=/tmp/old/src SRC_AFTER=$PWD/src experiments/startup_bench.sh [REPS]
set -u
reps=${1:-2}
py=${PYTHON:-.venv/bin/python}
work=$(mktemp -d)
t() {
  local s rc; s=$(date +%s.%N); "$@" >/dev/null 2>&1; rc=$?
  echo "$(echo "$(date +%s.%N) - $s" | bc) s (rc=$rc)"
}
for rep in $(seq "$reps"); do
  for ver in before after; do
    if [ "$ver" = before ]; then export PYTHONPATH=$SRC_BEFORE; else export PYTHONPATH=$SRC_AFTER; fi
    export AWMP_COMPILE_CACHE=$work/cache-$ver-$rep XDG_CACHE_HOME=$work/cache-$ver-$rep
    for phase in cold warm; do
      d=$work/run-$ver-$rep-$phase
      echo "$rep $ver $phase train: $(t "$py" -m awmp.cli train --algo sac-awmp --env Hopper-v5 \
        --total-steps 2 --warmup-steps 1 --eval-interval 2 --eval-episodes 1 --log-interval 1 \
        --no-progress --run-dir "$d")"
    done
    export AWMP_COMPILE_CACHE=$work/evcache-$ver-$rep XDG_CACHE_HOME=$work/evcache-$ver-$rep
    for phase in cold warm; do
      echo "$rep $ver $phase eval: $(t "$py" -m awmp.cli eval "$work/run-$ver-$rep-cold" --episodes 1)"
    done
  done
done
rm -rf "$work"
