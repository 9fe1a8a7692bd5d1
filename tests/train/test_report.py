import json

import matplotlib.pyplot as plt
import numpy as np
import pytest

from birdie_ssm.errors import BirdieError
from birdie_ssm.train.report import arm_colours, make_report

PNG = b"\x89PNG\r\n\x1a\n"


def _write(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def test_report_draws_pngs(tmp_path):
    uniform, shifted = {"ntp": 0.5, "copy": 0.5}, {"ntp": 0.8, "copy": 0.2}
    records = [
        {"kind": "train", "step": 1, "loss": 5.0, "lr": 1e-3, "tokens_per_s": 9.0,
         "mixture": uniform},
        {"kind": "eval", "step": 2, "val_loss": {"ntp": 4.9, "copy": 5.1}, "mixture": uniform,
         "controller": {"step": 2}},
        {"kind": "train", "step": 5, "loss": 4.5, "lr": 1e-3, "tokens_per_s": 9.0,
         "mixture": uniform},
        {"kind": "eval", "step": 10, "val_loss": {"ntp": 4.2, "copy": 4.6}, "mixture": shifted,
         "controller": {"step": 10, "reward": 0.9, "class_rewards": {"ntp": 0.9, "copy": 0.0}}},
        {"kind": "eval", "step": 12, "val_loss": {"ntp": 4.1, "copy": None}, "mixture": shifted},
        {"kind": "train", "step": 15, "loss": 4.0, "lr": 1e-3, "tokens_per_s": 9.0,
         "mixture": shifted},
    ]  # fmt: skip
    _write(tmp_path / "metrics.jsonl", records)
    paths = make_report(tmp_path)
    assert [p.name for p in paths] == ["losses.png", "mixture.png", "rewards.png"]
    colours = arm_colours(["ntp", "copy"])
    # Pixels of an objective's colour: a curve's worth (a legend entry alone has < 100), a
    # band's, a reward marker's.
    least = {"losses.png": 200, "mixture.png": 10_000, "rewards.png": 10}
    for path in paths:
        assert path.read_bytes().startswith(PNG)
        pixels = (plt.imread(path)[..., :3] * 255).round().astype(int).reshape(-1, 3)
        assert len(np.unique(pixels, axis=0)) > 50  # drawn, not a blank canvas
        for arm, colour in colours.items():
            drawn = np.all(np.abs(pixels - np.round(np.array(colour) * 255)) <= 2, axis=1)
            assert drawn.sum() > least[path.name], (path.name, arm, drawn.sum())


def test_report_uses_eval_mixtures_without_training_records(tmp_path):
    _write(tmp_path / "metrics.jsonl", [
        {"kind": "eval", "step": 2, "val_loss": {"a": 3.0}, "mixture": {"a": 1.0}},
        {"kind": "eval", "step": 4, "val_loss": {"a": 2.0}, "mixture": {"a": 1.0}},
    ])  # fmt: skip
    assert [p.name for p in make_report(tmp_path)] == ["losses.png", "mixture.png"]


def test_missing_or_empty_metrics_is_a_user_error(tmp_path):
    with pytest.raises(BirdieError, match="no metrics.jsonl"):
        make_report(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(BirdieError, match="holds no records"):
        make_report(tmp_path)


def test_plots_carry_unit_run_name_steps_and_clipped_rewards(tmp_path, monkeypatch):
    from birdie_ssm.train import report

    (tmp_path / "config.yaml").write_text("name: my-run\n")
    mix = [{"a": 0.5, "b": 0.5}, {"a": 0.9, "b": 0.1}, {"a": 0.2, "b": 0.8}]
    records = [
        {"kind": "eval", "step": s, "val_loss": {"a": 3.0 - i, "b": 3.1 - i}, "mixture": mix[i],
         "realised_mixture": None if i == 0 else {"a": 0.6, "b": 0.4},
         "controller": {"step": s,
                        "class_rewards": {"a": [0, 1.0, 0.3][i], "b": [0, -1.0, 0.2][i]}}}
        for i, s in enumerate([0, 2, 10])
    ] + [{"kind": "train", "step": 20, "loss": 1.0, "mixture": mix[2]}]  # fmt: skip
    _write(tmp_path / "metrics.jsonl", records)
    figures = []
    monkeypatch.setattr(report.plt, "close", figures.append)  # keep the figures to inspect
    make_report(tmp_path)
    losses, mixture, rewards = figures
    assert "my-run" in losses._suptitle.get_text()
    val_ax = losses.axes[0]
    assert val_ax.get_xscale() == "symlog" and "nats/token" in val_ax.get_ylabel()
    # Steps 0, 2 and 10 land apart on the axis (symlog), not piled up at the left.
    xs = val_ax.transData.transform([[0, 0], [2, 0], [10, 0]])[:, 0]
    assert np.diff(xs).min() > 0.1 * (xs[-1] - xs[0])
    requested = mixture.axes[0]
    (first, *_) = requested.collections  # the bottom band: arm "a"
    top = first.get_paths()[0].vertices
    # Steps, not ramps: arm a holds 0.5 until step 2, 0.9 until 10, 0.2 until the run's end (20).
    assert {(0.0, 0.5), (2.0, 0.5), (2.0, 0.9), (10.0, 0.9), (10.0, 0.2), (20.0, 0.2)} <= {
        (round(float(x), 6), round(float(y), 6)) for x, y in top
    }
    assert requested.get_xlim()[0] == 0
    panels = [ax for ax in rewards.axes if ax.get_visible()]
    assert len(panels) == 2  # one per class: no line hidden under another
    clipped = [line for ax in panels for line in ax.lines if line.get_marker() == "X"]
    assert sorted(float(y) for line in clipped for y in line.get_ydata()) == [-1.0, 1.0]
    assert "clipped" in rewards._suptitle.get_text()


ARMS = ["next_token", "prefix_lm", "autoencoding[mask_rate=0.15,shuffle=True]",
        "autoencoding[mask_rate=0.5,shuffle=True]", "autoencoding[mask_rate=0.15,shuffle=False]",
        "infilling[mask_rate=0.15]", "infilling[mask_rate=0.3]", "infilling[mask_rate=0.5]",
        "copying", "selective_copying[spans=1]", "selective_copying[spans=2]",
        "associative_recall", "deshuffling", "task_format[task=mqar]",
        "task_format[task=phonebook]"]  # fmt: skip


def _hue(colour) -> float:
    import colorsys

    return colorsys.rgb_to_hsv(*colour[:3])[0]


def test_many_arms_are_coloured_by_objective_with_legends_outside(tmp_path, monkeypatch):
    from birdie_ssm.train import report

    assert len(ARMS) == 15
    uniform = {a: 1 / len(ARMS) for a in ARMS}
    records = [
        {"kind": "eval", "step": s, "val_loss": {a: 3.0 - 0.1 * i - 0.01 * j
                                                  for j, a in enumerate(ARMS)},
         "mixture": uniform, "realised_mixture": None if i == 0 else uniform}
        for i, s in enumerate([0, 10, 50, 100])
    ] + [{"kind": "train", "step": 100, "loss": 1.0, "mixture": uniform}]  # fmt: skip
    _write(tmp_path / "metrics.jsonl", records)
    figures = []
    monkeypatch.setattr(report.plt, "close", figures.append)
    make_report(tmp_path)
    losses, mixture = figures
    val_ax = losses.axes[0]
    line_colour = {line.get_label(): line.get_color() for line in val_ax.lines}
    band_colour = {
        band.get_label(): tuple(band.get_facecolor()[0][:3]) for band in mixture.axes[0].collections
    }
    for colour in (line_colour, band_colour):
        assert set(colour) == set(ARMS)
        assert len({tuple(np.round(c, 3)) for c in colour.values()}) == 15  # no colour repeats
        hues = {}
        for arm, c in colour.items():
            hues.setdefault(arm.split("[")[0], set()).add(round(_hue(c), 2))
        assert all(len(h) == 1 for h in hues.values()), hues  # one hue per objective...
        firsts = [next(iter(h)) for h in hues.values()]
        assert len(set(firsts)) == len(firsts)  # ...and a different one for each
        assert colour["next_token"] != colour["autoencoding[mask_rate=0.15,shuffle=True]"]
    # The legends sit beside the axes, not over the curves.
    for fig, ax in ((losses, val_ax), (mixture, mixture.axes[0])):
        fig.canvas.draw()
        legend = ax.get_legend().get_window_extent()
        assert legend.x0 >= ax.get_window_extent().x1
