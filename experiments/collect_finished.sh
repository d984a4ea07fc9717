#!/usr/bin/env bash
# Copy every FINISHED run's small files (config.json, eval.csv, train.csv, summary.json; never
# checkpoints or parameters) from a runs folder into docs/results/<study>/, keeping the layout.
# Usage: experiments/collect_finished.sh RUNS_ROOT docs/results/<study>
set -eu
src=$1; dst=$2
find "$src" -name summary.json | while read -r s; do
  d=$(dirname "$s")
  python3 - "$s" <<'PY' || continue
import json, sys
s = json.load(open(sys.argv[1]))
cfg = json.load(open(sys.argv[1].replace("summary.json", "config.json")))["config"]
sys.exit(0 if not s.get("interrupted") and s.get("steps_done") == cfg["total_steps"] else 1)
PY
  rel=${d#"$src"/}
  mkdir -p "$dst/$rel"
  cp "$d"/config.json "$d"/eval.csv "$d"/train.csv "$d"/summary.json "$dst/$rel/"
  echo "collected $rel"
done
