"""Search spaces: parsing and validation against a job, before anything starts."""

import pytest

from raytag.config import ConfigError, load_job
from raytag.search_space import apply_params, check_space, read_space
from raytag.cluster.training.sweep import SweepOptions, check_options

JOB = """
name: unit
data: {manifest: corpus/manifest.csv}
model: {name: mtt-tiny}
train: {epochs: 4}
"""


@pytest.fixture
def job(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(JOB)
    return load_job(path)


def space(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return read_space(path)


def test_shipped_spaces_validate_against_shipped_jobs():
    pairs = [
        ("jobs/demo-progressive.yaml", "tune_spaces/progressive.yaml", "demo-progressive-student"),
        ("jobs/progressive.yaml", "tune_spaces/progressive.yaml", "progressive-student"),
        ("jobs/demo-teacher.yaml", "tune_spaces/architecture.yaml", "demo-teacher"),
        ("jobs/teacher.yaml", "tune_spaces/architecture.yaml", "teacher"),
        ("jobs/demo-teacher.yaml", "tune_spaces/frontends.yaml", "demo-teacher"),
        ("jobs/teacher.yaml", "tune_spaces/frontends-paper.yaml", "teacher"),
    ]
    for job_file, space_file, target in pairs:
        assert check_space(load_job(job_file), read_space(space_file)).name == target


def test_a_space_parses_and_applies(tmp_path, job):
    s = space(tmp_path, "params:\n  train.lr: {loguniform: [1.0e-4, 1.0e-2]}\n  model.args.width: {choice: [16, 32]}\n")
    assert [p.kind for p in s.params] == ["loguniform", "choice"] and s.mode == "max"
    target = check_space(job, s)
    trial = apply_params(target, {"train.lr": 0.003, "model.args.width": 16}, name="unit-t1")
    assert trial.train.lr == 0.003 and trial.model.args == {"width": 16} and trial.name == "unit-t1"


def test_method_settings_sweep_and_a_swept_method_starts_from_its_own_defaults(tmp_path):
    target = check_space(load_job("jobs/demo-progressive.yaml"), read_space("tune_spaces/progressive.yaml"))
    trial = apply_params(target, {"objective.percentile": 60, "objective.mean_teacher.beta_max": 0.5,
                                  "objective.mean_teacher.window_epochs": 2.0})
    assert trial.objective.name == "balanced_masking" and trial.objective.percentile == 60
    assert trial.objective.mean_teacher.beta_max == 0.5 and trial.objective.mean_teacher.window_epochs == 2.0
    assert trial.objective.teacher == target.objective.teacher  # the pipeline's teacher stays
    # sweeping objective.name: each trial gets its method's settings, not the job's method's
    path = tmp_path / "staged.yaml"
    path.write_text(JOB + "objective: {name: staged_training, k: 4, mean_teacher: {gamma: 0.7}}\n")
    staged = load_job(path)
    target = check_space(staged, space(tmp_path, "params:\n  objective.name: {choice: [bce, coteaching, staged_training]}\n"))
    coteaching = apply_params(target, {"objective.name": "coteaching"})
    assert coteaching.objective.forget_rate == 0.2 and coteaching.objective.mean_teacher.gamma == 0.7
    assert apply_params(target, {"objective.name": "staged_training"}).objective.k == 4
    with pytest.raises(ConfigError, match=r"objective\.masking: unknown key .*objective\.percentile now"):
        check_space(staged, space(tmp_path, "params:\n  objective.masking.percentile: {choice: [70]}\n"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("params:\n  train.lrate: {uniform: [0.1, 0.2]}\n", r"params\.train\.lrate.*unknown key"),
        ("params:\n  train.lr: {normal: [0, 1]}\n", r"params\.train\.lr: unknown distribution 'normal'"),
        ("params:\n  train.lr: {uniform: [0.2, 0.1]}\n", "low < high"),
        ("params:\n  train.lr: {loguniform: [0, 1]}\n", "positive bounds"),
        ("params:\n  train.lr: {quniform: [1, 5]}\n", r"\[low, high, q\]"),
        ("params:\n  train.lr: {uniform: [0.1, 0.2], choice: [1]}\n", "exactly one distribution"),
        ("params:\n  train.lr: {uniform: [-1, 0.1]}\n", r"train\.lr = -1.*greater than 0"),
        ("params:\n  model.args.widht: {choice: [16]}\n", "unknown argument.*widht"),
        ("params:\n  train.epochs: {choice: [2, 0]}\n", r"train\.epochs = 0"),
        ("paramz: {}\n", "unknown key.*paramz"),
        ("- train.lr\n", "must be a mapping"),
        ("params:\n  train.lr: {choice: [0.1]}\nstage: student\n", "has no stages"),
        ("params:\n  train.lr: {choice: [0.1]}\nmetric: test/roc_auc\n", "per-epoch metric"),
    ],
)
def test_bad_spaces_name_the_problem(tmp_path, job, text, message):
    with pytest.raises(ConfigError, match=message):
        check_space(job, space(tmp_path, text))


def test_sweep_options_are_checked(tmp_path):
    s = space(tmp_path, "params:\n  train.lr: {grid: [0.1, 0.2]}\n")
    with pytest.raises(ConfigError, match="optuna search cannot sample grid"):
        check_options(s, SweepOptions(search="optuna"))
    with pytest.raises(ConfigError, match="scheduler"):
        check_options(s, SweepOptions(scheduler="hyperband"))


def test_frontend_spaces_name_the_tiny_and_the_paper_presets():
    from raytag.models import list_models

    tiny, = read_space("tune_spaces/frontends.yaml").params
    paper, = read_space("tune_spaces/frontends-paper.yaml").params
    assert tiny.path == paper.path == "model.name"
    assert set(tiny.args) == {name for name in list_models() if name.endswith("-tiny")}
    assert [f"{name}-tiny" for name in paper.args] == list(tiny.args)
