"""raytag: music taggers that stay accurate on noisy labels, trained at cluster scale on Ray."""

from __future__ import annotations

import importlib.metadata


def package_version(package: str = "raytag") -> str:
    """An installed distribution's version, or ``"unknown"``."""
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
