"""``raytag review`` against a real SQLite store filled with MlflowClient, and its pure parts."""

import math
import re

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from review_store import EXPECTED_ORDER, TAGS, fill_pipeline, log_plot
from rich.console import Console

from raytag.cli import main
from raytag.tracking import run_tags as tag_names
from raytag.tracking.report import (
    MISSING,
    describe_method,
    differing_params,
    params_table,
    runs_table,
    summarize_run,
    tag_differences,
)
from raytag.tracking.report_console import rich_tables
from raytag.tracking.review import ReviewError, read_history, review_runs


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("review-store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("pipelines", artifact_location=str(root / "artifacts"))
    ids = fill_pipeline(client, experiment)
    log_plot(client, ids["teacher"], "curves.png")  # a plot the driver logged: used instead of drawing one
    return {"uri": uri, "client": client, **ids}


def text_of(review, width: int = 250) -> str:
    console = Console(record=True, width=width, color_system=None)
    for item in rich_tables(review, width=width):
        console.print(item)
    return console.export_text()


def self_contained_html(html: str) -> None:
    """No attribute, CSS rule or tag that would fetch anything: only data: URIs."""
    for attribute, value in re.findall(r"""\b(src|href|srcset|action|poster)\s*=\s*["']([^"']*)""", html, re.I):
        assert value.startswith("data:image/png;base64,"), (attribute, value[:60])
    assert not re.search(r"<(script|link|iframe|object|embed)\b", html, re.I)
    assert "@import" not in html and not re.search(r"url\(\s*['\"]?(?!data:)", html)


def test_reviewing_a_pipeline_lists_both_stages_sorts_per_tag_changes_and_logs_the_report(store, tmp_path):
    outcome = review_runs(tracking_uri=store["uri"], parent_run_id=store["parent"], html_path=tmp_path / "r.html")
    review = outcome.review
    assert [run.stage for run in review.runs] == ["teacher", "student"]
    assert review.title == "demo-progressive (pipeline)"
    teacher, student = review.runs
    assert teacher.final == {"roc_auc": 0.75, "pr_auc": 0.375, "lwlrap": 0.65}
    assert student.method == "balanced_masking + mean teacher" and student.best_epoch == 3

    header, rows = runs_table(review.runs)
    assert header == ["run", "id", "stage", "model", "method", "ROC-AUC (test)", "PR-AUC (test)", "lwlrap (test)",
                      "labels", "best epoch", "chosen on", "teacher", "started", "duration",
                      "status"]
    assert rows[1][header.index("teacher")] == "teacher"
    # Which validation rows chose the best epoch: recorded on the student; the teacher run has no tag.
    assert [row[header.index("chosen on")] for row in rows] == [MISSING, "verified rows"]
    assert [row[header.index("id")] for row in rows] == [store["teacher"][:8], store["student"][:8]]
    assert {row[header.index("labels")] for row in rows} == {"clean labels"}
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", row[header.index("started")]) for row in rows)
    assert all(re.fullmatch(r"\d+s|\d+m \d\ds", row[header.index("duration")]) for row in rows)
    differing = ["objective.mean_teacher.enabled", "objective.teacher", "train.lr"]
    params_header, params_rows = params_table(review.runs)  # two runs: one row per differing param
    assert params_header == ["param", "teacher", "student"]
    assert [row[0] for row in params_rows] == differing and params_rows[2][1:] == ["0.001", "0.0003"]
    inline_header, _ = runs_table(review.runs, inline=True)  # many runs (sweeps): params as columns
    assert inline_header[5:8] == differing

    # Per-tag changes of the two stages, largest first, the tag without positives last.
    assert list(review.differences["tag"]) == EXPECTED_ORDER
    deltas = review.differences["roc_auc_delta"].tolist()
    assert deltas[0] == pytest.approx(0.08) and math.isnan(deltas[-1])
    assert all(abs(a) >= abs(b) for a, b in zip(deltas[:-2], deltas[1:-1]))

    printed = text_of(review)
    assert "demo-progressive-teacher" in printed and "demo-progressive-student" in printed
    assert "lineage: teacher [" in printed and "→ student [" in printed
    assert "params that differ" in printed and "objective.mean_teacher.enabled" in printed
    assert printed.index("genre---pop") < printed.index("instrument---piano") < printed.index("instrument---violin")

    html = outcome.html_path.read_text()
    self_contained_html(html)
    images = re.findall(r'<img src="data:image/png;base64,', html)
    captions = [image.caption for image in review.images]
    assert len(images) == len(review.images) >= 7
    assert "teacher: training and validation curves (logged with the run)" in captions  # not redrawn
    assert "teacher: training and validation curves" not in captions
    assert "student: training and validation curves" in captions
    assert "student: per tag and epoch: mask/masked" in captions  # the heatmap, tags with "/" included
    assert "student: method statistics per epoch (the ones that change)" in captions
    assert "student: per-tag ROC-AUC and PR-AUC on the test split (clean labels)" in captions
    # Constant method statistics are a table, not flat lines; thresholds join the per-tag table.
    assert review.constants[store["student"]] == [("mask/percentile", 80.0, 4), ("mask/teacher_tracks", 40.0, 1)]
    assert "Method statistics that did not change" in html and "mask/teacher_tracks" in html
    assert review.thresholds[store["student"]]["genre---pop"]["threshold"] == pytest.approx(0.55)
    assert store["teacher"] not in review.thresholds
    assert "student: per tag on the test split (clean labels)" in html
    assert "best F1 on the valid split (noisy labels)" in html
    assert re.search(r"<td>genre---pop</td><td class=\"num\">7</td><td class=\"num\">0.7800</td>"
                     r"<td class=\"num\">0.3900</td><td class=\"num\">0.5500</td><td class=\"num\">0.7000</td>", html)
    assert any(c.startswith("Per-tag change on the test split") for c in captions)
    assert "demo-progressive-student" in html and "/runs/demo-progressive-teacher/best_model" in html

    # Logged to the parent run, and findable by its tag.
    assert outcome.logged_artifact == "review/r.html"
    client = store["client"]
    assert client.get_run(store["parent"]).data.tags[tag_names.REVIEW_REPORT] == "review/r.html"
    assert [a.path for a in client.list_artifacts(store["parent"], "review")] == ["review/r.html"]


def test_run_ids_keep_their_order_and_an_experiment_lists_job_runs_without_parents(store, tmp_path):
    outcome = review_runs(tracking_uri=store["uri"], run_ids=[store["student"], store["teacher"]],
                          html_path=tmp_path / "ids.html", sort_by="pr_auc")
    assert [run.stage for run in outcome.review.runs] == ["student", "teacher"]
    assert outcome.logged_artifact is None
    assert outcome.review.differences["roc_auc_delta"].iloc[0] == pytest.approx(-0.08)
    experiment = review_runs(tracking_uri=store["uri"], experiment="pipelines", html_path=tmp_path / "e.html",
                             max_plotted_runs=1)
    assert [run.stage for run in experiment.review.runs][:2] == ["teacher", "student"]
    # Plots only for the best run by final ROC-AUC (the student), and a note saying so.
    assert {image.run_id for image in experiment.review.images} == {store["student"]}
    assert any(note.startswith("plots for the 1 runs with the best final ROC-AUC only") for note in experiment.review.notes)


@pytest.mark.parametrize(
    "selection, message",
    [
        ({}, "exactly one of"),
        ({"experiment": "pipelines", "run_ids": ["x"]}, "exactly one of"),
        ({"experiment": "nope"}, "no experiment named 'nope'"),
        ({"run_ids": ["0123456789abcdef0123456789abcdef"]}, "no run '0123456789abcdef0123456789abcdef'"),
    ],
)
def test_bad_selections_are_named(store, tmp_path, selection, message):
    with pytest.raises(ReviewError, match=message):
        review_runs(tracking_uri=store["uri"], html_path=tmp_path / "x.html", **selection)


def test_a_parent_without_children_and_the_cli(store, tmp_path, capsys):
    with pytest.raises(ReviewError, match="has no child runs"):
        review_runs(tracking_uri=store["uri"], parent_run_id=store["student"], html_path=tmp_path / "x.html")
    html = tmp_path / "cli.html"
    code = main(["review", store["teacher"], store["student"], "--uri", store["uri"], "--html", str(html)])
    assert code == 0 and html.is_file()
    out = capsys.readouterr().out
    assert "demo-progressive-teacher" in out and f"HTML report: {html}" in out
    assert main(["review", "--uri", store["uri"], "--experiment", "nope"]) == 2
    assert "no experiment named 'nope'" in capsys.readouterr().err


def test_final_metrics_of_a_valid_split_are_kept_out_of_its_history(store):
    client = store["client"]
    for first in (1, 0):  # epochs numbered from 1; from 0 in a run of raytag before that
        run = client.create_run(client.get_experiment_by_name("pipelines").experiment_id, run_name="valid-eval")
        run_id = run.info.run_id
        client.log_batch(run_id, metrics=[Metric("valid/roc_auc", v, 1000 + s, s)
                                          for s, v in enumerate([0.5, 0.6, 0.7], start=first)])
        client.log_batch(run_id, metrics=[Metric("valid/roc_auc", 0.66, 5000, 0)])  # the final evaluation, step 0
        history, final = read_history(client, run_id, ["valid/roc_auc"], "valid", first_epoch=first)
        assert final == {"roc_auc": 0.66}
        assert history["valid/roc_auc"] == [(1, 0.5), (2, 0.6), (3, 0.7)]


def test_a_run_that_numbered_epochs_from_0_is_reviewed_numbered_from_1(tmp_path):
    """Runs of raytag before epochs were numbered from 1 (steps and epoch metrics from 0, no
    ``raytag.epochs_from`` tag) read as the same runs logged today: best epoch, histories."""
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    reviews, histories = {}, {}
    for first in (1, 0):
        experiment = client.create_experiment(f"from-{first}", artifact_location=str(tmp_path / f"artifacts-{first}"))
        ids = fill_pipeline(client, experiment, first_epoch=first)
        assert tag_names.first_epoch(client.get_run(ids["student"]).data.tags) == first
        reviews[first] = review_runs(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", parent_run_id=ids["parent"],
                                     html_path=tmp_path / f"r{first}.html", log_to_parent=False).review
        keys = list(client.get_run(ids["student"]).data.metrics)
        histories[first] = read_history(client, ids["student"], keys, "test", first_epoch=first)
    assert [run.best_epoch for run in reviews[0].runs] == [run.best_epoch for run in reviews[1].runs] == [3, 3]
    per_epoch = [{k: v for k, v in history.items() if not k.startswith("test/")} for history, _ in
                 (histories[0], histories[1])]  # final test/* metrics sit at step 0, not an epoch
    assert per_epoch[0] == per_epoch[1] and histories[0][1] == histories[1][1]
    new, _ = histories[1]
    assert new["epoch"] == [(e, float(e)) for e in (1, 2, 3, 4)] and new["best_epoch"][-1] == (4, 3.0)
    assert [step for step, _ in new["mask/masked/genre---rock"]] == [1, 2, 3, 4]


def test_pure_parts_need_no_store():
    def run(label, params):
        return summarize_run(run_id=label * 4, name=label, status="FINISHED", params=params, tags={},
                             final={"roc_auc": 0.5}, best_epoch=None)

    runs = [run("a", {"train.lr": "0.1", "train.epochs": "3", "name": "a"}),
            run("b", {"train.lr": "0.2", "train.epochs": "3", "name": "b", "semi.enabled": "True"})]
    assert differing_params(runs) == ["semi.enabled", "train.lr"]
    assert differing_params(runs[:1]) == []
    assert describe_method({"objective.name": "bce", "semi.enabled": "True", "augment.enabled": "true"}, {}) == \
        "bce + noisy student + augmented"
    assert describe_method({}, {tag_names.METHOD: "coteaching"}) == "coteaching"
    header, rows = runs_table(runs, inline=True)
    assert rows[0][header.index("semi.enabled")] == "—" and rows[0][header.index("PR-AUC (test)")] == "—"
    first = [{"tag": "x", "positives": 3, "roc_auc": 0.5, "pr_auc": 0.2}, {"tag": "only-first", "roc_auc": 0.9}]
    second = [{"tag": "x", "positives": 3, "roc_auc": 0.4, "pr_auc": 0.5}, {"tag": "y", "positives": 1, "roc_auc": 0.7}]
    by_pr = tag_differences(first, second, sort_by="pr_auc")
    assert list(by_pr["tag"]) == ["x", "only-first", "y"] and by_pr["pr_auc_delta"].iloc[0] == pytest.approx(0.3)
    with pytest.raises(ValueError, match="sort_by"):
        tag_differences(first, second, sort_by="lwlrap")
    with pytest.raises(ValueError, match="no 'tag' column"):
        tag_differences([{"roc_auc": 1.0}], second)
    assert len(TAGS) == 5


def test_runs_of_the_same_name_are_told_apart_and_a_repeated_id_is_shown_once(store, tmp_path):
    client = store["client"]
    experiment = client.create_experiment("reruns", artifact_location=str(tmp_path / "artifacts"))
    ids = []
    for value in (0.7, 0.72):
        run = client.create_run(experiment, run_name="same-job")
        client.log_batch(run.info.run_id, metrics=[Metric("valid/roc_auc", value - 0.1 * (1 - e), 0, e) for e in (0, 1)]
                         + [Metric("test/roc_auc", value, 1, 0)])
        client.set_terminated(run.info.run_id)
        ids.append(run.info.run_id)
    first, second = ids
    outcome = review_runs(tracking_uri=store["uri"], run_ids=[first, second, first], html_path=tmp_path / "same.html")
    review = outcome.review
    assert [run.run_id for run in review.runs] == [first, second]
    assert [run.label for run in review.runs] == [f"same-job [{first[:8]}]", f"same-job [{second[:8]}]"]
    assert "1 run id given more than once, shown once" in review.notes
    curves = [image.caption for image in review.images if "training and validation curves" in image.caption]
    assert curves == [f"same-job [{first[:8]}]: training and validation curves",
                      f"same-job [{second[:8]}]: training and validation curves"]
    header, rows = runs_table(review.runs)
    assert [row[header.index("labels")] for row in rows] == ["—", "—"]  # not recorded by these runs
    html = outcome.html_path.read_text()
    assert html.count("<h2>same-job [") == 2
    printed = text_of(review)
    assert first[:8] in printed and second[:8] in printed and "given more than once" in printed


def test_durations_read_like_a_person_writes_them():
    from raytag.tracking.report import format_duration

    assert [format_duration(0, ms) for ms in (45_000, 725_000, 7_380_000)] == ["45s", "12m 05s", "2h 03m"]
    assert format_duration(0, None) == "running" and format_duration(None, 5) == "—"


def test_the_8_character_ids_the_review_prints_can_be_given_back(store, tmp_path, capsys):
    teacher, student = store["teacher"], store["student"]
    outcome = review_runs(tracking_uri=store["uri"], run_ids=[teacher[:8], student[:8], teacher],
                          html_path=tmp_path / "short.html")
    assert [run.run_id for run in outcome.review.runs] == [teacher, student]
    assert "1 run id given more than once, shown once" in outcome.review.notes
    assert review_runs(tracking_uri=store["uri"], parent_run_id=store["parent"][:8],
                       html_path=tmp_path / "p.html", log_to_parent=False).review.runs[0].run_id == teacher
    assert main(["review", teacher[:8], "--uri", store["uri"], "--html", str(tmp_path / "cli.html")]) == 0
    assert "demo-progressive-teacher" in capsys.readouterr().out
    with pytest.raises(ReviewError, match="too short"):
        review_runs(tracking_uri=store["uri"], run_ids=[teacher[:3]], html_path=tmp_path / "x.html")


def test_an_ambiguous_run_id_prefix_lists_its_candidates(tmp_path, capsys):
    """Two runs whose ids share 8 characters: a real store whose ids are set with SQL (MLflow
    draws them at random)."""
    import sqlite3

    database = tmp_path / "mlflow.db"
    client = MlflowClient(f"sqlite:///{database}")
    experiment = client.create_experiment("twins", artifact_location=str(tmp_path / "artifacts"))
    made = [client.create_run(experiment, run_name=name).info.run_id for name in ("one", "two")]
    wanted = ["abcdef12" + "0" * 24, "abcdef12" + "1" * 24]
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA foreign_keys = OFF")
        for old, new in zip(made, wanted):
            for table in ("runs", "tags"):
                db.execute(f"UPDATE {table} SET run_uuid = ? WHERE run_uuid = ?", (new, old))
            db.execute("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)", (old, new))
    assert main(["review", "abcdef12", "--uri", f"sqlite:///{database}", "--html", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("raytag review: run id 'abcdef12' is ambiguous: 2 runs start with it: ")
    assert f"{wanted[0]} (one)" in err and f"{wanted[1]} (two)" in err and "\n" not in err
    assert main(["review", "abcdef121", "--uri", f"sqlite:///{database}", "--html", str(tmp_path / "r.html")]) == 0
    assert "two" in capsys.readouterr().out
    assert main(["review", "abcdef19", "--uri", f"sqlite:///{database}"]) == 2
    assert "no run whose id starts with 'abcdef19'" in capsys.readouterr().err


def test_an_80_column_console_gets_every_column_whole_headers_and_the_whole_title(store, tmp_path):
    review = review_runs(tracking_uri=store["uri"], parent_run_id=store["parent"], html_path=tmp_path / "80.html",
                         log_to_parent=False).review
    printed = text_of(review, width=80)
    lines = printed.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert "demo-progressive (pipeline), final metrics on the test split, clean labels" in lines
    words = {word for line in lines for word in line.split()}
    for header in ("run", "id", "stage", "model", "method", "ROC-AUC", "PR-AUC", "lwlrap", "best", "epoch",
                   "teacher", "started,", "took", "status", "Δ", "ROC", "PR"):
        assert header in words, header
    assert not {"sta", "ge", "ROC-A…", "sta…"} & words  # no header cut or wrapped mid-word
    for run in review.runs:  # every run keeps its values: id, status, teacher
        assert run.short_id in printed and printed.count(run.name) >= 3
    assert printed.count("FINISHED") == 2
    wide = text_of(review, width=250)
    assert max(len(line.rstrip()) for line in wide.splitlines()) > 80  # one table when it fits
    assert sum(1 for line in wide.splitlines() if line.strip().startswith("run ")) == 1


def test_piped_output_honours_columns_and_is_80_wide_without(store, tmp_path, capsys, monkeypatch):
    args = ["review", "--parent", store["parent"], "--uri", store["uri"], "--html", str(tmp_path / "c.html"), "--no-log"]
    widths = {}
    for columns in ("100", None):
        if columns:
            monkeypatch.setenv("COLUMNS", columns)
        else:
            monkeypatch.delenv("COLUMNS", raising=False)
        assert main(args) == 0
        out = capsys.readouterr().out
        # The tables' rules ("───") and the lines outside tables; not the path of the report file.
        widths[columns] = max(len(line) for line in out.splitlines()
                              if "─" in line or not line.startswith(("HTML report", "  ")))
    assert 80 < widths["100"] <= 100 and widths[None] <= 80


def test_review_of_an_audit_run_shows_its_kind_its_split_and_its_numbers(tmp_path):
    """An audit run as ``raytag audit`` logs it (``_log_audit`` on a real SQLite store)."""
    import pandas as pd

    from raytag.audit import LabelAudit
    from raytag.cluster.inference.audit import _log_audit
    from raytag.config import load_job

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    job = load_job("jobs/demo-teacher.yaml", [f"tracking.uri={uri}", "tracking.experiment=audits"])
    per_tag = pd.DataFrame({"tag": ["rock", "pop"], "labelled_positive": [12, 9], "err_plus": [0.25, 0.1],
                            "err_minus": [0.05, 0.02], "status": ["ok", "ok"]})
    suspicious = pd.DataFrame({"rank": [1], "track": ["/x.wav"], "tag": ["rock"], "label": [0], "score": [0.9],
                               "p_wrong": [0.8], "suspected": ["missing"]})
    run_id = _log_audit(job, LabelAudit(per_tag, suspicious), teacher="/models/teacher", teacher_run_id=None,
                        split="valid", tracks=60, unscored=0)
    review = review_runs(tracking_uri=uri, run_ids=[run_id[:8]], html_path=tmp_path / "audit.html").review
    run, = review.runs
    assert (run.method, run.split) == ("label-noise audit", "valid")
    assert review.constants == {} and not any("no metrics/per_tag" in note for note in review.notes)
    note, = [note for note in review.notes if "label-noise audit of the valid split" in note]
    assert "2 tags estimated" in note and "mean Err+ 17.5%" in note and "mean Err− 3.5%" in note
    printed = text_of(review)
    assert "label-noise audit" in printed and "valid split" in printed and "test split" not in printed
    html = (tmp_path / "audit.html").read_text()
    assert "Method statistics that did not change" not in html and "audit/err_plus" not in html
    # An experiment's review leaves audit runs out with a note that names them (and how to see
    # them); an experiment with nothing but audit runs is an error that names them.
    see = f"1 label-noise audit run (see them with `raytag review {run_id[:8]}`)"
    with pytest.raises(ReviewError, match=re.escape(
            f"experiment 'audits' has no training or evaluation runs; it holds only {see}")):
        review_runs(tracking_uri=uri, experiment="audits", html_path=tmp_path / "none.html")
    client = MlflowClient(uri)
    evaluation = client.create_run(client.get_experiment_by_name("audits").experiment_id, run_name="evaluation")
    listed = review_runs(tracking_uri=uri, experiment="audits", html_path=tmp_path / "experiment.html").review
    assert [run.run_id for run in listed.runs] == [evaluation.info.run_id]
    assert f"not listed: {see}" in listed.notes
    assert f"note: not listed: {see}" in text_of(listed)


def test_max_runs_counts_the_runs_the_table_shows_not_the_audits_left_out(tmp_path, capsys):
    """``--experiment NAME --max-runs N``: the N newest training or evaluation runs, however many
    audit runs are newer; the note still names the audits among the listed runs."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("mixed", artifact_location=str(tmp_path / "artifacts"))
    evaluations = [client.create_run(experiment, run_name=f"evaluation-{i}", start_time=1000 + i).info.run_id
                   for i in range(4)]
    audits = [client.create_run(experiment, run_name=f"audit-{i}", start_time=2000 + i,
                                tags={tag_names.KIND: tag_names.KIND_AUDIT}).info.run_id for i in range(3)]
    # Older than every listed run, like the runs the table leaves out: not named.
    client.create_run(experiment, run_name="old-audit", start_time=500, tags={tag_names.KIND: tag_names.KIND_AUDIT})
    review = review_runs(tracking_uri=uri, experiment="mixed", max_runs=3, html_path=tmp_path / "r.html").review
    assert [run.run_id for run in review.runs] == evaluations[1:]  # oldest first
    newest_first = " ".join(run_id[:8] for run_id in reversed(audits))
    assert f"not listed: 3 label-noise audit runs (see them with `raytag review {newest_first}`)" in review.notes
    html = tmp_path / "cli.html"
    assert main(["review", "--uri", uri, "--experiment", "mixed", "--max-runs", "2", "--html", str(html)]) == 0
    out = capsys.readouterr().out
    assert "evaluation-3" in out and "evaluation-2" in out and "evaluation-1" not in out
    assert "not listed: 3 label-noise audit runs" in " ".join(out.split())
