"""awmp: SAC-AWMP (Soft Actor-Critic with an Advantage-Weighted Mixture Policy), SAC and TD3."""

from awmp import tasks  # noqa: F401  (registers awmp/Switch-v0 and awmp/Fork-v0 with gymnasium)
from awmp._version import __version__
from awmp.callbacks import Callback
from awmp.config import TrainConfig, preset
from awmp.evaluate import load
from awmp.train import resume, resume_seeds, train_seeds  # awmp.train: the module, callable

__all__ = [
    "Callback",
    "TrainConfig",
    "__version__",
    "load",
    "preset",
    "resume",
    "resume_seeds",
    "train",
    "train_seeds",
]
