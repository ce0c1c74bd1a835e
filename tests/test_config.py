"""Configuration: typed values, dotted overrides, errors that name the key."""

import re
from pathlib import Path

import pytest

from raytag.config import ConfigError, apply_override, flatten, load_job

JOB = """
name: unit
data:
  manifest: corpus/manifest.csv
model:
  name: mtt-tiny
train:
  epochs: 3
"""


@pytest.fixture
def job_file(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(JOB)
    return path


def test_defaults_and_overrides(job_file):
    job = load_job(job_file, ["train.lr=3e-4", "scaling.num_workers=1", "model.args.width=48"])
    assert job.train.lr == pytest.approx(3e-4) and job.train.epochs == 3
    assert job.scaling.num_workers == 1 and job.model.args == {"width": 48}
    assert job.train.batch_size == 32  # paper default survives


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.lrate=1", r"train\.lrate: unknown key; allowed: epochs, batch_size, lr"),
        ("trian.epochs=1", r"trian: unknown key; allowed: name, seed"),
        ("train.lr=-1", r"train\.lr: Input should be greater than 0 \(got -1\)"),
        ("train.epochs=many", r"train\.epochs: .*integer.*\(got 'many'\)"),
        ("train.select_metric=accuracy", r"train\.select_metric: .*'roc_auc'"),
        ("model.name=vgg", r"model: .*vgg"),
        ("model.args.widht=3", r"unknown argument\(s\) widht for model 'mtt-tiny'; allowed: .*width"),
        ("model.args.num_tags=3", r"num_tags"),
        ("name=has space", r"name: .*pattern"),
    ],
)
def test_bad_values_name_the_key(job_file, override, message):
    with pytest.raises(ConfigError, match=message):
        load_job(job_file, [override])


@pytest.mark.parametrize(
    "overrides, key, shown",
    [
        (["train.lr=inf"], "train.lr", "'inf'"),
        (["train.lr=.inf"], "train.lr", "inf"),
        (["train.lr=.nan"], "train.lr", "nan"),
        (["train.weight_decay=1.0e+999"], "train.weight_decay", "inf"),  # YAML reads it as inf
        (["scaling.resize_check_s=-.inf"], "scaling.resize_check_s", "-inf"),
        (["scaling.resources={tpu: .inf}"], "scaling.resources.tpu", "inf"),
        (["objective.mean_teacher.beta_max=.inf"], "objective.mean_teacher.beta_max", "inf"),
        (["objective.name=coteaching", "objective.forget_exponent=.nan"], "objective.forget_exponent", "nan"),
    ],
)
def test_non_finite_numbers_are_refused_naming_the_key(job_file, overrides, key, shown):
    with pytest.raises(ConfigError, match=rf"{re.escape(key)}: Input should be a finite number \(got {shown}\)"):
        load_job(job_file, overrides)


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.args.dropout=.nan", r"model: args\.dropout: a finite number \(the preset's default is 0\.\d+\); got nan"),
        ("model.args.dropout=high", r"model: args\.dropout: a finite number .*; got 'high'"),
        ("model.args.width=12.5", r"model: args\.width: a whole number \(the preset's default is \d+\); got 12\.5"),
        ("model.args.width=true", r"model: args\.width: a whole number .*; got True"),
        ("model.args.crop_seconds=.inf", r"model: args\.crop_seconds: a finite number .*; got inf"),
    ],
)
def test_model_argument_values_of_the_wrong_kind_name_the_argument(job_file, override, message):
    with pytest.raises(ConfigError, match=message):
        load_job(job_file, [override])


def test_model_argument_values_of_the_presets_kind_load():
    from raytag.models import check_argument_values, model_arguments

    for name in ("mtt-tiny", "pons-spectrogram-tiny", "shortres-tiny"):
        defaults = model_arguments(name)
        assert check_argument_values(name, defaults) == []  # every preset's own values pass
    assert check_argument_values("mtt-tiny", {"dropout": 0, "width": 32}) == []  # an int where a float goes
    assert check_argument_values("pons-spectrogram-tiny", {"timbral_filters": [8, 8]}) == []  # YAML gives lists
    assert check_argument_values("pons-spectrogram-tiny", {"timbral_filters": [8, "x"]}) == [
        "timbral_filters: a list of whole numbers (the preset's default is "
        f"{list(model_arguments('pons-spectrogram-tiny')['timbral_filters'])}); got [8, 'x']"
    ]


def test_a_non_finite_number_in_the_job_file_is_refused(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(JOB.replace("  epochs: 3\n", "  epochs: 3\n  lr: .inf\n"))
    with pytest.raises(ConfigError, match=r"train\.lr: Input should be a finite number \(got inf\)"):
        load_job(path)


def test_missing_required_and_bad_files(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("name: x\n")
    with pytest.raises(ConfigError, match="data: required key is missing"):
        load_job(path)
    with pytest.raises(ConfigError, match="job file not found"):
        load_job(tmp_path / "nope.yaml")
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_job(path)


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="key=value"):
        apply_override({}, "train.lr")
    with pytest.raises(ConfigError, match="train is a value"):
        apply_override({"train": 3}, "train.lr=1")


def test_resolved_config_flattens_to_params(job_file):
    flat = flatten(load_job(job_file).resolved())
    assert flat["train.epochs"] == 3 and flat["model.name"] == "mtt-tiny"
    assert flat["data.manifest"].endswith("corpus/manifest.csv") and flat["data.manifest"].startswith("/")


PIPELINE = JOB + """
stages:
  - name: teacher
    overrides: {objective: {name: balanced_training}}
  - name: student
    teacher: teacher
    overrides:
      objective: {name: balanced_masking, mean_teacher: {enabled: true}}
"""


def test_stages_become_validated_jobs_with_teacher_lineage(tmp_path):
    from raytag.config import stage_jobs

    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    job = load_job(path, ["train.epochs=5"])
    (teacher_stage, teacher), (student_stage, student) = stage_jobs(job)
    assert (teacher.name, student.name) == ("unit-teacher", "unit-student")
    assert teacher.objective.name == "balanced_training" and teacher.train.epochs == 5
    assert student.objective.mean_teacher.enabled and student.objective.mean_teacher.beta_max == 0.8
    assert student.objective.teacher == f"{Path(teacher.storage).resolve()}/unit-teacher/best_model"


@pytest.mark.parametrize(
    "stages, message",
    [
        ("  - name: s\n    overrides: {train: {lr: -1}}\n", r"stages\[s\]\.train\.lr"),
        ("  - name: s\n    teacher: t\n", "teacher 't' is not an earlier stage"),
        ("  - name: a\n  - name: a\n", "stage name 'a' is used twice"),
        ("  - name: a\n  - name: b\n    teacher: a\n", r"stages\[b\]: a teacher is given but none of its methods takes one"),
    ],
)
def test_bad_stages_are_rejected_before_anything_runs(tmp_path, stages, message):
    path = tmp_path / "p.yaml"
    path.write_text(JOB + "stages:\n" + stages)
    with pytest.raises(ConfigError, match=message):
        load_job(path)


def test_objective_settings_are_validated_by_the_chosen_method(job_file):
    job = load_job(job_file, ["objective.name=balanced_masking", "objective.percentile=90"])
    assert job.objective.percentile == 90 and job.objective.teacher is None
    with pytest.raises(ConfigError, match=r"objective\.percentile: Input should be less than or equal to 100"):
        load_job(job_file, ["objective.name=balanced_masking", "objective.percentile=120"])
    with pytest.raises(ConfigError, match=r"objective\.name: unknown method 'mixup'; choose one of .*coteaching"):
        load_job(job_file, ["objective.name=mixup"])
    job = load_job(job_file, ["objective.name=coteaching", "objective.forget_rate=0.3"])
    assert (job.objective.forget_rate, job.objective.num_gradual) == (0.3, 10)


@pytest.mark.parametrize(
    "overrides, message",
    [
        # another method's setting: named, with the allowed keys and whose setting it is
        (["objective.forget_rate=0.3"],
         r"objective\.forget_rate: unknown key for method bce; allowed: name, mean_teacher "
         r"\(forget_rate is a setting of coteaching\)"),
        (["objective.name=staged_training", "objective.kk=3"],
         r"objective\.kk: unknown key for method staged_training; allowed: name, k, alpha, mean_teacher"),
        (["objective.mean_teacher.etta=0.9"], r"objective\.mean_teacher\.etta: unknown key; allowed: enabled, eta"),
    ],
)
def test_an_unknown_objective_key_names_the_allowed_ones(job_file, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_job(job_file, overrides)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["objective.name=balanced_masking", "objective.masking.percentile=90"],
         r"objective\.masking: unknown key .*\(objective\.masking\.percentile is objective\.percentile now "
         r"\(balanced_masking\)"),
        (["objective.name=staged_training", "objective.staged.k=5"],
         r"objective\.staged\.k is objective\.k now \(staged_training\)"),
        (["objective.name=bootstrap_hard", "objective.bootstrap_beta=0.7"],
         r"objective\.bootstrap_beta is objective\.beta now \(bootstrap_hard, bootstrap_soft\)"),
    ],
)
def test_an_old_job_file_is_told_where_a_moved_key_lives_now(job_file, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_job(job_file, overrides)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["objective.name=coteaching", "objective.mean_teacher.enabled=true"],
         r"objective\.name coteaching cannot be combined with mean_teacher \(objective\.mean_teacher\.enabled\)"),
        (["objective.name=coteaching", "semi.enabled=true"], r"coteaching cannot be combined with noisy_student"),
        (["model.head=sigmoid_sparsemax", "semi.enabled=true"],
         r"multi_activation \(model\.head: sigmoid_sparsemax\) cannot be combined with noisy_student \(semi\.enabled\)"),
        (["objective.mean_teacher.enabled=true", "semi.enabled=true"],
         r"mean_teacher .* cannot be combined with noisy_student"),
    ],
)
def test_incompatible_wrappers_are_rejected_as_the_methods_declare(job_file, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_job(job_file, overrides)


def test_every_registered_combination_the_methods_accept_validates(job_file):
    """The compatibility checks come from the methods' declarations alone: each method with each
    wrapper it accepts is a valid job, each other one is an error."""
    from raytag.methods import accepted_wrappers, methods

    switches = {"multi_activation": "model.head=sigmoid_sparsemax", "mean_teacher": "objective.mean_teacher.enabled=true",
                "noisy_student": "semi.enabled=true"}
    for name, cls in methods().items():
        for wrapper, switch in switches.items():
            overrides = [f"objective.name={name}", switch]
            if wrapper in accepted_wrappers(cls):
                assert load_job(job_file, overrides).objective.name == name
            else:
                with pytest.raises(ConfigError, match="cannot be combined"):
                    load_job(job_file, overrides)


def test_config_names_no_method():
    """Methods own their settings, compatibility and teacher key: config.py names none of them."""
    import raytag.config
    from raytag.methods import methods, wrappers

    source = Path(raytag.config.__file__).read_text()
    for name in [*methods(), *wrappers()]:
        assert f'"{name}"' not in source and f"'{name}'" not in source, name
    for word in ("masking", "coteaching", "co-teaching", "staged", "bootstrap", "TEACHER_KEYS"):
        assert word not in source, word


def test_a_job_pickles_with_its_methods_settings(job_file):
    import pickle

    job = load_job(job_file, ["objective.name=balanced_masking", "objective.percentile=70",
                              "objective.mean_teacher.enabled=true"])
    again = pickle.loads(pickle.dumps(job))
    assert again == job and type(again.objective) is type(job.objective) and again.objective.percentile == 70


def test_a_stage_that_switches_method_starts_from_its_defaults(tmp_path):
    """The job's own method settings do not follow a stage into another method; wrapper sections do."""
    from raytag.config import stage_jobs

    path = tmp_path / "p.yaml"
    path.write_text(JOB + "objective: {name: staged_training, k: 4, mean_teacher: {beta_max: 0.5}}\nstages:\n"
                    "  - name: a\n  - name: b\n    overrides: {objective: {name: coteaching, forget_rate: 0.1}}\n")
    (_, first), (_, second) = stage_jobs(load_job(path))
    assert first.objective.k == 4
    assert second.objective.forget_rate == 0.1 and second.objective.mean_teacher.beta_max == 0.5


def test_augment_settings_are_validated(job_file):
    job = load_job(job_file, ["augment.enabled=true", "augment.probability=0.3", "augment.params={pitch_p: 0.7}"])
    spec = job.augment.spec()
    assert spec.enabled and spec.gain_p == 0.3 and spec.pitch_p == 0.7
    with pytest.raises(ConfigError, match="augment.*pitch_q"):
        load_job(job_file, ["augment.params={pitch_q: 0.7}"])


def test_repeat_makes_rounds_each_taught_by_the_previous(tmp_path):
    from raytag.config import stage_jobs

    path = tmp_path / "p.yaml"
    path.write_text(JOB + """
stages:
  - name: teacher
  - name: student
    teacher: teacher
    repeat: 3
    overrides: {semi: {enabled: true}}
""")
    stages = stage_jobs(load_job(path))
    assert [s.name for s, _ in stages] == ["teacher", "student", "student-r2", "student-r3"]
    assert [s.teacher for s, _ in stages] == [None, "teacher", "student", "student-r2"]
    assert Path(stages[3][1].semi.teacher).parent.name == "unit-student-r2"


def test_init_from_starts_a_stage_from_an_earlier_stage_and_teachers_fill_every_key(tmp_path):
    from raytag.config import stage_jobs

    path = tmp_path / "staged.yaml"
    path.write_text(
        "name: he\ndata: {manifest: m.csv}\nmodel: {name: mtt-tiny, head: sigmoid_sparsemax}\nstages:\n"
        "  - name: verified\n    overrides: {data: {train_subset: verified}}\n"
        "  - name: all\n    init_from: verified\n    overrides: {objective: {name: staged_training}}\n"
        "  - name: finetune\n    init_from: all\n    overrides: {data: {train_subset: verified}}\n"
    )
    stages = [job for _, job in stage_jobs(load_job(path))]
    assert stages[0].model.init is None and stages[0].data.train_subset == "verified"
    assert stages[1].model.init.endswith("/he-verified/best_model") and stages[1].objective.name == "staged_training"
    assert stages[2].model.init.endswith("/he-all/best_model") and stages[2].data.train_subset == "verified"
    path.write_text(path.read_text().replace("init_from: all", "init_from: later"))
    with pytest.raises(ConfigError, match="init_from 'later' is not an earlier stage"):
        load_job(path)
