"""Plain binary cross-entropy on the (noisy) labels: the baseline every method is compared to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from raytag.methods.base import Batch, Method, kept_rows

if TYPE_CHECKING:
    import torch


class PlainBCE(Method):
    """Mean BCE over the (track, tag) entries of the rows that decoded."""

    name = "bce"
    summary = "plain BCE on the noisy labels (the baseline)"

    def loss(self, output: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        from raytag.objectives import bce

        return {"loss": bce(output, batch["labels"], kept_rows(batch))}
