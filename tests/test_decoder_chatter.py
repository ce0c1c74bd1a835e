"""libmpg123's C-level stderr messages are captured, counted and logged once per kind; its notes
about damaged data refuse the read."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from audio_files import cut, music_like, overwrite, write
from raytag.audio import chatter
from raytag.audio.io import AudioError, probe, read_frames


def test_messages_are_kinds_with_numbers_blanked():
    line = "[src/libmpg123/layer3.c:INT123_do_layer3():1774] error: part2_3_length (960) too large for available bit count (936)"
    assert chatter.kind_of(line) == "error: part2_3_length (N) too large for available bit count (N)"
    assert not chatter.is_damage(line)
    assert chatter.is_damage("Note: Illegal Audio-MPEG-Header 0x0879d3cf at offset 63960.")


def test_a_truncated_mp3s_header_note_prints_nothing_and_is_logged_once_counted(tmp_path, capfd, caplog):
    caplog.set_level(logging.DEBUG, logger="raytag")
    rate = 22050
    truncated = cut(write(tmp_path / "music", music_like(rate, 8.0), rate, "mp3"), tmp_path / "cut.mp3", 0.5)
    before = chatter.counts()
    for _ in range(3):
        with pytest.raises(AudioError, match="truncated"):
            probe(str(truncated))
    assert capfd.readouterr().err == ""  # libmpg123: "Warning: Xing stream size off by more than 1%..."
    grown = {kind: n - before.get(kind, 0) for kind, n in chatter.counts().items() if n > before.get(kind, 0)}
    assert any("Xing stream size off" in kind and n >= 3 for kind, n in grown.items()), grown
    logged = [r.getMessage() for r in caplog.records if "Xing stream size off" in r.getMessage()]
    assert len(logged) <= 1  # once per process and kind, then only counted


def test_damaged_mp3_data_refuses_the_read_and_prints_nothing(tmp_path, capfd):
    rate = 22050
    source = write(tmp_path / "music", music_like(rate, 8.0), rate, "mp3")
    damaged = overwrite(source, tmp_path / "damaged.mp3", 0.5)
    failures = 0
    for start in np.linspace(0, 7 * rate, 15).astype(int):
        try:
            read_frames(str(damaged), int(start), rate // 2)
        except AudioError as exc:
            failures += 1
            assert "damaged audio near frame" in str(exc) or "decoding failed" in str(exc)
    assert failures >= 1
    assert capfd.readouterr().err == ""
