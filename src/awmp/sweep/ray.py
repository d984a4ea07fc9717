"""`awmp sweep --backend ray`: one Ray Tune trial per cell; the only module that imports Ray.

Each trial runs the same subprocess as the local backend (awmp.sweep.attempt), polls the run
directory and reports steps and the last evaluation return to Tune; Tune's
FailureConfig(max_failures=--max-retries) retries a trial that raised.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

from awmp.sweep.attempt import POLL_S, Attempt, CellSpec
from awmp.sweep.plan import Job, SweepError

RAY_INSTALL_HINT = (
    "--backend ray needs Ray: pip install 'awmp[cluster]' (from a checkout: "
    "pip install -e '.[cluster]'), which installs ray[tune]==2.60.0"
)
RAY_REPORT_S = 5.0  # how often a trial reports steps and the last return to Tune


def _ray_trial(config: dict, specs: dict) -> None:
    """Tune's trainable: one attempt at one cell. Raises when the attempt should be retried
    (Tune then calls it again, up to max_failures, and the new attempt resumes the run
    directory); a failure not worth retrying (divergence, bad input) returns normally with
    state "failed" in its last result."""
    import ray
    from ray import tune

    spec = CellSpec(**specs[config["cell"]])
    # The CPUs Ray gave this trial set the run's threads (one: XLA single-threaded, as locally);
    # Ray does not say which cores, so the run is not pinned.
    context = ray.get_runtime_context()
    cpus = context.get_assigned_resources().get("CPU", 1.0)
    attempt = Attempt(
        spec, threads_per_run=max(1, int(cpus)), where={"node": context.get_node_id()}
    )
    last = 0.0
    while (result := attempt.poll()) is None:
        if time.monotonic() - last >= RAY_REPORT_S:
            last = time.monotonic()
            tune.report(_metrics(attempt, "running"))
        time.sleep(POLL_S)
    if result["outcome"] == "retry":
        raise RuntimeError(
            f"{spec.rel}: attempt {attempt.number} {result['reason']}; a retry resumes it from "
            "its newest checkpoint"
        )
    tune.report({**_metrics(attempt, result["outcome"]), "reason": result["reason"]})


def _metrics(attempt: Attempt, state: str) -> dict:
    steps, ret = attempt.progress()
    nan = float("nan")
    return {
        "steps": steps,
        "last_eval_return": nan if ret is None else ret,
        "attempt": attempt.number,
        "state": state,
    }


def _import_ray():
    try:
        import ray
        from ray import tune
    except ImportError:
        raise SweepError(RAY_INSTALL_HINT) from None
    return ray, tune


def run_ray(
    jobs: list[Job],
    name: str,
    sweep_id: str,
    storage: Path,
    address: str | None,
    cpus_per_run: float,
    gpus_per_run: float,
    max_retries: int,
    log=print,
) -> int | None:
    """One Tune trial per job that needs running; None when it ends, SIGINT when interrupted."""
    import logging

    ray, tune = _import_ray()
    todo = [j for j in jobs if j.state == "pending"]
    if not todo:  # every cell complete (or diverged): nothing to start Ray for
        return None
    # Tune's classic reporter: one status table every 30 s (the newer output engine also
    # prints a box per finished trial and cuts cell names to 20 characters).
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if not ray.is_initialized():
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=False,  # each attempt's output is in its .sweep log file
        )
    specs = {j.spec.rel: dataclasses.asdict(j.spec) for j in todo}
    trainable = tune.with_resources(
        tune.with_parameters(_ray_trial, specs=specs), {"cpu": cpus_per_run, "gpu": gpus_per_run}
    )
    reporter = tune.CLIReporter(
        parameter_columns={"cell": "cell"},
        metric_columns={
            "state": "state", "attempt": "try", "steps": "steps", "last_eval_return": "last eval",
        },
        max_report_frequency=30,
        max_column_length=max(len(rel) for rel in specs),
        sort_by_metric=False,
    )  # fmt: skip
    tuner = tune.Tuner(
        trainable,
        param_space={"cell": tune.grid_search(list(specs))},
        tune_config=tune.TuneConfig(reuse_actors=False),
        run_config=tune.RunConfig(
            name=f"{name}-{sweep_id}",
            storage_path=str(storage / "_ray"),
            failure_config=tune.FailureConfig(max_failures=max_retries),
            progress_reporter=reporter,
            verbose=1,
        ),
    )
    try:
        tuner.fit()
    except KeyboardInterrupt:
        return signal.SIGINT
    return None
