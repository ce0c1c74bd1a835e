"""Which tracks a person verifies: the audit's suspects first, then a sample stratified per tag.

**The rule.** Every tag j of the vocabulary has two strata among the candidate tracks: its
labelled positives and its labelled negatives (2·K strata for K tags; a track is in exactly one
stratum of every tag). After the suspects, the next track always goes to the stratum that has
the fewest tracks in the pick so far, counting every stratum a picked track belongs to (ties:
the tag with fewer labelled positives first, then vocabulary order, then a tag's positives
before its negatives), and within that stratum it is the track with the lowest *draw*, a seeded
hash of the track's path that skips tracks already picked. So every tag gets its share of
positives and of negatives, as far as a split holds them: with N tracks and K tags each stratum
ends with about N / (2·K) tracks or all it has. Rare tags are not crowded out by common ones,
which is what Lu et al. 2022 do by hand (100 labelled positives and 100 labelled negatives per
tag re-annotated).

**Reproducible, and batch after batch.** The draw depends on the seed and the path only, not on
which other tracks are candidates: a second batch from a manifest in which the first batch's
tracks are now verified (so no longer candidates) continues the same order instead of
reshuffling. The order is complete: :func:`pick_order` yields every candidate once, so a caller
that cannot use a track (unreadable audio) takes the next one.

Core module: numpy only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Pick:
    """One picked track.

    Attributes:
        index: the track's row in the candidates given to :func:`pick_order`.
        tag: the tag whose stratum took it (None for an audit suspect).
        positive: whether it came from the tag's labelled positives (False: negatives).
        suspect: whether it was picked as an audit suspect.
    """

    index: int
    tag: str | None
    positive: bool
    suspect: bool

    @property
    def reason(self) -> str:
        """Why the track is in the batch, in words (``labelled piano``, ``labelled without
        piano``, ``audit suspect``)."""
        if self.suspect:
            return "audit suspect"
        return f"labelled {self.tag}" if self.positive else f"labelled without {self.tag}"


def draw_keys(paths: Sequence[str], seed: int) -> np.ndarray:
    """(N,) uint64: each path's draw, a hash of ``seed`` and the path (independent of the
    other paths, so a track keeps its place in the order whatever the candidates)."""
    keys = np.empty(len(paths), dtype=np.uint64)
    for i, path in enumerate(paths):
        digest = hashlib.blake2b(f"{seed}\0{path}".encode(), digest_size=8).digest()
        keys[i] = int.from_bytes(digest, "little")
    return keys


def pick_order(
    labels: np.ndarray,
    vocabulary: Sequence[str],
    *,
    paths: Sequence[str],
    seed: int,
    suspects: Sequence[int] = (),
) -> Iterator[Pick]:
    """Every candidate track once, in the order a batch takes them (see the module docstring).

    Args:
        labels: (N, K) 0/1 labels of the N candidate tracks over the K tags of ``vocabulary``.
        vocabulary: the K tag names, in column order.
        paths: the N tracks' paths (what the seeded draw hashes).
        seed: the draw's seed.
        suspects: candidate rows to take first, in this order (the audit's ranking, each row
            once); they count towards their strata like any pick.

    Yields:
        :class:`Pick` records, suspects first; stop taking whenever the batch is full.

    Raises:
        ValueError: shapes that do not match, or a suspect row out of range or repeated.
    """
    labels = np.asarray(labels) > 0.5
    count, width = labels.shape if labels.ndim == 2 else (-1, -1)
    if width != len(vocabulary) or count != len(paths):
        raise ValueError(f"labels {np.shape(labels)} do not match {len(paths)} paths and {len(vocabulary)} tags")
    if len(set(suspects)) != len(suspects) or any(not 0 <= i < count for i in suspects):
        raise ValueError("suspect rows must be distinct rows of the candidates")
    picked = np.zeros(count, dtype=bool)
    members = np.zeros(2 * width, dtype=np.int64)  # picked tracks per stratum: 2j positives, 2j+1 negatives

    def take(index: int) -> None:
        picked[index] = True
        members[0::2] += labels[index]
        members[1::2] += ~labels[index]

    for index in suspects:
        take(int(index))
        yield Pick(int(index), None, False, True)

    by_draw = np.argsort(draw_keys(paths, seed), kind="stable")
    strata = [by_draw[labels[by_draw, j] == positive] for j in range(width) for positive in (True, False)]
    positives = labels.sum(axis=0)
    # Tie-break between strata with equally many picks: rarer tag, vocabulary order, positives first.
    priority = np.empty(2 * width, dtype=np.int64)
    priority[np.lexsort((np.arange(2 * width) % 2, np.repeat(np.arange(width), 2), np.repeat(positives, 2)))] = (
        np.arange(2 * width)
    )
    cursor = np.zeros(2 * width, dtype=np.int64)
    open_strata = np.array([len(s) > 0 for s in strata])
    while open_strata.any():
        key = np.where(open_strata, members * (2 * width) + priority, np.iinfo(np.int64).max)
        stratum = int(np.argmin(key))
        order = strata[stratum]
        while cursor[stratum] < len(order) and picked[order[cursor[stratum]]]:
            cursor[stratum] += 1
        if cursor[stratum] == len(order):
            open_strata[stratum] = False
            continue
        index = int(order[cursor[stratum]])
        take(index)
        yield Pick(index, vocabulary[stratum // 2], stratum % 2 == 0, False)


def stratum_counts(labels: np.ndarray, picks: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(positives, negatives)``, each (K,): how many labelled positives and negatives of every
    tag the picked rows hold."""
    chosen = np.asarray(labels)[np.asarray(picks, dtype=np.int64)] > 0.5
    return chosen.sum(axis=0), (~chosen).sum(axis=0)
