"""awmp: SAC-AWMP (Soft Actor-Critic with an Advantage-Weighted Mixture Policy), SAC and TD3."""

__version__ = "0.1.0"

from awmp import tasks  # noqa: E402,F401  (registers awmp/Switch-v0 with gymnasium)
from awmp.callbacks import Callback  # noqa: E402
from awmp.config import TrainConfig, preset  # noqa: E402
from awmp.evaluate import load  # noqa: E402
from awmp.train import resume  # noqa: E402  (awmp.train: the module, callable as awmp.train(cfg))

__all__ = ["Callback", "TrainConfig", "__version__", "load", "preset", "resume", "train"]
