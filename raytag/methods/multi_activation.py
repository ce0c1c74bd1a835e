"""He et al. 2020 §3.2: the sigmoid-sparsemax multi-activation head, for any method.

With ``model.head: sigmoid_sparsemax`` the network returns both heads' outputs in training
(:class:`raytag.models.heads.MultiActivationOutput`). This wrapper gives the wrapped method the
sigmoid head's logits, as from any model, and adds the sparsemax head's loss (eq. 9, against the
label set as a uniform distribution) over the clips that decoded. A method that scores clips with
both heads itself (staged training's per-clip loss) says so with ``handles_multi_activation`` and
is left as it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raytag.methods.base import Batch, Method, Wrapper, kept_rows

if TYPE_CHECKING:
    import torch


class MultiActivation(Wrapper):
    name = "multi_activation"
    summary = ("He et al. §3.2: with model.head sigmoid_sparsemax, the sparsemax head's loss (eq. 9) is added "
               "to the method's loss on the sigmoid head")
    switch = "model.head: sigmoid_sparsemax"
    order = 1
    accepts = frozenset()  # neither the mean teacher nor a noisy student

    @classmethod
    def enabled(cls, job: Any) -> bool:
        return job.model.head != "sigmoid"

    @classmethod
    def wrap(cls, base: Method, job: Any) -> Method:
        return base if getattr(base, "handles_multi_activation", False) else cls(base)

    def loss(self, output, batch: Batch) -> dict[str, torch.Tensor]:
        from raytag.objectives.multi_activation import multi_activation_losses

        parts = self.base.loss(output.sigmoid_logits, batch)
        sparse = multi_activation_losses(output, batch["labels"], weights=kept_rows(batch)).sparsemax
        parts.update({"loss": parts["loss"] + sparse, "sparsemax_loss": sparse.detach()})
        return parts
