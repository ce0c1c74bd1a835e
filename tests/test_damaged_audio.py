"""Truncated and damaged files never train as silence or shifted audio.

Each file is made from a real recording (20 s of a jazz track, re-encoded as MP3, FLAC, Ogg
Vorbis, AAC in MP4 and as a raw ADTS stream, and Ogg Opus at 48 kHz) by cutting its bytes (60 % kept: the header still promises every frame)
or by overwriting 4000 bytes with noise at 30 % or 50 % of the file. Then, as training does,
the header scan (:func:`raytag.data.batches.scan_batch`) reads it and
:func:`raytag.data.batches.decode_batch` decodes crops covering the whole track. Every file must
be caught: refused by the scan, or with its damaged crops ``valid = False`` (what the training
loop counts per epoch as ``train/decode_failures``); and every crop that is ``valid`` must be the
undamaged file's audio (never zeros, never shifted).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_files import cut, overwrite, write
from requirements import REAL_AUDIO, needs_real_audio
from raytag.audio.io import AudioError, probe, read_frames, resample
from raytag.data.batches import decode_batch, scan_batch

RATE = 22050
CROP = RATE  # 1 s crops at the file's own rate (no resampling)
CODECS = ["mp3", "flac", "vorbis", "aac-m4a", "aac-adts", "opus"]
OPUS_RATE = 48000  # libopus encodes at 8-48 kHz, not 22.05
DAMAGE = {"cut-60": lambda src, dst: cut(src, dst, 0.6),
          "block-30": lambda src, dst: overwrite(src, dst, 0.3),
          "block-50": lambda src, dst: overwrite(src, dst, 0.5)}

pytestmark = needs_real_audio


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    folder = tmp_path_factory.mktemp("damaged")
    music, rate = sf.read(REAL_AUDIO / "kevin-macleod-vibe-ace.ogg", dtype="float32", frames=20 * 22050)
    assert rate == RATE
    opus_music = resample(music, RATE, OPUS_RATE) if music.ndim == 1 else np.stack(
        [resample(np.ascontiguousarray(channel), RATE, OPUS_RATE) for channel in music.T], axis=1)
    return {codec: write(folder / f"original-{codec}", opus_music if codec == "opus" else music,
                         OPUS_RATE if codec == "opus" else RATE, codec) for codec in CODECS}


def crops_of(path: Path, frames: int, rate: int) -> dict[str, np.ndarray]:
    """``decode_batch`` over crops spaced every half crop across ``frames``."""
    starts = np.arange(0, frames - CROP + 1, CROP // 2)
    count = len(starts)
    rows = {
        "path": np.asarray([str(path)] * count, dtype=object),
        "track": np.zeros(count, dtype=np.int64),
        "frames": np.full(count, frames, dtype=np.int64),
        "rate": np.full(count, rate, dtype=np.int64),
        "start": starts.astype(np.int64),
        "seed": np.arange(count, dtype=np.int64),
        "labels": np.zeros((count, 1), dtype=np.float32),
    }
    out = decode_batch(rows, sample_rate=rate, crop_samples=CROP)
    out["start"] = starts
    return out


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("codec", CODECS)
def test_a_damaged_file_is_caught_and_never_trains_on_wrong_audio(originals, tmp_path, codec, damage):
    original = originals[codec]
    reference = read_frames(str(original), 0, probe(str(original)).frames)
    damaged = DAMAGE[damage](original, tmp_path / f"{damage}{original.suffix}")
    scanned = scan_batch({"path": np.asarray([str(damaged)], dtype=object)})
    if scanned["error"][0]:
        assert str(damaged) in scanned["error"][0]
        return  # refused by the scan: never decoded for training
    frames, rate = int(scanned["frames"][0]), int(scanned["rate"][0])
    batch = crops_of(damaged, frames, rate)
    if frames < len(reference):
        # A cut Ogg file: Ogg has no length header; the last complete page gives a shorter,
        # consistent length, and every crop within it is the original audio (checked below).
        assert codec in ("vorbis", "opus") and damage.startswith("cut")
    else:
        assert not batch["decoded"].all(), f"{damage} {codec}: every crop decoded although the file is damaged"
    tolerance = 0.1 if codec.startswith("aac") else 1e-4  # AAC: noise-substituted bands differ
    for start, audio, valid in zip(batch["start"], batch["audio"], batch["decoded"]):
        if valid:
            expected = reference[start : start + CROP]
            rms = float(np.sqrt(np.mean((audio - expected) ** 2)))
            assert rms <= tolerance * float(np.sqrt(np.mean(expected ** 2))) + 1e-6, (
                f"{damage} {codec}: crop at {start} is valid but not the original audio (rms error {rms:.4f})")


def test_a_truncated_mp3_fails_the_scan_with_a_reason_that_says_so(originals, tmp_path):
    damaged = cut(originals["mp3"], tmp_path / "cut.mp3", 0.6)
    with pytest.raises(AudioError, match=r"the audio ends before frame \d+ \(end of the file\) although the header promises "
                                         r"441000 frames \(truncated\?\)"):
        probe(str(damaged))
    with pytest.raises(AudioError, match="truncated"):
        read_frames(str(damaged), 400_000, CROP)  # past the cut: an error, not silence


def test_a_flac_damaged_at_30_percent_names_a_frame_near_the_damage(originals, tmp_path):
    damaged = overwrite(originals["flac"], tmp_path / "block.flac", 0.3)
    with pytest.raises(AudioError, match=r"decoding failed near frame (\d+)") as caught:
        read_frames(str(damaged), 0, 20 * RATE)
    frame = int(caught.value.args[0].split("near frame ")[1].split()[0])
    assert 0.2 * 20 * RATE < frame < 0.4 * 20 * RATE  # not "frame 0"


def test_an_opus_page_that_fails_its_checksum_is_a_hole_not_a_shift(originals, tmp_path):
    """Issue 26: FFmpeg drops an Ogg page whose checksum fails (a second of Opus) and decodes on;
    a crop across the hole came back with the audio after it, a second early. The frames'
    timestamps jump there: the read is refused and names the missing frames."""
    damaged = overwrite(originals["opus"], tmp_path / "page.opus", 0.4, size=2000)
    info = probe(str(originals["opus"]))
    with pytest.raises(AudioError, match=r"page.opus: damaged audio: \d+ frames are missing before frame \d+"):
        read_frames(str(damaged), 0, info.frames)
