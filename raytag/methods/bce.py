"""Plain binary cross-entropy on the (noisy) labels: the baseline every method is compared to."""

from __future__ import annotations

import torch

from raytag.methods.base import Batch, Method, kept_rows
from raytag.objectives import bce


class PlainBCE(Method):
    """Mean BCE over the (track, tag) entries of the rows that decoded."""

    name = "bce"

    def loss(self, output: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        return {"loss": bce(output, batch["labels"], kept_rows(batch))}
