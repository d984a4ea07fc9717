"""Python callbacks: `awmp.train(cfg, callbacks=[...])`.

Subclass `Callback` and override any hook. Each is called in the loop, in this order within an
environment step: `on_log` (after the train.csv rows), `on_eval` (after the eval.csv rows),
`on_step`, and `on_checkpoint` (after a checkpoint is on disk). A true return value from any
hook stops the run after this step (SB3's callback returning False): a checkpoint of the step
(unless one was just written), final_params.msgpack (the acting parameters), summary.json with
"stopped_by": "callback" and "steps_done": the step, and `awmp.train` returns the run normally
(Ctrl-C and SIGTERM instead raise `awmp.train.TrainingInterrupted`). `awmp report` lists such a
run as stopped by a callback; `awmp.resume(run_dir)` (or `awmp train --resume`) continues it.

Rows are lists with one dict per seed (one element without `--seeds`), the rows as written to
train.csv / eval.csv; `paths` are the checkpoint files just written, one per seed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


class Callback:
    """Hooks into a training run; every hook returns a true value to stop the run."""

    def on_step(self, step: int) -> Any:
        """After every environment step (after its log and evaluation, before its checkpoint)."""

    def on_log(self, step: int, rows: list[dict]) -> Any:
        """After the train.csv rows of `step` (every `log_interval` steps and at the end)."""

    def on_eval(self, step: int, rows: list[dict]) -> Any:
        """After the eval.csv rows of `step` (every `eval_interval` steps and at the end)."""

    def on_checkpoint(self, step: int, paths: list[Path]) -> Any:
        """After the checkpoints of `step` are written (one file per seed)."""


class StepFunction(Callback):
    """`train(cfg, on_step=fn)`: `fn(step)` as a callback's on_step."""

    def __init__(self, fn: Callable[[int], Any]) -> None:
        self.fn = fn

    def on_step(self, step: int) -> Any:
        return self.fn(step)


class Callbacks:
    """The run's callbacks; remembers whether any asked to stop."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = list(callbacks)
        self.stop = False

    def __call__(self, hook: str, step: int, *args: Any) -> None:
        for cb in self.callbacks:
            if getattr(cb, hook)(step, *args):
                self.stop = True
