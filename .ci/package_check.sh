#!/usr/bin/env bash
# `make package-check`: build the sdist and the wheel, check them with twine, install the wheel
# alone (the lean core, no extras) into a fresh venv outside the checkout and use it from there:
# `awmp --version`, a 300-step training, its evaluation, a report and the shipped experiment
# grid. A file missing from the package (a module, package data under src/awmp/data) fails here.
# Env: PYTHON (the interpreter for the fresh venv), BIN (the checkout venv's bin, with build and
# twine: the dev extra).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
BIN=${BIN:-.venv/bin}
BIN=$(cd "$BIN" && pwd)
ROOT=$(pwd)

rm -rf dist
"$BIN/python" -m build --outdir dist . >/dev/null
"$BIN/twine" check --strict dist/*
wheel=$(ls dist/*.whl)
sdist=$(ls dist/*.tar.gz)

# Every file git tracks under src/awmp is in the wheel and in the sdist; LICENSE in both.
listing=$(mktemp -d)
"$BIN/python" -m zipfile -l "$wheel" | awk 'NR > 1 {print $1}' > "$listing/wheel"
tar -tzf "$sdist" | sed 's|^[^/]*/||' > "$listing/sdist"
missing=0
for f in $(git ls-files src/awmp) LICENSE; do
    rel=${f#src/}
    [ "$f" = LICENSE ] && rel=$(grep -m1 '\.dist-info/licenses/LICENSE$' "$listing/wheel" || echo LICENSE)
    grep -qxF "$rel" "$listing/wheel" || { echo "package-check: $f is not in $wheel" >&2; missing=1; }
    grep -qxF "$f" "$listing/sdist" || { echo "package-check: $f is not in $sdist" >&2; missing=1; }
done
grep -qxF README.md "$listing/sdist" || { echo "package-check: README.md is not in $sdist" >&2; missing=1; }
rm -rf "$listing"
[ "$missing" = 0 ]

work=$(mktemp -d "${TMPDIR:-/tmp}/awmp-package-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet "$ROOT/$wheel"
cd "$work"  # outside the checkout: only the installed package can be imported
awmp=$work/venv/bin/awmp
version=$("$awmp" --version)
echo "package-check: $version from $("$work/venv/bin/python" -c 'import awmp; print(awmp.__file__)')"
"$work/venv/bin/python" -c 'import awmp, sys; sys.exit(0 if awmp.__file__.startswith(sys.prefix) else 1)'
"$awmp" train --algo sac-awmp --env Pendulum-v1 --total-steps 300 --warmup-steps 100 \
    --eval-interval 300 --eval-episodes 1 --log-interval 100 --no-progress \
    --awmp.hidden 32 32 --awmp.policy-hidden 32 32 --awmp.prior-hidden 32 32 \
    --awmp.prior-interval 200 --awmp.prior-steps 20 --run-dir runs/pendulum >/dev/null
test -f runs/pendulum/summary.json && test -f runs/pendulum/final_params.msgpack
"$awmp" eval runs/pendulum --episodes 1 >/dev/null
"$awmp" report runs --out report >/dev/null
test -f report/report.md
"$awmp" experiment paper --dry-run >/dev/null
echo "package-check: $(basename "$wheel") and $(basename "$sdist") built, checked, installed alone; trained, evaluated and reported from $work"
