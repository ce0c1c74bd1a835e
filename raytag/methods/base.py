"""What a training method is: its loss logic, and what it needs from the cluster layer.

The engine runs every method the same way, per epoch and step::

    method.start_epoch(Epoch(index, generator, model, steps))   # this rank's draws and steps
    output = model(method.inputs(batch))        # one (DDP) forward per step
    parts = method.loss(output, batch)          # {"loss": ..., other named parts to log}
    parts["loss"].backward(); optimizer.step()
    method.after_step(model)

The method sees the model's output directly: a wrapper method (mean teacher, noisy student)
passes the same output, or its slice, to the method it wraps. A method declares what it needs
(:class:`Needs`): the driver and the worker loop serve those needs without naming methods. A
method whose needs include teacher scores turns them into per-track columns on the driver
(:meth:`Method.track_columns`); those columns then ride along with every row of the training
data, and the loss reads them from the batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from raytag.methods.settings import MethodSettings, NoSettings

if TYPE_CHECKING:  # a method module imports torch and numpy where it runs, not when it is registered
    import numpy as np
    import torch
    from torch import nn

Batch = dict[str, "torch.Tensor"]


@dataclass(frozen=True)
class Epoch:
    """What a method learns at the start of an epoch on one rank.

    Attributes:
        index: the epoch's 0-based index: epochs trained before it (records number this epoch
            ``index + 1``, see :mod:`raytag.engine.state`); schedules count from it (a
            ``warmup_epochs: 40`` teacher joins at index 40, epoch 41).
        generator: this rank's source of draws for this epoch (seeded by seed, index, rank).
        model: the (possibly DDP-wrapped) model being trained.
        steps: optimizer steps this rank takes in this epoch.
    """

    index: int
    generator: torch.Generator
    model: nn.Module | None
    steps: int


@dataclass(frozen=True)
class TeacherNeed:
    """An exported teacher a method needs: the config key that names it, and the folder."""

    key: str
    folder: str


@dataclass(frozen=True)
class Needs:
    """What a method asks of the cluster layer.

    Attributes:
        scores_teacher: a frozen teacher whose track-level scores over the training set the
            driver computes (Ray Data inference, cached under storage) and hands to
            :meth:`Method.track_columns`.
        unlabeled_teacher: a frozen teacher that labels an unlabeled stream (Ray Data actor
            pool on clean crops); batches then carry ``u_audio``, ``u_soft``, ``u_decoded``.
        columns: per-track columns the loss reads from a batch besides ``audio``, ``labels``,
            ``decoded`` (e.g. ``keep``, ``verified``); made by :meth:`Method.track_columns`.
    """

    scores_teacher: TeacherNeed | None = None
    unlabeled_teacher: TeacherNeed | None = None
    columns: tuple[str, ...] = ()


@dataclass
class TrackColumns:
    """Per-track columns for the training rows, and what to log about how they were made."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (N, ...) float32
    metrics: dict[str, float] = field(default_factory=dict)
    tables: dict[str, list[dict]] = field(default_factory=dict)  # artifact file -> rows
    message: str = ""


class Method(ABC):
    """A training method on one network; subclasses define :meth:`loss` and override what else
    they need. ``from_job`` builds a method
    from a validated job config (duck-typed: methods never import the config module).

    A class that sets ``name`` in its own body is registered (:mod:`raytag.methods` finds it in
    its module); what it declares besides its loss:

    * ``summary``: one line for ``raytag methods`` and the README's table.
    * ``Settings``: its keys in the job's ``objective`` section (a :class:`MethodSettings`);
      ``job.objective`` is then an instance of it, plus ``name`` and the wrappers' sections.
    * ``accepts``: the wrappers it can be combined with (None: every one).
    * ``teacher_key``: the job key naming the exported teacher it needs, which a pipeline
      stage's ``teacher`` fills (None: it needs none).
    * ``renamed``: old ``objective`` keys of its settings and where they live now, for the
      error an old job file gets.

    Registering reads these without importing torch: a method module imports torch and numpy
    inside the functions that run on tensors (``raytag/methods/base.py`` shows how).
    """

    name: ClassVar[str] = "method"
    summary: ClassVar[str] = ""
    Settings: ClassVar[type[MethodSettings]] = NoSettings
    accepts: ClassVar[frozenset[str] | None] = None
    teacher_key: ClassVar[str | None] = None
    renamed: ClassVar[dict[str, str]] = {}
    reduction: ClassVar[str] = "entry"
    """How the loss averages per-entry terms (``raytag.objectives.bce`` reductions): ``"entry"``
    (mean over (track, tag) entries) or ``"clip"`` (summed over tags, mean over clips). A term
    a wrapper adds uses the same one, so its weight means the same next to any method."""

    @classmethod
    def from_job(cls, job: Any, *, tags: list[str]) -> Method:
        """The method as a job configures it."""
        return cls()

    @property
    def needs(self) -> Needs:
        return Needs()

    def track_columns(
        self, *, labels: np.ndarray, verified: np.ndarray, scores: np.ndarray | None, clean: np.ndarray | None
    ) -> TrackColumns:
        """Driver side: per-track columns from the training labels (N, K), the manifest's
        ``verified`` flags (N,), the teacher's scores if the method needs them (N, K; NaN =
        unscored) and the clean labels when the job has them (N, K; for diagnostics only)."""
        return TrackColumns()

    def build_network(self, make: Callable[[], nn.Module]) -> nn.Module:
        """The trainable module, from a factory of freshly initialised networks."""
        return make()

    def evaluated(self, model: nn.Module) -> nn.Module:
        """The network that is validated and exported (``model`` may be DDP-wrapped)."""
        from raytag.engine.checkpoint import unwrap

        return unwrap(model)

    def start_epoch(self, epoch: Epoch) -> None:
        """Called before each epoch (see :class:`Epoch`)."""
        self.epoch = epoch.index
        self.generator = epoch.generator

    def inputs(self, batch: Batch) -> torch.Tensor:
        """What goes through the model in one forward pass."""
        return batch["audio"]

    @abstractmethod
    def loss(self, output: Any, batch: Batch) -> dict[str, torch.Tensor]:
        """Named loss parts; ``loss`` is what is minimised."""

    def after_step(self, model: nn.Module) -> None:
        """Called after every optimizer step."""

    def epoch_metrics(self) -> dict[str, float]:
        """Scalars accumulated over the epoch on this rank."""
        return {}

    def state_dict(self) -> dict:
        """What must survive a checkpoint (tensors and plain containers only)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restores what :meth:`state_dict` returned."""


class Wrapper(Method):
    """A method that adds to another (mean teacher, noisy student): delegates by default.

    Besides a method's declarations (``accepts`` then names the other wrappers it can be
    combined with), a wrapper declares ``switch``, the job key that turns it on, ``enabled``,
    which reads it, and ``order``: enabled wrappers wrap the base method in ascending order. A
    wrapper whose settings are a section of ``objective`` names it in ``section``; its
    ``Settings`` then validate that section for every method.
    """

    switch: ClassVar[str] = ""
    order: ClassVar[int] = 0
    section: ClassVar[str | None] = None

    @classmethod
    @abstractmethod
    def enabled(cls, job: Any) -> bool:
        """Whether the validated job turns this wrapper on."""

    @classmethod
    def wrap(cls, base: Method, job: Any) -> Method:
        """The wrapper around ``base`` as the job configures it."""
        return cls(base)

    def __init__(self, base: Method):
        self.base = base
        self.reduction = base.reduction

    @property
    def needs(self) -> Needs:
        return self.base.needs

    def track_columns(self, **kwargs) -> TrackColumns:
        return self.base.track_columns(**kwargs)

    def build_network(self, make: Callable[[], nn.Module]) -> nn.Module:
        return self.base.build_network(make)

    def evaluated(self, model: nn.Module) -> nn.Module:
        return self.base.evaluated(model)

    def start_epoch(self, epoch: Epoch) -> None:
        super().start_epoch(epoch)
        self.base.start_epoch(epoch)

    def inputs(self, batch: Batch) -> torch.Tensor:
        return self.base.inputs(batch)

    def loss(self, output: Any, batch: Batch) -> dict[str, torch.Tensor]:
        return self.base.loss(output, batch)

    def after_step(self, model: nn.Module) -> None:
        self.base.after_step(model)

    def epoch_metrics(self) -> dict[str, float]:
        return self.base.epoch_metrics()

    def state_dict(self) -> dict:
        return {"base": self.base.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.base.load_state_dict(state.get("base", {}))


def kept_rows(batch: Batch) -> torch.Tensor:
    """(B,) bool: rows whose audio decoded."""
    return batch["decoded"].bool()
