"""The registered algorithms: adding one is a module in awmp.algos plus one line here.

Each module defines `ALGORITHM = awmp.algos.Algorithm(...)`; config (TrainConfig's sections,
presets, checks), the CLI (--algo, --<section>.* flags), experiment and report read it from
`ALGORITHMS`, in this order.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type only: awmp.algos imports this module (algos.get)
    from awmp.algos import Algorithm

MODULES = (
    "awmp.algos.sac",
    "awmp.algos.sac_awmp",
    "awmp.algos.td3",
    "awmp.algos.crossq",
    "awmp.algos.td3_awmp",
    "awmp.algos.sac_gmm",
)

ALGORITHMS: dict[str, Algorithm] = {
    a.name: a for a in (importlib.import_module(m).ALGORITHM for m in MODULES)
}
SECTIONS: dict[str, str] = {a.name: a.section for a in ALGORITHMS.values()}  # algo -> section
