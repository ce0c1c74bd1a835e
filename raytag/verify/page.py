"""The verification page: one self-contained HTML file (no server, no external resource).

The page holds the batch as JSON (tracks, their tags, the audit's suspicions, where each clip
is) and every clip as base64 Ogg Opus in a second JSON block; its script (``page.js``) and
style (``page.css``) are embedded from this package. It opens from disk in a browser. The
person's work is kept in the browser's localStorage under ``raytag-verify:<batch id>`` on every
change, so a reload loses nothing and two batches never mix; the export link writes the
decisions CSV (:mod:`raytag.verify.decisions`) as a data URL named
``decisions-<batch id>.csv``.

Core module: no Ray, no MLflow.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import resources

from raytag.verify.decisions import DECISION_COLUMNS, TAG_SEPARATOR

SHORTCUTS = (
    ("j / →", "next track"), ("k / ←", "previous track"), ("space / p", "play or pause"),
    ("d / Enter", "mark checked (and go on) or uncheck"), ("1 … 9, 0", "toggle the numbered tag"),
    ("/", "search all tags; Enter adds the first match"), ("n", "write a note"), ("Esc", "leave a field"),
)


@dataclass(frozen=True)
class Suspicion:
    """An audit's suspicion about one of a track's labels: ``suspected`` is ``missing`` (a
    labelled negative that may be there) or ``spurious``; ``p_wrong`` its probability."""

    tag: str
    suspected: str
    p_wrong: float


@dataclass(frozen=True)
class PageTrack:
    """One track of the page.

    Attributes:
        path: the track as the manifest reader resolves it (what the decisions name).
        tags: its labelled tags (vocabulary order).
        suspects: the audit's suspicions about it.
        reason: why it is in the batch (:attr:`raytag.verify.pick.Pick.reason`).
        clip_how: where its clip is and why, in words.
        clip: the Ogg Opus bytes.
    """

    path: str
    tags: tuple[str, ...]
    suspects: tuple[Suspicion, ...]
    reason: str
    clip_how: str
    clip: bytes

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]


def batch_id(*, manifest: str, split: str, seed: int, paths: Sequence[str]) -> str:
    """12 hex digits naming a batch: a hash of where it comes from and which tracks it holds
    (the same batch made again gets the same id, so its saved work is found again)."""
    text = json.dumps([manifest, split, seed, sorted(paths)])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _json_block(element_id: str, value) -> str:
    # "</" would end the script element early; JSON allows "<\/" for it.
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")
    return f'<script id="{element_id}" type="application/json">{text}</script>'


def render_page(*, title: str, batch: str, vocabulary: Sequence[str], tracks: Sequence[PageTrack]) -> str:
    """The page's HTML.

    Args:
        title: what the page is (shown at its top).
        batch: the batch id (:func:`batch_id`).
        vocabulary: every tag, in the job's order.
        tracks: the tracks, in the order the person goes through them.
    """
    data = {
        "batch": batch,
        "vocabulary": list(vocabulary),
        "columns": list(DECISION_COLUMNS),
        "separator": TAG_SEPARATOR,
        "tracks": [
            {"path": t.path, "name": t.name, "tags": list(t.tags), "suspects": [asdict(s) for s in t.suspects],
             "reason": t.reason, "clip": {"how": t.clip_how}}
            for t in tracks
        ],
    }
    clips = [base64.b64encode(t.clip).decode("ascii") for t in tracks]
    folder = resources.files("raytag.verify")
    style = folder.joinpath("page.css").read_text(encoding="utf-8")
    script = folder.joinpath("page.js").read_text(encoding="utf-8")
    shortcuts = "".join(f"<li><kbd>{html.escape(k)}</kbd> {html.escape(v)}</li>" for k, v in SHORTCUTS)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{style}</style></head>
<body>
<header><h1>{html.escape(title)}</h1><span id="progress"></span><progress id="bar" value="0"></progress>
<span id="saved"></span><a id="export" href="#">Export decisions (CSV)</a>
<span class="batch">batch <span id="batch"></span></span></header>
<main><ol id="tracks"></ol>
<section class="track">
<p id="position"></p><h2 id="name"></h2><p id="path"></p><p id="reason"></p><p id="clip"></p>
<audio id="player" controls preload="auto"></audio>
<p><button id="prev">Previous (k)</button><button id="next">Next (j)</button>
<button id="done"></button> <span id="status"></span></p>
<h3>Tags of this track <small>(checked = the tag is there)</small></h3><div id="listed" class="tags"></div>
<h3>Add a tag</h3><input id="search" type="search" placeholder="search {len(vocabulary)} tags (/)">
<span id="matches"></span><div id="vocabulary"></div>
<h3>Note</h3><textarea id="note" placeholder="anything the labels cannot say (n)"></textarea>
</section></main>
<footer>Keyboard: <ul>{shortcuts}</ul> Your work is saved in this browser as you go (key
raytag-verify:{html.escape(batch)}); export the decisions and run
<code>raytag verify JOB.yaml --apply decisions-{html.escape(batch)}.csv -o NEW_MANIFEST</code>.</footer>
{_json_block("raytag-batch", data)}
{_json_block("raytag-clips", clips)}
<script>{script}</script>
</body></html>
"""
