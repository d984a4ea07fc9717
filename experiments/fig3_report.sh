#!/usr/bin/env bash
# The Figure 3 study's report (docs/RESULTS.md section 5): every committed run of the study
# (docs/results/fig3) with section 3's SAC-AWMP and target-critic SAC runs on Hopper-v5 and
# Walker2d-v5 (same preset, protocol and seeds), the planned family with Holm's correction, the
# figure (family.png) and the provenance table, into docs/results/fig3/report.
set -euo pipefail
cd "$(dirname "$0")/.."
AWMP=${AWMP:-.venv/bin/awmp}
ev=docs/results/evidence
"$AWMP" report docs/results/fig3 \
  $ev/Hopper-v5/sac-awmp/default $ev/Walker2d-v5/sac-awmp/default \
  $ev/Hopper-v5/sac/default $ev/Walker2d-v5/sac/default \
  --out docs/results/fig3/report \
  --compare "sac-awmp - sac-awmp[num_components=1]" --compare "sac-awmp - td3" \
  --explore "sac-awmp - sac" --explore "sac-awmp[num_components=1] - sac" \
  --alternative greater --family-size 8 \
  --plan "docs/RESULTS.md:## 5. The paper's Figure 3, complete: the plan"
