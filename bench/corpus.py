"""Shared set-up of the training benchmarks: a working folder with a synthetic corpus in it."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from raytag.data.synth import SynthSpec, write_corpus


def prepare(out: Path | None, prefix: str, spec: SynthSpec) -> tuple[Path, Path]:
    """``(working folder, corpus folder)``; the corpus is generated unless already there."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    out = (out or Path(tempfile.mkdtemp(prefix=prefix))).resolve()
    corpus = out / "corpus"
    if not (corpus / "manifest.csv").is_file():
        write_corpus(corpus, spec, overwrite=True)
    return out, corpus
