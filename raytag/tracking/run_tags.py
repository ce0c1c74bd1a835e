"""Every MLflow tag raytag writes, defined once. Reviewers and tests read runs by these names."""

PARENT_RUN = "mlflow.parentRunId"  # MLflow's own nesting tag

KIND = "raytag.kind"  # "pipeline" or "sweep" on parent runs, "audit" on a label-noise audit run
KIND_AUDIT = "audit"
AUDIT_SPLIT_PARAM = "split"  # an audit run's param: the split it audited
MODEL = "raytag.model"  # the model preset
METHOD = "raytag.objective"  # the training method (objective.name)
STAGE = "raytag.stage"  # a pipeline stage's name
PIPELINE = "raytag.pipeline"  # the pipeline job a stage belongs to
TEACHER_STAGE = "raytag.teacher_stage"
TEACHER_RUN_ID = "raytag.teacher_run_id"  # lineage: the run that trained this run's teacher
TEACHER_MODEL = "raytag.teacher_model"  # lineage: the exported teacher folder
TEACHER_SCORES = "raytag.teacher_scores"  # the cached score file Balanced-Masking used
TEACHER_SCORES_REUSED = "raytag.teacher_scores_reused"
THRESHOLD_LABELS = "raytag.threshold_labels"  # what the decision thresholds were chosen on
FOLDS = "raytag.folds"  # on an out-of-fold stage's run: K, its number of fold teachers
FOLD = "raytag.fold"  # on a fold teacher's run: the fold it left out (and scores)
SELECT_LABELS = "raytag.select_labels"  # the validation labels that chose the best epoch: noisy or verified
TRAINED_BY_RUN = "raytag.trained_by_run"  # on a run that only evaluated a model trained earlier: the run that trained it
TRAIN_NODES = "raytag.train_nodes"  # the Ray nodes the Train workers ran on
EPOCHS_FROM = "raytag.epochs_from"  # on a training run: the number of its first epoch (steps, epoch metrics)
EPOCHS_FROM_1 = "1"  # every run raytag starts now; a run without the tag numbered its epochs from 0
SWEEP = "raytag.sweep"
SWEEP_TARGET = "raytag.target"
TRIAL_ID = "raytag.trial_id"
BEST_PREFIX = "raytag.best."  # + a swept config path, on a sweep's parent run
FINAL_MODEL = "raytag.final_model"
FINAL_RUN_ID = "raytag.final_run_id"
LINEAGE = (STAGE, PIPELINE, TEACHER_STAGE, TEACHER_RUN_ID, TEACHER_MODEL)
"""The tags that say where a model came from (also the version tags of a registered model)."""


def first_epoch(tags: dict[str, str]) -> int:
    """The number a run's records give its first epoch: 1, or 0 for a run started before
    :data:`EPOCHS_FROM` existed (see :mod:`raytag.engine.state`)."""
    return 1 if tags.get(EPOCHS_FROM) == EPOCHS_FROM_1 else 0


def labels_source(split: str) -> str:
    """Which labels a split was evaluated against ("clean" or "manifest")."""
    return f"raytag.{split}_labels"
LOGGED_MODEL_ID = "raytag.logged_model_id"  # on a run and its registered version: the MLflow logged model of its best epoch
SOURCE_RUN_ID = "raytag.source_run_id"  # on a registered model version: the run that trained it
REVIEW_REPORT = "raytag.review_report"  # on a parent run: artifact path of its review report
