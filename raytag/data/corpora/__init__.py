"""Corpus adapters: a public corpus's own files in, a raytag manifest out.

One module per corpus, each exposing an ``ADAPTER``; :func:`get_corpus` finds one by name and
:func:`make_manifest` runs it (``raytag corpus NAME --from DIR -o manifest.csv``).
"""

from __future__ import annotations

from raytag.data.corpora import fsd_kaggle2019, magnatagatune, msd, mtg_jamendo
from raytag.data.corpora.base import (
    CorpusAdapter,
    CorpusError,
    CorpusOption,
    CorpusReport,
    CorpusRow,
    CorpusRows,
    check_tag,
    make_manifest,
)

_REGISTRY: dict[str, CorpusAdapter] = {
    module.ADAPTER.name: module.ADAPTER for module in (mtg_jamendo, magnatagatune, msd, fsd_kaggle2019)
}

__all__ = [
    "CorpusAdapter",
    "CorpusError",
    "CorpusOption",
    "CorpusReport",
    "CorpusRow",
    "CorpusRows",
    "check_tag",
    "get_corpus",
    "list_corpora",
    "make_manifest",
]


def list_corpora() -> list[CorpusAdapter]:
    """Every registered corpus, by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]


def get_corpus(name: str) -> CorpusAdapter:
    """The adapter registered as ``name``.

    Raises:
        CorpusError: no corpus has that name; the message lists those that do.
    """
    if name not in _REGISTRY:
        raise CorpusError(f"unknown corpus {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
