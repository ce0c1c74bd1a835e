"""Run plots: valid PNGs of sane sizes, and degenerate inputs that draw instead of crashing."""

import numpy as np
import pytest
from PIL import Image

from raytag.tracking import plots, tag_plots

TAGS = [f"genre---g{i:02d}" for i in range(30)] + [f"mood/theme---m{i:02d}" for i in range(20)]


def check_png(path, *, min_size=(300, 200), max_size=(3000, 4000)):
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
        pixels = np.asarray(image.convert("L"))
    assert min_size[0] <= width <= max_size[0] and min_size[1] <= height <= max_size[1], (width, height)
    assert pixels.std() > 5  # something is drawn
    return width, height


def history(epochs: int) -> dict:
    e = np.arange(1, epochs + 1)
    rng = np.random.default_rng(0)
    data = {
        "train/loss": list(zip(e, 0.7 / e)),
        "valid/loss": list(zip(e, 0.8 / e)),
        "valid/roc_auc": list(zip(e, 1 - 0.4 / e)),
        "valid/pr_auc": list(zip(e, 0.5 - 0.2 / e)),
        "valid/lwlrap": list(zip(e, 0.6 - 0.2 / e)),
        "train/examples_per_s": list(zip(e, 90 + e)),
        "epoch_seconds": list(zip(e, 30 + 0 * e)),
        "best_epoch": list(zip(e, e)),
        "epoch": list(zip(e, e)),
        "mask/masked_fraction": list(zip(e, 0.3 + 0 * e)),
        "mean_teacher/beta": list(zip(e, 0.8 * e / epochs)),
        "test/roc_auc": [(0, 0.9)],
    }
    for tag in TAGS:
        data[f"mask/masked/{tag}"] = list(zip(e, rng.poisson(40, epochs).astype(float)))
    return data


def test_split_history_sorts_curves_per_tag_groups_and_method_scalars():
    curves, groups, scalars = plots.split_history(history(3) | {"he/loss_threshold": [(1, 0.5)]}, TAGS)
    assert set(curves) == {"train/loss", "valid/loss", "valid/roc_auc", "valid/pr_auc", "valid/lwlrap",
                           "train/examples_per_s", "epoch_seconds"}
    assert set(groups) == {"mask/masked"} and list(groups["mask/masked"]) == TAGS  # "/" inside tags
    assert set(scalars) == {"mask/masked_fraction", "mean_teacher/beta", "he/loss_threshold"}


def test_a_tag_logged_under_its_mlflow_safe_key_is_recognised():
    _, groups, _ = plots.split_history({"mask/masked/r_b": [(1, 2.0)]}, ["r&b"])
    assert groups == {"mask/masked": {"r&b": [(1, 2.0)]}}


@pytest.mark.parametrize("epochs", [1, 40])
def test_plot_run_writes_the_standard_set(tmp_path, epochs):
    per_tag = [{"tag": t, "positives": i, "negatives": 100 - i, "roc_auc": 0.5 + i / 100 if i else np.nan,
                "pr_auc": i / 60 if i else np.nan} for i, t in enumerate(TAGS)]
    written = plots.plot_run(history(epochs), tmp_path / "plots", tags=TAGS, per_tag=per_tag, split="test", title="run")
    names = [p.name for p in written]
    # One epoch: every method statistic is a single value, a table in the review, not a plot.
    method = ["method_statistics.png"] if epochs > 1 else []
    assert names == ["curves.png", *method, "tags_mask_masked.png", "per_tag_test.png"]
    sizes = {p.name: check_png(p) for p in written}
    assert sizes["per_tag_test.png"][1] > 1000  # 50 tags get room: about 30 px per tag
    assert sizes["tags_mask_masked.png"][1] > 900


def test_constant_method_statistics_are_listed_and_only_changing_ones_are_plotted(tmp_path):
    series = {"beta": [(1, 0.0), (2, 0.4)], "fraction": [(1, 0.3), (2, 0.3)], "once": [(1, 7.0)],
              "broken": [(1, float("nan"))], "same_with_nan": [(1, 2.0), (2, float("nan")), (3, 2.0)]}
    changing, constants = plots.constant_series(series)
    assert list(changing) == ["beta", "broken"]  # no finite value: drawn, saying so
    assert constants == [("fraction", 0.3, 2), ("once", 7.0, 1), ("same_with_nan", 2.0, 3)]
    _, _, scalars = plots.split_history(history(5), TAGS)
    written = plots.plot_run({k: v for k, v in history(5).items() if not k.startswith("mask/masked/")},
                             tmp_path, split="test")
    assert [p.name for p in written] == ["curves.png", "method_statistics.png"]
    changing, constants = plots.constant_series(scalars)
    assert list(changing) == ["mean_teacher/beta"] and [c[0] for c in constants] == ["mask/masked_fraction"]
    with Image.open(tmp_path / "method_statistics.png") as image:  # one panel, not a grid of flat lines
        assert image.size[0] < 600


def test_the_chosen_threshold_lands_on_the_curves():
    y = np.array([True, True, False, False, True])
    s = np.array([0.9, 0.4, 0.6, 0.1, 0.7])
    assert tag_plots._threshold_point(y, s, 0.5, "roc") == pytest.approx((0.5, 2 / 3))  # 1 of 2 negatives, 2 of 3
    assert tag_plots._threshold_point(y, s, 0.5, "pr") == pytest.approx((2 / 3, 2 / 3))  # recall, precision
    assert tag_plots._threshold_point(y, s, 0.95, "pr") is None  # nothing predicted: no precision
    assert tag_plots._threshold_point(y, s, float("nan"), "roc") is None


def test_per_tag_roc_and_pr_curves_for_50_tags_with_a_tag_without_positives(tmp_path):
    rng = np.random.default_rng(1)
    labels = rng.random((300, 50)) < 0.2
    labels[:, 4] = False
    scores = np.clip(labels * 0.3 + rng.random((300, 50)) * 0.7, 0, 1)
    scores[0, 7] = np.nan
    roc, pr = tag_plots.plot_roc_pr_curves(labels, scores, TAGS, tmp_path, split="valid", labels_name="clean labels",
                                           thresholds={tag: 0.5 for tag in TAGS[:40]})
    assert (roc.name, pr.name) == ("roc_curves_valid.png", "pr_curves_valid.png")
    for path in (roc, pr):
        width, height = check_png(path, min_size=(1200, 1000))
        assert width < 2000 and height < 2000


def test_curves_of_a_single_tag_and_of_all_negative_labels(tmp_path):
    for name, labels in (("one", np.array([[1], [0], [1], [0]])), ("none", np.zeros((4, 1)))):
        paths = tag_plots.plot_roc_pr_curves(labels, np.array([[0.9], [0.1], [0.6], [0.4]]), ["solo"], tmp_path / name)
        for path in paths:
            check_png(path, min_size=(150, 150))
    with pytest.raises(ValueError, match="must be"):
        tag_plots.plot_roc_pr_curves(np.zeros((4, 2)), np.zeros((4, 2)), ["only-one"], tmp_path)


def test_degenerate_histories_still_draw(tmp_path):
    check_png(plots.plot_training_curves({}, tmp_path / "empty.png"))
    nan_history = {"train/loss": [(1, float("nan")), (2, float("inf"))], "valid/roc_auc": [(1, float("nan"))]}
    check_png(plots.plot_training_curves(nan_history, tmp_path / "nan.png"))
    only_seconds = {"epoch_seconds": [(1, 3.0)]}
    check_png(plots.plot_training_curves(only_seconds, tmp_path / "seconds.png"))
    assert plots.plot_scalar_series({}, tmp_path / "none.png") is None
    assert not (tmp_path / "none.png").exists()
    check_png(plots.plot_scalar_series({"x": [(3, float("nan"))], "y": [(1, 2.0)]}, tmp_path / "scalars.png"))
    check_png(plots.plot_tag_heatmap({"a": [(1, float("nan"))]}, tmp_path / "heat.png", title="t", value_label="v"))
    check_png(plots.plot_tag_heatmap({"a": [], "b": []}, tmp_path / "heat_empty.png", title="t", value_label="v"))


def test_per_tag_bars_and_differences_with_undefined_values(tmp_path):
    rows = [{"tag": "a", "positives": 0, "negatives": 10, "roc_auc": float("nan"), "pr_auc": float("nan")},
            {"tag": "b", "positives": 10, "negatives": 0, "roc_auc": "nan", "pr_auc": None}]
    check_png(tag_plots.plot_per_tag_scores(rows, tmp_path / "bars.png", title="nothing defined"))
    check_png(tag_plots.plot_per_tag_scores([], tmp_path / "bars_empty.png"))
    differences = [{"tag": "a", "roc_auc_delta": 0.05, "pr_auc_delta": -0.02},
                   {"tag": "b", "roc_auc_delta": float("nan"), "pr_auc_delta": float("nan")}]
    check_png(tag_plots.plot_tag_differences(differences, tmp_path / "diff.png", first="x", second="y"))
    check_png(tag_plots.plot_tag_differences(differences[1:], tmp_path / "diff_nan.png", first="x", second="y"))


def drawn_boxes(figure):
    """Renders ``figure`` (Agg) and returns its renderer and its bounding box in pixels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    return renderer, figure.bbox


def inside(box, outer, slack=1.0) -> bool:
    return (box.x0 >= outer.x0 - slack and box.y0 >= outer.y0 - slack
            and box.x1 <= outer.x1 + slack and box.y1 <= outer.y1 + slack)


def test_the_per_tag_change_figure_keeps_its_title_and_ticks_readable_and_says_no_change():
    differences = [{"tag": f"instrument---tag-{i:02d}", "roc_auc_delta": 0.011 - 0.002 * i, "pr_auc_delta": 0.0}
                   for i in range(12)]
    figure = tag_plots.tag_differences_figure(
        differences, first="pipeline-teacher-with-a-long-name [3f2a9c1d]",
        second="pipeline-student-with-a-long-name [77aa01b2]", where="test split, clean labels")
    renderer, page = drawn_boxes(figure)
    texts = [figure._suptitle] + [axes.title for axes in figure.axes]
    for text in texts:
        assert inside(text.get_window_extent(renderer), page), text.get_text()
    for axes in figure.axes:
        labels = [label for label in axes.get_xticklabels() if label.get_visible() and label.get_text()]
        assert len(labels) >= 3
        boxes = sorted((label.get_window_extent(renderer) for label in labels), key=lambda b: b.x0)
        for left, right in zip(boxes, boxes[1:]):
            assert left.x1 < right.x0, [label.get_text() for label in labels]
        for box in boxes:
            assert inside(box, page)
    roc, pr = figure.axes
    assert "no change" in [text.get_text() for text in pr.texts]
    assert "no change" not in [text.get_text() for text in roc.texts]


def test_the_throughput_legend_is_outside_the_panel_and_time_and_data_are_not_method_statistics(tmp_path):
    data = history(5)
    data["epoch_seconds"] = [(e, 10.0 + e) for e in range(1, 6)]
    data["train/examples_per_s"] = [(e, 100.0 * e) for e in range(1, 6)]
    figure = plots.training_curves_figure(data, title="run")
    renderer, page = drawn_boxes(figure)
    throughput = next(axes for axes in figure.axes if axes.get_title() == "Throughput")
    legend = throughput.get_legend().get_window_extent(renderer)
    panel = throughput.get_window_extent(renderer)
    assert legend.y1 <= panel.y0 or legend.x0 >= panel.x1  # not over the plotting area
    assert inside(legend, page)
    records = {"time/fit_s": [(0, 12.0)], "data/usable_files": [(0, 40.0)], "thresholds/tracks": [(0, 6.0)],
               "audit/tags_estimated": [(0, 5.0)], "mask/fraction": [(1, 0.1), (2, 0.2)]}
    _, _, scalars = plots.split_history(records)
    assert list(scalars) == ["mask/fraction"]


def test_an_evaluation_only_run_draws_no_training_plot(tmp_path):
    final = {"test/roc_auc": [(0, 0.8)], "time/evaluate_s": [(0, 3.0)], "data/usable_files": [(0, 40.0)]}
    written = plots.plot_run(final, tmp_path / "eval", per_tag=None)
    assert written == []
    assert [path.name for path in plots.plot_run(history(3), tmp_path / "train")] == [plots.CURVES_FILE,
                                                                                      plots.METHOD_FILE]
