"""The `awmp` command: train | eval | demo | report | experiment | sweep | inspect | bench.

A thin layer over the Python API (`awmp.train`, `awmp.load`): it parses, calls, and turns the
project's own errors into one line on stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys

USAGE = """usage: awmp {train,eval,demo,report,experiment,sweep,inspect,bench} ...

  awmp train --algo sac --env Hopper-v5 --seed 0 --total-steps 1000000 --preset paper \\
             --eval-interval 5000 --eval-episodes 10 --run-dir runs/...
  awmp eval RUN_DIR --episodes 10
  awmp demo          SAC-AWMP (O = 4) on Pendulum-v1 for 15,000 steps: learns in minutes
  awmp report RUNS_DIR... --out report/   tables and figures from run directories
  awmp experiment paper --budget 100000 --seeds 0,1 [--dry-run]   the paper's protocol
  awmp sweep paper --backend local --workers 2   the same grid in parallel, with retries;
             --backend ray [--address auto] on a Ray cluster (docs/CLUSTER.md)
  awmp inspect RUN_DIR --episodes 1 [--video]   gating and prior weights of a SAC-AWMP run
  awmp bench [--quick]  training steps/s side by side with SB3/SBX (docs/BENCHMARKS.md)

`awmp train --help` lists every config field with its description.
"""

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3  # non-finite losses or parameters; the last good checkpoint is kept
EXIT_SIGINT = 130  # 128 + SIGINT: stopped after a step, checkpoint written
EXIT_SIGTERM = 143  # 128 + SIGTERM: likewise


def _fail(msg: str) -> int:
    print(f"awmp: error: {msg}", file=sys.stderr)
    return EXIT_BAD_INPUT


def parse_train_config(argv: list[str]):
    """Build a TrainConfig from CLI flags: preset first, then every flag overrides it."""
    from awmp.config import ALGOS, PRESETS, preset

    argv = _split_seed_list(argv)

    pre = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    pre.add_argument("--algo", default="sac")
    pre.add_argument("--preset", default="paper")
    pre.add_argument("--resume", default=None)
    try:
        known, _ = pre.parse_known_args(argv)
    except argparse.ArgumentError:  # e.g. `--algo` without a value: tyro says it best below
        known = argparse.Namespace(algo="sac", preset="paper", resume=None)
    if known.resume is not None:  # the saved config is the default; flags must agree with it
        from awmp.train import load_run_config

        saved = load_run_config(known.resume)
        return _tyro_cli(type(saved), default=saved, args=argv, prog="awmp train")
    if known.algo not in ALGOS:
        raise _UsageError(f"invalid algo={known.algo!r}: must be one of {', '.join(ALGOS)}")
    if known.preset not in PRESETS:
        raise _UsageError(f"invalid preset={known.preset!r}: must be one of {', '.join(PRESETS)}")
    default = preset(known.preset)
    default.algo = known.algo
    return _tyro_cli(
        type(default),
        default=default,
        args=argv,
        prog="awmp train",
        description="Train SAC, SAC-AWMP or TD3 on a Gymnasium task. Flags override the preset.",
    )


class _UsageError(Exception):
    pass


def _split_seed_list(argv: list[str]) -> list[str]:
    """`--seeds 0,1,2` (or `--seeds=0,1,2`) as tyro's `--seeds 0 1 2`."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg.startswith("--seeds="):
            out += ["--seeds", *arg.split("=", 1)[1].split(",")]
        elif i > 0 and argv[i - 1] == "--seeds" and "," in arg:
            out += [x for x in arg.split(",") if x]
        else:
            out.append(arg)
    return out


def _tyro_cli(*args, **kwargs):
    """tyro.cli, with its boxed parse error turned into one line (a _UsageError)."""
    import contextlib
    import io

    import tyro

    buf = io.StringIO()
    try:
        with contextlib.redirect_stderr(buf):
            return tyro.cli(*args, **kwargs)
    except SystemExit as e:
        if e.code in (0, None):
            sys.stderr.write(buf.getvalue())
            raise
        raw = buf.getvalue().splitlines()
        lines = [line.strip(" \u2502\u256d\u256e\u2570\u256f") for line in raw]
        if raw and "\u256d" in raw[0]:
            lines = lines[1:]  # the box title ("Value error", ...)
        body: list[str] = []
        for line in lines:
            if not line.strip("\u2500 "):
                if body:
                    break  # the message ends at the box's first rule
                continue
            body.append(line)
        message = " ".join(body) or "invalid arguments"
        raise _UsageError(f"{message} (see awmp train --help)") from None


def cmd_train(argv: list[str]) -> int:
    from awmp.checkpoint import CheckpointError
    from awmp.config import ConfigError
    from awmp.envs import EnvError
    from awmp.train import RunDirError

    try:
        cfg = parse_train_config(argv)
    except (_UsageError, ConfigError, EnvError, RunDirError, CheckpointError) as e:
        return _fail(str(e))
    return run_train(cfg)


def run_train(cfg) -> int:
    """train(cfg) with `awmp train`'s exit codes (0, 2 bad input, 3 diverged, 130/143 stopped);
    prints the summary as JSON on success. `awmp sweep` runs each cell through this."""
    from awmp.checkpoint import CheckpointError
    from awmp.config import ConfigError
    from awmp.envs import EnvError
    from awmp.train import DivergenceError, RunDirError, train

    try:
        run_dir, summary = train(cfg)
    except (ConfigError, EnvError, RunDirError, CheckpointError) as e:
        return _fail(str(e))
    except DivergenceError as e:
        print(f"awmp: error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except KeyboardInterrupt as e:  # train() has printed where the run is and how to resume
        signum = getattr(e, "signum", None)
        if signum is None:
            print("\nawmp: interrupted (the last checkpoint, if any, is intact)", file=sys.stderr)
        return EXIT_SIGTERM if signum == 15 else EXIT_SIGINT
    print(json.dumps(summary, indent=2))
    return 0


def cmd_eval(argv: list[str]) -> int:
    from awmp.envs import EnvError
    from awmp.evaluate import evaluate_run

    p = argparse.ArgumentParser(prog="awmp eval", description="Evaluate a saved run's policy.")
    p.add_argument("run_dir", help="a run directory written by `awmp train`")
    p.add_argument("--episodes", type=int, default=10, help="evaluation episodes (default 10)")
    p.add_argument("--seed", type=int, default=12345, help="seed of the evaluation env")
    args = p.parse_args(argv)
    if args.episodes < 1:
        return _fail(f"invalid episodes={args.episodes}: must be >= 1")
    try:
        result = evaluate_run(args.run_dir, args.episodes, args.seed)
    except (FileNotFoundError, EnvError) as e:
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
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else EXIT_BAD_INPUT
    cmd, rest = argv[0], argv[1:]
    if cmd not in COMMANDS:
        return _fail(f"unknown command {cmd!r}; choose one of {', '.join(COMMANDS)}")
    return COMMANDS[cmd](rest)


if __name__ == "__main__":
    sys.exit(main())
