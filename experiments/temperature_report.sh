#!/usr/bin/env bash
# The temperature study's report (docs/RESULTS.md section 7): its committed runs
# (docs/results/temperature) with the Figure 3 study's HalfCheetah-v5 runs (the fixed-alpha
# cells and TD3), the planned family of five two-sided comparisons with Holm's correction, the
# figure and the provenance table, into docs/results/temperature/report; then each group's
# policy entropy at its last update (experiments/final_entropy.py) into entropy.md there.
set -euo pipefail
cd "$(dirname "$0")/.."
AWMP=${AWMP:-.venv/bin/awmp}
PY=${PY:-.venv/bin/python}
fig3=docs/results/fig3/HalfCheetah-v5
la1="sac-awmp[learn_alpha=True, num_components=1]"
"$AWMP" report docs/results/temperature "$fig3" \
  --out docs/results/temperature/report \
  --compare "sac[learn_alpha=True] - sac" \
  --compare "$la1 - sac-awmp[num_components=1]" \
  --compare "sac - sac-awmp[num_components=1]" \
  --compare "sac-awmp[learn_alpha=True] - sac-awmp" \
  --compare "sac-awmp[learn_alpha=True] - td3" \
  --explore "sac[learn_alpha=True] - $la1" \
  --explore "sac[learn_alpha=True] - td3" \
  --alternative two-sided --family-size 5 \
  --plan "docs/RESULTS.md:## 7. Temperature or value network: why the SAC-v1 pair lags on HalfCheetah-v5: the plan"
"$PY" experiments/final_entropy.py docs/results/temperature "$fig3" \
  > docs/results/temperature/report/entropy.md
