"""The per-chunk step: decoded chunks → the model → sigmoid probabilities (and each chunk's peak).

Every scorer calls it: the in-process loop (:mod:`raytag.scoring.scorer`), the Ray Data actors
of evaluation, predict and teacher scoring (:mod:`raytag.cluster.inference.actor_pool`), the
segment scorer (with embeddings) and training's validation (:mod:`raytag.engine.loop`). Models
return logits; the sigmoid is taken here, in float32, whatever the autocast precision.

Core module: no Ray, no MLflow.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raytag.engine.precision import autocast


@torch.no_grad()
def chunk_outputs(
    model: nn.Module, audio, *, device: torch.device, amp: str = "auto", embeddings: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Tag probabilities of a batch of chunks, and their embeddings when asked for.

    Args:
        model: a tagger in eval mode on ``device``: (B, T) waveforms → (B, K) logits; with
            ``embeddings``, also ``embed`` (B, T) → (B, D) and ``classifier`` (B, D) → logits
            (``classifier(embed(x))`` is its forward pass).
        audio: (B, T) float32 chunks at the model's rate (a numpy array or a tensor).
        device: where the model is.
        amp: autocast setting (:func:`raytag.engine.precision.autocast`). Default ``"auto"``.
        embeddings: also return the embeddings, from the same forward pass.

    Returns:
        ``(probabilities (B, K) float32, embeddings (B, D) float32 or None)``.
    """
    inputs = torch.as_tensor(audio).to(device)
    with autocast(device, amp):
        if embeddings:
            features = model.embed(inputs)
            logits = model.classifier(features)
        else:
            features, logits = None, model(inputs)
    probabilities = torch.sigmoid(logits.float()).cpu().numpy()
    return probabilities, None if features is None else features.float().cpu().numpy()


def chunk_probabilities(model: nn.Module, audio, *, device: torch.device, amp: str = "auto") -> np.ndarray:
    """(B, K) float32 tag probabilities of (B, T) chunks (see :func:`chunk_outputs`)."""
    return chunk_outputs(model, audio, device=device, amp=amp)[0]


def score_decoded(model: nn.Module, batch: dict[str, np.ndarray], *, device: torch.device,
                  amp: str = "auto") -> dict[str, np.ndarray]:
    """One decoded batch (:func:`raytag.data.batches.decode_batch`) scored: ``track`` (B,),
    ``probs`` (B, K) float32, ``decoded`` (B,) bool and ``peak`` (B,) float32, each chunk's
    largest absolute sample. Undecoded chunks (zeros) are scored too, so the arrays keep the
    batch's rows; :class:`raytag.scoring.tracks.TrackTally` leaves them out."""
    audio = np.asarray(batch["audio"], dtype=np.float32)
    return {
        "track": np.asarray(batch["track"], dtype=np.int64),
        "probs": chunk_probabilities(model, audio, device=device, amp=amp),
        "decoded": np.asarray(batch["decoded"], dtype=bool),
        "peak": np.abs(audio).max(axis=1, initial=0.0).astype(np.float32),
    }
