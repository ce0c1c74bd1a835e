"""The verification page's HTML (raytag.verify.page): self-contained, its embedded data intact
whatever the paths and tags hold, and a batch id that names its tracks."""

from __future__ import annotations

import base64
import json
import re

from raytag.verify.decisions import DECISION_COLUMNS
from raytag.verify.page import PageTrack, Suspicion, batch_id, render_page


def test_the_page_embeds_everything_and_survives_hostile_names():
    odd = '/music/</script><script>alert("x")</script> & co.mp3'
    tracks = [
        PageTrack(odd, ("rock",), (Suspicion("jazz", "missing", 0.75),), "audit suspect", "clip 0.0–20.0 s", b"\x00OggS\xff"),
        PageTrack("/music/b.mp3", (), (), "labelled without rock", "clip 5.0–25.0 s", b"abc"),
    ]
    html = render_page(title="<b>job</b>", batch="0123456789ab", vocabulary=["rock", "jazz"], tracks=tracks)
    assert "<title>&lt;b&gt;job&lt;/b&gt;</title>" in html
    scripts = re.findall(r"<script(?: id=\"([a-z-]+)\" type=\"application/json\")?>(.*?)</script>", html, re.S)
    assert [name for name, _ in scripts] == ["raytag-batch", "raytag-clips", ""]  # the odd path ended no script early
    batch = json.loads(scripts[0][1].replace("<\\/", "</"))
    clips = json.loads(scripts[1][1])
    assert batch["batch"] == "0123456789ab" and batch["columns"] == list(DECISION_COLUMNS)
    assert batch["tracks"][0] == {"path": odd, "name": odd.rsplit("/", 1)[1], "tags": ["rock"],
                                  "suspects": [{"tag": "jazz", "suspected": "missing", "p_wrong": 0.75}],
                                  "reason": "audit suspect", "clip": {"how": "clip 0.0–20.0 s"}}
    assert [base64.b64decode(c) for c in clips] == [b"\x00OggS\xff", b"abc"]
    # Nothing is fetched: no external URL, no src or href attribute to load.
    assert not re.search(r"https?://", html)
    assert not re.search(r"\b(src|href)=\"(?!#)", html)
    assert "raytag-verify:" in scripts[2][1] and "localStorage" in scripts[2][1]


def test_the_batch_id_names_the_source_and_the_tracks_not_their_order():
    one = batch_id(manifest="/m.csv", split="valid", seed=0, paths=["/a", "/b"])
    assert re.fullmatch(r"[0-9a-f]{12}", one)
    assert one == batch_id(manifest="/m.csv", split="valid", seed=0, paths=["/b", "/a"])
    assert len({one, batch_id(manifest="/m.csv", split="valid", seed=0, paths=["/a", "/c"]),
                batch_id(manifest="/m.csv", split="valid", seed=1, paths=["/a", "/b"]),
                batch_id(manifest="/n.csv", split="valid", seed=0, paths=["/a", "/b"])}) == 4
