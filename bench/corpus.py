"""The synthetic corpora of the training benchmarks, and where they are written.

All are ``raytag.data.synth.corpus`` corpora with the audio-dependent label noise (the default), short
clips (1.5 s at 16 kHz, so a 1.5 s training crop is the whole clip and evaluation is one chunk
per clip) and 1,300 labelled clips: 598 train, 156 valid and 546 test clips (the test split is
scored against the clean labels; 546 clips give a macro ROC-AUC standard error near 0.01). The
sizes are what a 2-core machine shared with other work can train ≥ 3 seeds of ~20
configurations on in a few hours.

- ``noisy``: no verified rows, and an unlabeled pool of 2,000 clips (3.3 times the labelled
  training set; Won et al. had 516k unlabeled next to 233k labelled tracks and suspect that more
  unlabeled audio would help). Lu et al.'s table and the noisy-student table.
- ``verified``: the same parameters with 30 % of the training clips verified (their manifest
  labels are the clean ones) and no unlabeled pool. He et al.'s staged-training table.
- ``selection``: 1,500 clips with a validation split large enough to verify 400 of its rows
  (600 train / 450 valid / 450 test), no unlabeled pool. ``bench_selection.py``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from raytag.data.synth.corpus import SynthSpec, write_corpus

_COMMON = dict(clips=1300, seconds=1.5, sample_rate=16000, seed=2026, valid_fraction=0.12, test_fraction=0.42)
CORPORA = {
    "noisy": SynthSpec(**_COMMON, unlabeled=2000, verified_fraction=0.0),
    "verified": SynthSpec(**_COMMON, unlabeled=0, verified_fraction=0.3),
    "selection": SynthSpec(**{**_COMMON, "clips": 1500, "valid_fraction": 0.3, "test_fraction": 0.3}, unlabeled=0,
                           verified_fraction=0.0),
}


def prepare(out: Path, name: str) -> Path:
    """The folder of corpus ``name`` under ``out``, written unless it is already complete."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    corpus = Path(out).resolve() / f"corpus-{name}"
    if not (corpus / "manifest.csv").is_file():
        write_corpus(corpus, CORPORA[name], overwrite=True)
    return corpus
