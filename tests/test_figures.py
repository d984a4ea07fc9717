"""Report figures: one colour per algorithm in every figure (its variants in that colour, told
apart by line style), every curve distinguishable within a figure, and every legend inside the
figure. The figures are caught as `awmp report` saves them."""

from __future__ import annotations

from pathlib import Path

import matplotlib.figure
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from test_report import fake_run

from awmp.cli import main as cli_main
from awmp.plots import ALGO_COLORS, algo_color, curve_styles


@pytest.fixture
def figures(tmp_path, monkeypatch, capsys) -> dict[str, matplotlib.figure.Figure]:
    runs = tmp_path / "runs"
    for env in ("Hopper-v5", "Walker2d-v5"):
        for seed in range(2):
            for algo in ("sac-awmp", "sac", "td3"):
                fake_run(runs, f"{env}/{algo}/s{seed}", env, algo, seed, [1.0, 2.0], 2000, 1000)
            fake_run(runs, f"{env}/o2/s{seed}", env, "sac-awmp", seed, [0.5, 1.5], 2000, 1000,
                     num_components=2)  # fmt: skip
            fake_run(runs, f"{env}/z/s{seed}", env, "sac-awmp", seed, [0.5, 1.0], 2000, 1000,
                     zeta=-0.1)  # fmt: skip
    saved: dict[str, matplotlib.figure.Figure] = {}
    real = matplotlib.figure.Figure.savefig

    def record(self, fname, *args, **kwargs):
        saved[Path(fname).name] = self
        return real(self, fname, *args, **kwargs)

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    assert cli_main(["report", str(runs), "--out", str(tmp_path / "report")]) == 0
    capsys.readouterr()
    return saved


def _curves(fig) -> list[tuple[str, str, str]]:
    """(label, colour, line style) of every labelled curve of a figure."""
    return [
        (line.get_label(), to_hex(line.get_color()), line.get_linestyle())
        for ax in fig.axes
        for line in ax.get_lines()
        if not line.get_label().startswith("_")
    ]


def test_one_colour_per_algorithm_in_every_report_figure(figures):
    names = set(figures)
    assert {"curves_Hopper-v5_2000.png", "curves_all.png"} <= names
    assert "ablation_num_components_Hopper-v5_2000.png" in names
    assert "variants_sac-awmp_Hopper-v5_2000.png" in names
    for name, fig in figures.items():
        curves = _curves(fig)
        assert curves, name
        for label, color, style in curves:
            if name.startswith("curves_"):  # labelled by algorithm
                algo = label.split(" ")[0]
                assert color == ALGO_COLORS[algo] and style == "-", (name, label)
            else:  # every curve is SAC-AWMP: its colour, the default solid
                assert color == ALGO_COLORS["sac-awmp"], (name, label)
                default = label.startswith(("default", "num_components=4 "))
                assert (style == "-") == default, (name, label)
        per_axes = [
            [(c, s) for c, s in ((to_hex(ln.get_color()), ln.get_linestyle())
                                 for ln in ax.get_lines() if not ln.get_label().startswith("_"))]
            for ax in fig.axes
        ]  # fmt: skip
        for styles in per_axes:  # every curve of a panel is told apart from the others
            assert len(styles) == len(set(styles)), name


def test_every_legend_lies_inside_its_figure(figures):
    for name, fig in figures.items():
        canvas = FigureCanvasAgg(fig)  # saved and closed: draw it again
        canvas.draw()
        renderer = canvas.get_renderer()
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        assert legends, name
        for legend in legends:
            box = legend.get_window_extent(renderer)
            assert fig.bbox.x0 <= box.x0 and box.x1 <= fig.bbox.x1, name
            assert fig.bbox.y0 <= box.y0 and box.y1 <= fig.bbox.y1, name


def test_curve_styles():
    styles = curve_styles([("sac", ""), ("sac-awmp", "O=8"), ("sac-awmp", ""), ("other", "")])
    assert styles[("sac-awmp", "")] == {"color": ALGO_COLORS["sac-awmp"], "linestyle": "-"}
    assert styles[("sac-awmp", "O=8")] == {"color": ALGO_COLORS["sac-awmp"], "linestyle": "--"}
    assert styles[("sac", "")]["color"] == ALGO_COLORS["sac"]
    assert styles[("other", "")]["color"] == algo_color("other") not in ALGO_COLORS.values()
    many = curve_styles([("sac", str(i)) for i in range(9)])  # past four line styles: darker
    assert len({tuple(s.values()) for s in many.values()}) == 9
