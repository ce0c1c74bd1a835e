"""What a test needs from the machine (real audio files, root for mount namespaces, a CUDA
device), in one place.

``needs(ok, reason)`` marks a test: without what it needs it is skipped on a laptop, but under
``CI=true`` it FAILS (see ``pytest_runtest_setup`` in conftest.py), so CI never passes by
silently skipping the real-audio or multi-node tests.

CI has no GPU, so the tests that need one are also marked ``gpu`` (:func:`needs_cuda_device`):
``make test`` leaves them out (``-m "not gpu"``) and ``make test-gpu`` runs only them, with
``CI=true``, so that on a machine without a CUDA device it fails instead of skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

REAL_AUDIO = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-audio"


def in_ci() -> bool:
    """Whether the ``CI`` environment variable is set to a true value (``true``, ``1``, ``yes``)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def needs(ok: bool, reason: str) -> pytest.MarkDecorator:
    """A mark for a test that needs ``ok``: skipped when it is false, failed under ``CI=true``."""
    return pytest.mark.raytag_needs(ok=bool(ok), reason=reason)


def needs_cuda_device(test: Callable) -> Callable:
    """Marks ``test`` as one of the GPU lane's (marker ``gpu``) that needs a CUDA device: run by
    ``make test-gpu``, left out of ``make test``; skipped without a device, failed under ``CI=true``."""
    import torch

    available = torch.cuda.is_available()
    return needs(available, "a CUDA device (torch.cuda.is_available() is False)")(pytest.mark.gpu(test))


needs_real_audio = needs(REAL_AUDIO.is_dir(), f"{REAL_AUDIO} (shared/data/real-audio) not present")
needs_root_unshare = needs(
    os.geteuid() == 0 and shutil.which("unshare") is not None, "unshare --mount needs root and util-linux's unshare"
)
