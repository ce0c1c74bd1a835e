"""The prepared-audio cache under ``storage``: which tracks it holds at a rate, and tables that
decode from it.

``raytag prepare`` (:mod:`raytag.cluster.data.prepare`) writes one cache file per track and rate
(the format: :mod:`raytag.audio.pcm_cache`). A job reads a track from its cache file when one
exists, complete, for the audio file as it is now (same path, size and modification time) at
the rate the audio is decoded at; every other track is decoded from its audio file as before.
Nothing else changes: a cached track's row names its cache file, with the cache's frames and
rate, and the decoders read a crop of it like a crop of any audio file. Tables keep their
order, labels and columns, so everything a person reads (skipped files, unscored tracks,
teacher scores) still names the manifest's paths.

The identities of the audio files are read on the driver in one call per file system
(:func:`raytag.storage.file_stats`), and the cache folder is listed once per rate, so looking up a corpus costs one ``stat`` per file and
one listing, and nothing at all when the folder does not exist.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from raytag.audio import pcm_cache
from raytag.audio.pcm_cache import FileIdentity
from raytag import storage
from raytag.data.rows import TrackTable

log = logging.getLogger("raytag")


def file_identities(locations: Sequence[str]) -> dict[str, FileIdentity]:
    """The identity (size, modification time) of each existing file among ``locations``, read
    in one call per file system (:func:`raytag.storage.file_stats`); missing files are left out."""
    return storage.file_stats(locations)


def cache_listing(storage_root: str, sample_rate: int) -> dict[str, storage.FileStat]:
    """Every file under the cache folder of ``sample_rate``, by name (cache files and the
    ``.partial`` files of interrupted writes); empty when the folder does not exist."""
    return {stat.location.rsplit("/", 1)[1]: stat
            for stat in storage.list_files(pcm_cache.rate_folder(storage_root, sample_rate))}


@dataclass(frozen=True)
class CacheLookup:
    """Where each track would be cached at one rate, and which of them are.

    Attributes:
        sample_rate: the cache's rate (Hz).
        files: audio location -> its cache file's location (tracks whose identity was read).
        samples: audio location -> samples its cache file holds (from the header scan).
        cached: audio locations whose cache file exists and is complete.
        stale: audio locations whose cache file exists with the wrong size (a partly copied
            cache, or the audio's length changed); they are decoded from the audio file.
    """

    sample_rate: int
    files: Mapping[str, str]
    samples: Mapping[str, int]
    cached: frozenset[str]
    stale: frozenset[str]


def lookup(
    paths: Sequence[str], frames: Sequence[int], rates: Sequence[int], *, storage_root: str, sample_rate: int
) -> CacheLookup:
    """Which of the tracks (audio locations with their header frames and rates) have a complete
    cache file at ``sample_rate`` under ``storage_root``."""
    listing = cache_listing(storage_root, sample_rate)
    identities = file_identities(list(paths))
    files, samples, cached, stale = {}, {}, set(), set()
    for path, count, rate in zip(paths, frames, rates):
        identity = identities.get(path)
        if identity is None:
            continue
        key = pcm_cache.cache_key(identity, sample_rate=sample_rate)
        files[path] = pcm_cache.cache_file(storage_root, key, sample_rate)
        samples[path] = pcm_cache.cached_samples(int(count), int(rate), sample_rate)
        info = listing.get(files[path].rsplit("/", 1)[1])
        if info is None:
            continue
        if info.size == pcm_cache.file_bytes(samples[path]):
            cached.add(path)
        else:
            stale.add(path)
    return CacheLookup(sample_rate, files, samples, frozenset(cached), frozenset(stale))


def from_cache(table: TrackTable, found: CacheLookup) -> TrackTable:
    """``table`` with every track ``found`` cached decoding from its cache file (its path, the
    cache's samples as frames and the cache's rate); order, labels and columns unchanged."""
    paths, frames, rates = list(table.paths), table.frames.copy(), table.rates.copy()
    for i, path in enumerate(table.paths):
        if path in found.cached:
            paths[i], frames[i], rates[i] = found.files[path], found.samples[path], found.sample_rate
    return replace(table, paths=tuple(paths), frames=frames, rates=rates)


@dataclass(frozen=True)
class CacheUse:
    """How many tracks of some tables a job reads from the cache, and how many it decodes."""

    sample_rate: int
    cached: int
    decoded: int

    def metrics(self, prefix: str = "data/") -> dict[str, float]:
        return {f"{prefix}prepared_audio_tracks": self.cached, f"{prefix}decoded_audio_tracks": self.decoded}


def cached_tables(
    tables: Mapping[str, TrackTable | None], *, storage_root: str, sample_rate: int
) -> tuple[dict[str, TrackTable | None], CacheUse]:
    """The tables (by a name used in the log line) reading every track the cache holds at
    ``sample_rate`` from it; one lookup for all of them, one log line with the counts."""
    present = {name: table for name, table in tables.items() if table is not None}
    paths = sorted({p for table in present.values() for p in table.paths})
    frames = dict(p for table in present.values() for p in zip(table.paths, table.frames.tolist()))
    rates = dict(p for table in present.values() for p in zip(table.paths, table.rates.tolist()))
    found = lookup(paths, [frames[p] for p in paths], [rates[p] for p in paths],
                   storage_root=storage_root, sample_rate=sample_rate)
    out = {name: (from_cache(table, found) if table is not None else None) for name, table in tables.items()}
    counts = ", ".join(f"{name} {sum(p in found.cached for p in t.paths)}/{len(t)}" for name, t in present.items())
    use = CacheUse(sample_rate, len(found.cached), len(paths) - len(found.cached))
    if found.cached:
        log.info("prepared audio at %d Hz: %s tracks read from the cache; %d decoded from their audio files",
                 sample_rate, counts, use.decoded)
    else:
        log.info("no prepared audio at %d Hz for these tracks (%s); decoding from the audio files "
                 "(`raytag prepare` makes the cache)", sample_rate, counts)
    if found.stale:
        log.warning("%d cache files at %d Hz have the wrong size and are not used (e.g. %s); "
                    "`raytag prepare` rewrites them", len(found.stale), sample_rate, found.files[min(found.stale)])
    return out, use


def folder_size(storage_root: str, sample_rate: int) -> tuple[int, int]:
    """``(cache files, bytes)`` of the whole cache folder of ``sample_rate``."""
    files = [info for info in cache_listing(storage_root, sample_rate).values()
             if pcm_cache.is_cache_file(info.location)]
    return len(files), int(np.sum([info.size for info in files], dtype=np.int64)) if files else 0
