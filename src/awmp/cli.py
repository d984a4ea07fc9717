"""The `awmp` command: train | eval | demo | report | experiment | sweep | inspect | bench.

A thin layer over the Python API (`awmp.train`, `awmp.load`): it dispatches to each command's
module (`awmp train` is awmp.cli_train) and turns the project's own errors (awmp.errors.AwmpError)
into one line on stderr and the exit code of awmp.errors.EXIT_CODES (2 bad input, 3 diverged),
without a traceback. Any other exception is a bug: it propagates with its traceback (exit 1).
"""

from __future__ import annotations

import argparse
import json
import sys

USAGE = """usage: awmp {train,eval,demo,report,experiment,sweep,inspect,bench} ...

  awmp train --algo sac --env Hopper-v5 --seed 0 --total-steps 1000000 --preset paper \\
             --eval-interval 5000 --eval-episodes 10 --run-dir runs/...
  awmp eval RUN_DIR --episodes 10 [--which best]
  awmp demo          SAC-AWMP (O = 4) on Pendulum-v1 for 15,000 steps: learns in minutes
  awmp report RUNS_DIR... --out report/   tables and figures from run directories
  awmp experiment paper --budget 100000 --seeds 0,1 [--dry-run]   the paper's protocol
  awmp sweep paper --backend local --workers 2   the same grid in parallel, with retries;
             --backend ray [--address auto] on a Ray cluster (docs/CLUSTER.md)
  awmp inspect RUN_DIR --episodes 1 [--video]   gating and prior weights of a SAC-AWMP run
  awmp bench [--quick]  training steps/s side by side with SB3/SBX (docs/BENCHMARKS.md)

`awmp train --help` lists every config field with its description; `awmp --version`.
"""

from awmp.cli_train import _report, parse_train_config, run_train  # noqa: E402
from awmp.cli_train import main as train_main  # noqa: E402
from awmp.errors import (  # noqa: E402 - after the usage text, which is this module's summary
    EXIT_BAD_INPUT,
    EXIT_DIVERGED,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    AwmpError,
)

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_DIVERGED",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "main",
    "parse_train_config",
    "run_train",
]


def _fail(msg: str) -> int:
    print(f"awmp: error: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def cmd_train(argv: list[str]) -> int:
    return train_main(argv)


def cmd_eval(argv: list[str]) -> int:
    from awmp.evaluate import evaluate_run

    p = argparse.ArgumentParser(prog="awmp eval", description="Evaluate a saved run's policy.")
    p.add_argument("run_dir", help="a run directory written by `awmp train`")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes (default 10)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the evaluation env")
    p.add_argument(
        "--which", default="final", metavar="{final,best,checkpoint,FILE.ckpt}",
        help="the parameters: final (default), best (at the run's best evaluation), "
        "checkpoint (the newest) or a checkpoint file",
    )  # fmt: skip
    p.add_argument(
        "--video", default=None, metavar="OUT.mp4",
        help="also film the episodes into this MP4 (any algorithm; pip install 'awmp[video]')",
    )  # fmt: skip
    p.add_argument(
        "--eval-action", choices=("blend", "argmax"), default=None,
        help="SAC-AWMP: act by this rule instead of the run's own awmp.eval_action "
        "(blend: the rho-weighted sum of the component means; argmax: the most probable one)",
    )  # fmt: skip
    args = p.parse_args(argv)
    if args.episodes < 1:
        return _fail(f"invalid episodes={args.episodes}: must be >= 1")
    try:
        result = evaluate_run(
            args.run_dir, args.episodes, args.seed, args.video, args.eval_action, args.which
        )
    except FileNotFoundError as e:  # awmp's own errors: main's table
        return _fail(str(e))
    print(json.dumps(result, indent=2))
    return 0


def cmd_demo(argv: list[str]) -> int:
    from awmp.demo import run_demo

    p = argparse.ArgumentParser(prog="awmp demo", description=run_demo.__doc__)
    p.add_argument("--run-dir", default=None, help="where to write the run (default runs/...)")
    args = p.parse_args(argv)
    return run_demo(args.run_dir)


def cmd_report(argv: list[str]) -> int:
    from awmp.report import main as report_main

    return report_main(argv)


def cmd_experiment(argv: list[str]) -> int:
    from awmp.experiment import main as experiment_main

    return experiment_main(argv)


def cmd_sweep(argv: list[str]) -> int:
    from awmp.sweep import main as sweep_main

    return sweep_main(argv)


def cmd_inspect(argv: list[str]) -> int:
    from awmp.inspect import main as inspect_main

    return inspect_main(argv)


def cmd_bench(argv: list[str]) -> int:
    from awmp.bench import main as bench_main

    return bench_main(argv)


COMMANDS = {
    "bench": cmd_bench,
    "train": cmd_train,
    "eval": cmd_eval,
    "demo": cmd_demo,
    "report": cmd_report,
    "experiment": cmd_experiment,
    "sweep": cmd_sweep,
    "inspect": cmd_inspect,
}


def main(argv: list[str] | None = None) -> int:
    """The `awmp` command. Run as a command (argv None), it also turns on the persistent XLA
    compilation cache (awmp.compile_cache; AWMP_COMPILE_CACHE=off disables it)."""
    if argv is None:
        from awmp import compile_cache, placement

        placement.pin_from_env()  # a run placed by a sweep or `awmp bench --layout`
        compile_cache.enable()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-V", "--version"):
        from awmp._version import __version__

        print(f"awmp {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else EXIT_BAD_INPUT
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        return _fail(f"unknown command {cmd!r}; choose one of {', '.join(COMMANDS)}")
    try:
        return COMMANDS[cmd](rest)
    except AwmpError as e:  # anything else is a bug: it crashes with its traceback (exit 1)
        return _report(e)


if __name__ == "__main__":
    sys.exit(main())
