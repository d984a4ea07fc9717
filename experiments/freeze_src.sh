#!/usr/bin/env bash
# Freeze a copy of the package for a study's queued runs, so that edits made meanwhile never
# reach them: copies src/awmp to DEST/awmp and writes DEST/awmp/FROZEN.json with the commit it was
# copied from, whether tracked files differed from that commit, and the time. Every run started
# from the copy records that commit and flag in its config.json (git_commit, git_dirty, frozen).
# Usage: experiments/freeze_src.sh DEST     then run with PYTHONPATH=DEST (run_pinned.sh: AWMP_SRC)
set -euo pipefail
dest=$1
cd "$(dirname "$0")/.."
if [[ -e "$dest/awmp" ]]; then
  echo "freeze_src: $dest/awmp exists; freeze into a new folder" >&2
  exit 2
fi
commit=$(git rev-parse HEAD)
if git diff --quiet HEAD --; then dirty=false; else dirty=true; fi
mkdir -p "$dest"
cp -r src/awmp "$dest/awmp"
find "$dest/awmp" -name __pycache__ -prune -exec rm -rf {} +
printf '{"git_commit": "%s", "git_dirty": %s, "frozen": "%s"}\n' \
  "$commit" "$dirty" "$(date -u +%FT%TZ)" > "$dest/awmp/FROZEN.json"
echo "froze $commit (dirty: $dirty) into $dest"
