"""A study's planned family in `awmp report` (awmp.study): Holm's correction against brute-force
closed testing, the one-sided exact permutation p against enumeration, the family's rows and
verdicts on fake runs, and the provenance table against a real git history."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_report import brute_permutation_p, fake_run

from awmp import report, stats, study
from awmp.cli import main as cli_main


def brute_holm(p: list[float]) -> list[float]:
    """Holm's procedure as closed testing with Bonferroni local tests (Marcus, Peritz and
    Gabriel 1976): hypothesis i's adjusted p is the largest, over every intersection J of
    hypotheses that contains i, of min(1, |J| * min_{j in J} p_j)."""
    n = len(p)
    out = []
    for i in range(n):
        worst = 0.0
        for k in range(1, n + 1):
            for subset in itertools.combinations(range(n), k):
                if i in subset:
                    worst = max(worst, min(1.0, k * min(p[j] for j in subset)))
        out.append(worst)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_holm_matches_closed_testing(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 8))
    p = list(rng.uniform(0, 0.2, n) ** 2)
    if n > 2:
        p[1] = p[0]  # a tie
    assert study.holm(p) == pytest.approx(brute_holm(p), abs=1e-15)


def test_holm_hand_values_and_nan():
    # m = 3: sorted 0.01, 0.02, 0.04 -> 0.03, 0.04, 0.04 (made non-decreasing)
    assert study.holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    got = study.holm([0.01, math.nan, 0.5])
    assert got[0] == pytest.approx(0.02) and math.isnan(got[1]) and got[2] == pytest.approx(0.5)


def brute_greater_p(a, b) -> float:
    """One-sided p of H1: mean(a) > mean(b), by enumerating every split of the pooled runs."""
    pooled = [float(v) for v in (*a, *b)]
    t = sum(a) / len(a) - sum(b) / len(b)
    count = total = 0
    for idx in itertools.combinations(range(len(pooled)), len(a)):
        ga = [pooled[i] for i in idx]
        gb = [pooled[i] for i in range(len(pooled)) if i not in idx]
        count += sum(ga) / len(ga) - sum(gb) / len(gb) >= t - 1e-9
        total += 1
    return count / total


@pytest.mark.parametrize(
    "a, b",
    [
        ([6.0, 7.0, 8.0, 9.0, 10.0], [1.0, 2.0, 3.0, 4.0, 5.0]),  # complete separation: 1/252
        ([1.0, 2.0, 3.0, 4.0, 5.0], [6.0, 7.0, 8.0, 9.0, 10.0]),  # the other way: p = 1
        ([538.0, 12.0, 1300.0, 77.0, 610.0], [440.0, 95.0, 2476.0, 323.0]),
        ([343.0, 343.0, 479.0], [619.0, 457.0, 604.0]),  # ties
    ],
)
def test_permutation_p_matches_enumeration(a, b):
    assert stats.permutation_p(a, b, alternative="greater") == pytest.approx(
        brute_greater_p(a, b), abs=1e-12
    )
    assert stats.permutation_p(a, b) == pytest.approx(brute_permutation_p(a, b), abs=1e-12)


def test_complete_separation_gives_the_smallest_p():
    a, b = [6.0, 7.0, 8.0, 9.0, 10.0], [1.0, 2.0, 3.0, 4.0, 5.0]
    assert stats.permutation_p(a, b, alternative="greater") == pytest.approx(1 / 252)
    assert math.isnan(stats.permutation_p([1.0], b))


@pytest.mark.parametrize(
    "text, want",
    [
        ("sac-awmp", ("sac-awmp", "")),
        ("sac-awmp[num_components=1]", ("sac-awmp", "num_components=1")),
        ("td3[default]", ("td3", "")),
    ],
)
def test_parse_group(text, want):
    g = study.parse_group(text)
    assert (g.algo, g.variant) == want


@pytest.mark.parametrize("text", ["sac-awmp td3", "a - b - c", "sac[x=1 - td3", " - td3"])
def test_parse_comparison_refuses_bad_text(text):
    with pytest.raises(study.StudyError):
        study.parse_comparison(text, True)


def _family_runs(root: Path) -> None:
    """Hopper: SAC-AWMP above both baselines in every seed; Walker: SAC-AWMP below TD3 in every
    seed, and no O = 1 group there; Ant: only SAC-AWMP."""
    hop = {"sac-awmp": [900, 950, 1000, 1050, 1100], "td3": [100, 150, 200, 250, 300]}
    o1 = [500, 520, 540, 560, 580]
    for s in range(5):
        fake_run(root, f"h/a/{s}", "Hopper-v5", "sac-awmp", s, [0, hop["sac-awmp"][s]], 10, 5)
        fake_run(root, f"h/t/{s}", "Hopper-v5", "td3", s, [0, hop["td3"][s]], 10, 5)
        fake_run(root, f"h/o/{s}", "Hopper-v5", "sac-awmp", s, [0, o1[s]], 10, 5, num_components=1)
        fake_run(root, f"w/a/{s}", "Walker2d-v5", "sac-awmp", s, [0, 100 + s], 10, 5)
        fake_run(root, f"w/t/{s}", "Walker2d-v5", "td3", s, [0, 900 + s], 10, 5)
        fake_run(root, f"a/a/{s}", "Ant-v5", "sac-awmp", s, [0, 7.0 + s], 10, 5)


def test_family_rows_verdicts_and_holm(tmp_path):
    _family_runs(tmp_path)
    runs = [report.read_run(p) for p in report.find_run_dirs([tmp_path])]
    groups = report.group_runs(runs)
    fam = [
        study.parse_comparison("sac-awmp - sac-awmp[num_components=1]", True),
        study.parse_comparison("sac-awmp - td3", True),
        study.parse_comparison("td3 - sac-awmp[num_components=1]", False),
    ]
    rows = study.family_rows(groups, fam, "greater")
    got = {(r["env"], r["comparison"].label): r for r in rows}
    # No row where a group is missing (Walker O = 1, Ant baselines).
    assert set(got) == {
        ("Hopper-v5", "sac-awmp − sac-awmp[num_components=1]"),
        ("Hopper-v5", "sac-awmp − td3"),
        ("Walker2d-v5", "sac-awmp − td3"),
        ("Hopper-v5", "td3 − sac-awmp[num_components=1]"),
    }
    hop_o1 = got[("Hopper-v5", "sac-awmp − sac-awmp[num_components=1]")]
    assert hop_o1["mean"][0] == pytest.approx(1000 - 540)
    assert hop_o1["p"] == pytest.approx(1 / 252)
    # Holm over the three confirmatory rows: raw 1/252, 1/252, 1 -> 3/252, 3/252, 1.
    assert hop_o1["p_holm"] == pytest.approx(3 / 252)
    assert hop_o1["verdict"] == "confirmed, holds family-wise"
    walker = got[("Walker2d-v5", "sac-awmp − td3")]
    assert walker["p"] == pytest.approx(1.0) and walker["p_holm"] == pytest.approx(1.0)
    assert walker["verdict"] == "refuted"
    explore = got[("Hopper-v5", "td3 − sac-awmp[num_components=1]")]
    assert explore["alternative"] == "two-sided" and math.isnan(explore["p_holm"])
    assert explore["p"] == pytest.approx(2 / 252)
    assert explore["verdict"] == "refuted"  # an exploratory row never "holds family-wise"


def test_holm_counts_the_plans_unrun_comparisons(tmp_path):
    """With --family-size 8 and three confirmatory rows run, Holm's m is 8: the unrun five enter
    as p = 1, so the smallest raw p 1/252 is adjusted to 8/252, not 3/252."""
    _family_runs(tmp_path)
    groups = report.group_runs([report.read_run(p) for p in report.find_run_dirs([tmp_path])])
    fam = [
        study.parse_comparison("sac-awmp - sac-awmp[num_components=1]", True),
        study.parse_comparison("sac-awmp - td3", True),
    ]
    rows = study.family_rows(groups, fam, "greater", family_size=8)
    p = [r["p"] for r in rows]
    want = brute_holm(p + [1.0] * (8 - len(p)))[: len(p)]
    assert [r["p_holm"] for r in rows] == pytest.approx(want)
    assert rows[0]["p_holm"] == pytest.approx(8 / 252)
    with pytest.raises(study.StudyError):
        study.family_rows(groups, fam, "greater", family_size=2)


def _git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin",
    }  # fmt: skip
    out = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_report_prints_the_family_figure_and_provenance(tmp_path, capsys):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    plan = repo / "RESULTS.md"
    plan.write_text("# Results\n")
    _git(repo, "add", "RESULTS.md")
    _git(repo, "commit", "-qm", "results", "--date", "2026-01-01T00:00:00+00:00")
    plan.write_text("# Results\n## 5. The plan\nquestions\n")
    _git(repo, "add", "RESULTS.md")
    env_date = "2026-01-02T12:00:00+00:00"
    subprocess.run(
        ["git", "commit", "-qm", "plan"], cwd=repo, check=True,
        env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
             "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin",
             "GIT_COMMITTER_DATE": env_date, "GIT_AUTHOR_DATE": env_date},
    )  # fmt: skip
    commit = _git(repo, "rev-parse", "HEAD")
    runs = tmp_path / "runs"
    _family_runs(runs)
    # Hopper's TD3 runs started after the plan from its commit; SAC-AWMP's before it.
    for d in runs.rglob("config.json"):
        meta = json.loads(d.read_text())
        after = "/h/t/" in str(d)
        meta["created"] = "2026-01-03T08:00:00" if after else "2026-01-02T11:00:00+00:00"
        meta["git_commit"], meta["git_dirty"] = (commit, False) if after else (None, None)
        d.write_text(json.dumps(meta))
    out = tmp_path / "out"
    rc = cli_main([
        "report", str(runs), "--out", str(out), "--compare", "sac-awmp - td3",
        "--explore", "sac-awmp - sac-awmp[num_components=1]", "--alternative", "greater",
        "--plan", f"{plan}:## 5. The plan",
    ])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    md = (out / "report.md").read_text()
    assert (out / "family.png").is_file() and "![family](family.png)" in md
    assert f"added in commit `{commit[:10]}` at 2026-01-02 12:00:00 UTC" in md
    prov = md.split("## Provenance of the family's runs")[1].splitlines()
    td3 = next(x for x in prov if x.startswith("| Hopper-v5 | td3 | default | 10 | 5 |"))
    assert "2026-01-03 08:00:00 UTC" in td3 and td3.rstrip().endswith("| no | yes |")
    awmp = next(x for x in prov if x.startswith("| Hopper-v5 | sac-awmp | default | 10 | 5 |"))
    assert "2026-01-02 11:00:00 UTC" in awmp and awmp.rstrip().endswith("| unknown | **no** |")
    assert "| Hopper-v5 | 10 | sac-awmp − td3 | confirmatory |" in md


@pytest.mark.parametrize(
    "args, message",
    [
        (["--compare", "sac-awmp td3"], "expected 'A - B'"),
        (["--plan", "nofile.md:## x", "--compare", "sac-awmp - td3"], "no file nofile.md"),
        (["--plan", "x"], "needs at least one --compare"),
    ],
)
def test_report_refuses_a_bad_family_in_one_line(tmp_path, capsys, args, message):
    fake_run(tmp_path, "r", "Hopper-v5", "td3", 0, [1.0, 2.0], 10, 5)
    rc = cli_main(["report", str(tmp_path), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1


def test_efficiency_and_stability_against_hand_computation(tmp_path):
    """Efficiency: the mean of evaluations after warm-up (fake runs: evaluations every 5 steps
    of 20, warm-up 5, so the evaluations at 10, 15, 20 count); stability: sample SD of finals
    and mean best - final, written out by hand."""
    curves = {"sac-awmp": [[1, 4, 2, 3], [0, 6, 5, 7]], "td3": [[9, 1, 1, 1], [9, 2, 8, 2]]}
    for algo, cs in curves.items():
        for s, c in enumerate(cs):
            fake_run(tmp_path, f"{algo}/{s}", "Hopper-v5", algo, s, c, 20, 5, warmup_steps=5)
    runs = [report.read_run(p) for p in report.find_run_dirs([tmp_path])]
    groups = report.group_runs(runs)
    comp = study.parse_comparison("sac-awmp - td3", True)
    (eff,) = study.efficiency_rows(groups, [comp])
    a = [(4 + 2 + 3) / 3, (6 + 5 + 7) / 3]
    b = [(1 + 1 + 1) / 3, (2 + 8 + 2) / 3]
    assert eff["mean"][0] == pytest.approx(np.mean(a) - np.mean(b))
    assert eff["p"] == pytest.approx(brute_permutation_p(a, b))
    stab = {r["group"].algo: r for r in study.stability_rows(groups, [comp.a, comp.b])}
    assert stab["sac-awmp"]["sd_final"] == pytest.approx(abs(3 - 7) / math.sqrt(2))
    assert stab["sac-awmp"]["drop"] == pytest.approx(((4 - 3) + (7 - 7)) / 2)
    assert stab["td3"]["drop"] == pytest.approx(((9 - 1) + (9 - 2)) / 2)
