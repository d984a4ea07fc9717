"""`awmp report` on small fake run directories made here: files, numbers, flags."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from awmp import report
from awmp.cli import main as cli_main
from awmp.config import preset, to_dict


def fake_run(
    root: Path,
    name: str,
    env: str,
    algo: str,
    seed: int,
    returns: list[float],
    budget: int,
    eval_every: int,
    summary: bool = True,
    steps_done: int | None = None,
    **awmp_fields,
) -> Path:
    """A run directory in the format awmp.train writes (config.json, eval.csv, summary.json)."""
    cfg = preset("paper")
    cfg.env, cfg.algo, cfg.seed, cfg.total_steps = env, algo, seed, budget
    for k, v in awmp_fields.items():
        if k == "warmup_steps":
            cfg.warmup_steps = v
        else:
            setattr(cfg.awmp, k, v)
    d = root / name
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"config": to_dict(cfg)}))
    with open(d / "eval.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "seed", "return_mean", "return_std", "episodes", "wall_s"])
        for i, r in enumerate(returns):
            w.writerow([(i + 1) * eval_every, seed, r, 1.0, 10, i])
    if summary:
        done = budget if steps_done is None else steps_done
        (d / "summary.json").write_text(json.dumps({"steps_done": done, "interrupted": False}))
    return d


def hand_iqm(x) -> float:
    """Interquartile mean by hand: sort, drop floor(n/4) from each end, average the rest."""
    x = sorted(x)
    k = len(x) // 4
    kept = x[k : len(x) - k]
    return sum(kept) / len(kept)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 10, 13])
def test_iqm_matches_hand_computation(n):
    x = list(np.random.default_rng(n).normal(size=n) * 100)
    assert report.iqm(np.array(x)) == pytest.approx(hand_iqm(x), rel=1e-12)


def test_iqm_examples():
    assert report.iqm(np.array([1.0, 2.0, 3.0, 4.0, 100.0])) == pytest.approx(3.0)  # 2,3,4
    assert report.iqm(np.array([0.0, 10.0, 20.0, 30.0])) == pytest.approx(15.0)  # 10,20


def test_bootstrap_ci_matches_exact_bootstrap_distribution():
    """Brute force: with n = 5 all 5^5 resamples are equally likely; enumerate them."""
    x = np.array([-30.0, 5.0, 12.0, 40.0, 300.0])
    exact = np.array([hand_iqm(x[list(idx)]) for idx in itertools.product(range(5), repeat=5)])
    lo, hi = report.bootstrap_ci(x, reps=20_000, seed=3)
    # The sampled percentiles must fall between the exact ones at slightly wider/narrower levels.
    assert np.quantile(exact, 0.015) <= lo <= np.quantile(exact, 0.035)
    assert np.quantile(exact, 0.965) <= hi <= np.quantile(exact, 0.985)
    assert lo < report.iqm(x) < hi
    assert report.bootstrap_ci(np.full(4, 7.0)) == (7.0, 7.0)


def _table_rows(md: str) -> dict[tuple[str, str, str], list[str]]:
    rows = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 10 and cells[0].endswith("-v5"):
            rows[(cells[0], cells[1], cells[2])] = cells
    return rows


def test_finished_runs_names_each_unfinished_run(tmp_path):
    a = fake_run(tmp_path, "a", "Hopper-v5", "sac", 0, [1.0, 2.0], 2000, 1000)
    b = fake_run(tmp_path, "b", "Hopper-v5", "sac", 1, [3.0], 2000, 1000, summary=False)
    c = fake_run(tmp_path, "c", "Hopper-v5", "sac", 2, [4.0], 2000, 1000, steps_done=1000)
    assert [r.final for r in report.finished_runs([a])] == [2.0]
    with pytest.raises(report.ReportError) as e:
        report.finished_runs([a, b, c, tmp_path / "nowhere"])
    msg = str(e.value)
    assert f"{b} (" in msg and f"{c} (" in msg and "nowhere" in msg and f"{a} (" not in msg


def test_report_files_numbers_and_flags(tmp_path):
    runs = tmp_path / "runs"
    rng = np.random.default_rng(0)
    finals = {}
    for algo in ("sac", "td3"):
        finals[algo] = []
        for seed in range(5):
            curve = list(rng.normal(1000, 300, size=3))
            finals[algo].append(curve[-1])
            fake_run(runs, f"hop/{algo}/s{seed}", "Hopper-v5", algo, seed, curve, 300_000, 100_000)
    # A partial run (no summary.json) and one stopped early: flagged, not in the statistics.
    fake_run(runs, "hop/sac/s9", "Hopper-v5", "sac", 9, [5.0], 300_000, 100_000, summary=False)
    fake_run(
        runs, "hop/td3/s8", "Hopper-v5", "td3", 8, [7.0, 9.0], 300_000, 100_000, steps_done=200_000
    )
    # An unreadable directory (eval.csv only).
    (runs / "junk").mkdir()
    (runs / "junk" / "eval.csv").write_text("step,return_mean\n")
    # The O ablation (Fig. 4) and the tau_Q ablation (Fig. 5) of SAC-AWMP on Walker2d.
    for o in (2, 4, 8):
        for seed in range(2):
            fields = {} if o == 4 else {"num_components": o}
            if o == 8 and seed == 1:
                fields["warmup_steps"] = 500  # differs within the group: flagged
            fake_run(
                runs,
                f"walk/o{o}/s{seed}",
                "Walker2d-v5",
                "sac-awmp",
                seed,
                [1.0 * o, 2.0 * o],
                2000,
                1000,
                **fields,
            )
    for tq in (0.1, 0.0001):
        fake_run(
            runs, f"walk/tq{tq}/s0", "Walker2d-v5", "sac-awmp", 0, [3.0, 4.0], 2000, 1000, tau_q=tq
        )

    out = tmp_path / "report"
    assert cli_main(["report", str(runs), "--out", str(out)]) == 0
    md = (out / "report.md").read_text()
    for f in (
        "results.csv",
        "curves_Hopper-v5_300000.png",
        "curves_Walker2d-v5_2000.png",
        "curves_all.png",
        "ablation_num_components_Walker2d-v5_2000.png",
        "ablation_tau_q_Walker2d-v5_2000.png",
    ):
        assert (out / f).is_file() and (out / f).stat().st_size > 1000, f

    rows = _table_rows(md)
    for algo in ("sac", "td3"):
        cells = rows[("Hopper-v5", algo, "default")]
        assert cells[4] == "0,1,2,3,4" and cells[5] == "1"  # seeds, incomplete
        x = finals[algo]
        assert cells[6] == f"{np.mean(x):.1f} ± {np.std(x, ddof=1):.1f}"  # sample SD
        assert cells[7].startswith(f"{hand_iqm(x):.1f} [")
    assert ("Walker2d-v5", "sac-awmp", "num_components=8") in rows
    assert ("Walker2d-v5", "sac-awmp", "tau_q=0.0001") in rows
    assert rows[("Walker2d-v5", "sac-awmp", "num_components=2")][6] == "4.0 ± 0.0"

    # Incomplete runs are listed with their reason; missing seeds too.
    incomplete = md.split("## Incomplete, unreadable, missing")[1].split("\n## ")[0]
    assert "s9" in incomplete and "no summary.json" in incomplete
    assert "s8" in incomplete and "stopped at step 200000 of 300000" in incomplete
    assert "junk" in incomplete and "no config.json" in incomplete
    # Only one tau_Q run (seed 0) while the other Walker2d groups have seeds 0 and 1.
    assert "Walker2d-v5 sac-awmp tau_q=0.1 (2,000 steps): missing seeds 1" in incomplete
    assert "sac-awmp num_components=8 (2,000 steps): missing" not in incomplete
    assert "num_components=8 (2,000 steps): runs differ in warmup_steps (10000, 500)" in incomplete
    assert "num_components=2 (2,000 steps): runs differ" not in incomplete
    # Published TD3 figures at 300k steps on Hopper match task and budget; none at 2000 steps.
    refs = md.split("## Published reference figures")[1].split("\n## ")[0]
    assert "TD3 authors' learning curves" in refs and "2410.0 ± 900.0" in refs
    assert "Walker2d" not in refs

    with open(out / "results.csv") as f:
        table = {(r["env"], r["algo"], r["variant"]): r for r in csv.DictReader(f)}
    got = float(table[("Hopper-v5", "td3", "")]["final_iqm"])
    assert got == pytest.approx(hand_iqm(finals["td3"]), rel=1e-9)


def test_report_refuses_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli_main(["report", str(tmp_path / "empty"), "--out", str(tmp_path / "r")]) == 2
    assert "no run directories" in capsys.readouterr().err


def test_references_are_shipped_with_sources():
    refs = report.load_references()
    assert len(refs) >= 20 and all(r["source"] for r in refs)
    assert report.task_name("Hopper-v5") == "Hopper"


def test_bootstrap_difference_ci_matches_normal_theory_for_large_samples():
    """For n = 400 per group the bootstrap CI of a difference of means approaches the normal
    interval diff +- 1.96 sqrt(s_a^2/n_a + s_b^2/n_b) (an independent formula)."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(120.0, 30.0, 400), rng.normal(100.0, 50.0, 300)
    point, lo, hi = report.bootstrap_diff_ci(a, b, "mean", reps=20_000, seed=1)
    half = 1.96 * np.sqrt(a.var() / a.size + b.var() / b.size)
    assert point == pytest.approx(a.mean() - b.mean(), rel=1e-12)
    assert lo == pytest.approx(point - half, abs=0.08 * half)
    assert hi == pytest.approx(point + half, abs=0.08 * half)


def test_bootstrap_difference_ci_matches_exact_enumeration_for_iqm():
    """Brute force: with 4 runs per group all 4^4 x 4^4 resample pairs are equally likely."""
    a, b = np.array([10.0, 400.0, 90.0, 1200.0]), np.array([300.0, 20.0, 650.0, 80.0])
    ia = np.array([hand_iqm(a[list(i)]) for i in itertools.product(range(4), repeat=4)])
    ib = np.array([hand_iqm(b[list(i)]) for i in itertools.product(range(4), repeat=4)])
    exact = (ia[:, None] - ib[None, :]).ravel()
    point, lo, hi = report.bootstrap_diff_ci(a, b, "iqm", reps=20_000, seed=4)
    assert point == pytest.approx(hand_iqm(list(a)) - hand_iqm(list(b)))
    assert np.quantile(exact, 0.015) <= lo <= np.quantile(exact, 0.035)
    assert np.quantile(exact, 0.965) <= hi <= np.quantile(exact, 0.985)


def brute_permutation_p(a, b) -> float:
    """Two-sided p by enumerating every way to pick len(a) of the pooled runs as group A
    (float64, itertools): 2 x min(P[T >= t], P[T <= t]), clipped to 1."""
    pooled = [float(v) for v in (*a, *b)]
    t = sum(a) / len(a) - sum(b) / len(b)
    diffs = []
    for idx in itertools.combinations(range(len(pooled)), len(a)):
        ga = [pooled[i] for i in idx]
        gb = [pooled[i] for i in range(len(pooled)) if i not in idx]
        diffs.append(sum(ga) / len(ga) - sum(gb) / len(gb))
    ge = sum(d >= t - 1e-9 for d in diffs) / len(diffs)
    le = sum(d <= t + 1e-9 for d in diffs) / len(diffs)
    return min(1.0, 2 * min(ge, le))


@pytest.mark.parametrize(
    "a, b",
    [
        ([4.0, 5.0, 6.0], [1.0, 2.0, 3.0]),  # the most extreme split: 2 of 20 -> p = 0.1
        ([343.0, 343.0, 479.0], [619.0, 457.0, 604.0]),  # ties in a group
        ([538.0, 12.0, 1300.0, 77.0, 610.0], [440.0, 95.0, 2476.0, 323.0]),  # unequal sizes
        ([1.0, 2.0, 3.0, 4.0, 5.0], [1.0, 2.0, 3.0, 4.0, 5.0]),  # no difference: p = 1
    ],
)
def test_permutation_p_matches_brute_force_enumeration(a, b):
    assert report.permutation_p(a, b) == pytest.approx(brute_permutation_p(a, b), abs=1e-12)
    assert report.permutation_p(b, a) == pytest.approx(brute_permutation_p(b, a), abs=1e-12)


def brute_sign_flip_p(d) -> float:
    """Two-sided p by enumerating all 2^n sign patterns of the paired differences (float64,
    itertools): 2 x min(P[T >= t], P[T <= t]) with T the mean, clipped to 1."""
    d = [float(v) for v in d]
    t = sum(d) / len(d)
    means = [
        sum(s * v for s, v in zip(signs, d)) / len(d)
        for signs in itertools.product((1.0, -1.0), repeat=len(d))
    ]
    ge = sum(m >= t - 1e-9 for m in means) / len(means)
    le = sum(m <= t + 1e-9 for m in means) / len(means)
    return min(1.0, 2 * min(ge, le))


@pytest.mark.parametrize(
    "d",
    [
        [3.0, 5.0, 1.0, 8.0, 2.0],  # all positive: 2 of 32 patterns as extreme -> 1/16
        [-40.0, 12.5, -7.0, -90.0, 3.0],  # mixed signs
        [10.0, -10.0, 10.0, -10.0],  # mean 0: p = 1
        [0.0, 4.0, 4.0, -1.0, 6.0, 2.5],  # a zero difference and ties
    ],
)
def test_sign_flip_p_matches_brute_force_enumeration(d):
    assert report.sign_flip_p(d) == pytest.approx(brute_sign_flip_p(d), abs=1e-12)
    assert report.sign_flip_p([-v for v in d]) == pytest.approx(brute_sign_flip_p(d), abs=1e-12)


def test_sign_flip_p_hand_values():
    assert report.sign_flip_p([3.0, 5.0, 1.0, 8.0, 2.0]) == pytest.approx(2 / 32)
    assert np.isnan(report.sign_flip_p([4.0]))


def test_paired_bootstrap_ci_matches_exact_bootstrap_distribution():
    """Brute force: all 5^5 equally likely resamples of the 5 pairs' differences."""
    d = np.array([-12.0, 3.0, 8.0, 25.0, 140.0])
    exact = np.array([d[list(i)].mean() for i in itertools.product(range(5), repeat=5)])
    point, lo, hi = report.paired_bootstrap_ci(d, reps=20_000, seed=5)
    assert point == pytest.approx(sum(d.tolist()) / 5)
    assert np.quantile(exact, 0.015) <= lo <= np.quantile(exact, 0.035)
    assert np.quantile(exact, 0.965) <= hi <= np.quantile(exact, 0.985)


def test_permutation_p_hand_values_and_random_relabellings():
    # 3 v 3 fully separated: only the observed split and its mirror are as extreme (2 / 20).
    assert report.permutation_p([4.0, 5.0, 6.0], [1.0, 2.0, 3.0]) == pytest.approx(0.1)
    # 5 v 5 fully separated: 2 / C(10, 5) = 2 / 252.
    assert report.permutation_p(np.arange(5.0) + 10, np.arange(5.0)) == pytest.approx(2 / 252)
    # Past the exact limit it draws relabellings: close to the exact value.
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.5, 1.0, 7), rng.normal(0.0, 1.0, 6)
    exact = brute_permutation_p(list(a), list(b))
    drawn = report.permutation_p(a, b, exact_limit=10, reps=50_000, seed=1)
    assert drawn == pytest.approx(exact, abs=0.01)
    assert np.isnan(report.permutation_p([1.0], [2.0, 3.0]))  # one run: no test


def difference_row(runs: Path, out: Path, prefix: str) -> list[str]:
    """`awmp report RUNS --out OUT`, then the cells of the report.md row starting with prefix."""
    assert cli_main(["report", str(runs), "--out", str(out)]) == 0
    row = next(l for l in (out / "report.md").read_text().splitlines() if l.startswith(prefix))
    return [c.strip() for c in row.strip("|").split("|")]


def test_report_states_the_difference_against_sac(tmp_path):
    runs = tmp_path / "runs"
    finals = {"sac": [100.0, 200.0, 300.0], "sac-awmp": [900.0, 1000.0, 1100.0]}
    for algo, values in finals.items():
        for seed, v in enumerate(values):
            fake_run(runs, f"{algo}/s{seed}", "Hopper-v5", algo, seed, [0.0, v], 2000, 1000)
    cells = difference_row(runs, tmp_path / "report", "| Hopper-v5 | 2,000 | sac-awmp")
    assert cells[3] == "sac default" and cells[4] == "3, 3"
    assert cells[5].startswith("+800.0 [")
    lo = float(cells[5].split("[")[1].split(",")[0])
    assert lo > 0  # every resample separates these groups
    assert cells[7] == "0.100"  # the exact permutation test's floor with 3 runs per group


def test_report_pairs_a_variant_with_its_default_by_seed(tmp_path):
    """The paired columns use only the seeds both groups ran once (here 0, 1, 3: the default
    lacks seed 2, the variant lacks seed 4, and seed 5 appears twice in the variant), and their
    mean difference and sign-flip p equal a hand computation and brute-force enumeration."""
    runs = tmp_path / "runs"
    default = {0: 500.0, 1: 420.0, 3: 610.0, 4: 300.0}
    variant = {0: 530.0, 1: 400.0, 2: 999.0, 3: 690.0}
    for seed, v in default.items():
        fake_run(runs, f"d/s{seed}", "Hopper-v5", "sac-awmp", seed, [0.0, v], 2000, 1000)
    for seed, v in variant.items():
        fake_run(runs, f"v/s{seed}", "Hopper-v5", "sac-awmp", seed, [0.0, v], 2000, 1000,
                 zeta=-0.1)  # fmt: skip
    for i, v in enumerate([50.0, 60.0]):
        fake_run(runs, f"v/dup{i}", "Hopper-v5", "sac-awmp", 5, [0.0, v], 2000, 1000, zeta=-0.1)
    fake_run(runs, "d/s5", "Hopper-v5", "sac-awmp", 5, [0.0, 55.0], 2000, 1000)
    cells = difference_row(runs, tmp_path / "report", "| Hopper-v5 | 2,000 | sac-awmp zeta=-0.1")
    assert cells[4] == "6, 5"  # the unpaired columns use every complete run
    assert cells[8] == "0,1,3"
    pairs = [30.0, -20.0, 80.0]  # 530 - 500, 400 - 420, 690 - 610
    assert cells[9].startswith(f"{sum(pairs) / 3:+.1f} [")
    lo, hi = (float(v) for v in cells[9].split("[")[1].rstrip("]").split(","))
    assert min(pairs) <= lo < hi <= max(pairs)  # a mean of resampled pairs stays within them
    # 2 of the 8 sign patterns have a mean of at least 30: p = 2 x 2/8.
    assert cells[10] == f"{brute_sign_flip_p(pairs):.3f}" == "0.500"


def test_paired_by_seed_needs_two_pairs(tmp_path):
    runs = tmp_path / "runs"
    a = [report.read_run(fake_run(runs, "a0", "Hopper-v5", "sac", 0, [1.0, 7.0], 2000, 1000))]
    b = [report.read_run(fake_run(runs, "b0", "Hopper-v5", "sac", 0, [1.0, 4.0], 2000, 1000))]
    one = report.paired_by_seed(a, b)
    assert one["pair_seeds"] == [0] and one["paired"][0] == 3.0
    assert np.isnan(one["paired"][1]) and np.isnan(one["p_paired"])
    none = report.paired_by_seed(a, [])
    assert none["pair_seeds"] == [] and np.isnan(none["paired"][0])


def test_report_gives_no_interval_for_a_single_run_group(tmp_path):
    """One run has no spread to resample: the difference is stated without an interval (a CI
    from the other group's spread alone would read as if it separated the groups)."""
    runs = tmp_path / "runs"
    for seed, v in enumerate([100.0, 200.0, 300.0]):
        fake_run(runs, f"sac/s{seed}", "Hopper-v5", "sac", seed, [0.0, v], 2000, 1000)
    fake_run(runs, "td3/s0", "Hopper-v5", "td3", 0, [0.0, 900.0], 2000, 1000)
    cells = difference_row(runs, tmp_path / "report", "| Hopper-v5 | 2,000 | td3")
    assert cells[4] == "1, 3"
    assert cells[5] == "+700.0 [no CI: a group has 1 run]"
    assert cells[7] == "–"


def test_every_non_default_variant_gets_a_curve(tmp_path, capsys):
    """Variants outside Fig. 4/5 (zeta, network sizes, the gating switches) are drawn beside
    the default; a task with only an O ablation gets its ablation figure and no variants one."""
    runs = tmp_path / "runs"
    for seed in range(2):
        fake_run(runs, f"h/def/s{seed}", "Hopper-v5", "sac-awmp", seed, [1.0, 2.0], 2000, 1000)
        fake_run(runs, f"h/z/s{seed}", "Hopper-v5", "sac-awmp", seed, [1.0, 3.0], 2000, 1000,
                 zeta=-0.1)  # fmt: skip
        fake_run(runs, f"h/hid/s{seed}", "Hopper-v5", "sac-awmp", seed, [0.0, 1.0], 2000, 1000,
                 hidden=(64, 64), gating_samples="mean")  # fmt: skip
        fake_run(runs, f"w/o2/s{seed}", "Walker2d-v5", "sac-awmp", seed, [1.0, 1.0], 2000, 1000,
                 num_components=2)  # fmt: skip
    out = tmp_path / "report"
    assert cli_main(["report", str(runs), "--out", str(out)]) == 0
    capsys.readouterr()
    fig = out / "variants_sac-awmp_Hopper-v5_2000.png"
    assert fig.is_file() and fig.stat().st_size > 1000
    assert not (out / "variants_sac-awmp_Walker2d-v5_2000.png").exists()
    assert (out / "ablation_num_components_Walker2d-v5_2000.png").is_file()
    md = (out / "report.md").read_text()
    assert "![variants_sac-awmp_Hopper-v5_2000](variants_sac-awmp_Hopper-v5_2000.png)" in md
    # and the differences table compares each variant with SAC-AWMP's default
    assert "| Hopper-v5 | 2,000 | sac-awmp zeta=-0.1 | sac-awmp default | 2, 2 | +1.0 [" in md
