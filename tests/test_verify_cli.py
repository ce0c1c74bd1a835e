"""``raytag verify`` end to end on the tiny synthetic corpus: the batch (audit suspects first,
batch after batch), the page's clips (from the middle, or where a model scores the tags
highest), and applying decisions, with the errors a user can make."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from teachers import write_random_tagger

from raytag.audit import audit_labels
from raytag.audit_files import audit_location, read_suspects, write_audit_tables
from raytag.cli import main
from raytag.config import load_job
from raytag.data.manifest import read_manifest, read_manifest_rows, read_paths
from raytag.engine.inference import probe_table
from raytag.engine.segments import score_segments
from raytag.models.export import read_exported, read_weights
from raytag.verify.clips import clip_window, relevant_segment


def embedded(page: Path) -> tuple[dict, list[bytes]]:
    """The page's batch JSON and its clips (Ogg Opus bytes)."""
    html = page.read_text()
    blocks = {name: json.loads(text.replace("<\\/", "</")) for name, text in re.findall(
        r'<script id="(raytag-[a-z]+)" type="application/json">(.*?)</script>', html, re.S)}
    return blocks["raytag-batch"], [base64.b64decode(c) for c in blocks["raytag-clips"]]


def opus_seconds(data: bytes) -> float:
    with av.open(io.BytesIO(data)) as container:
        audio = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
    assert np.abs(audio).max() > 0.01  # not silence
    return len(audio) / 48_000


def test_a_page_puts_the_audits_suspects_first_and_batches_do_not_overlap(tmp_path, tiny_job, capsys):
    job_file = tiny_job("batches")
    job = load_job(job_file)
    manifest = read_manifest(job.data.manifest)
    train = manifest.split("train")
    # An audit's suspicious table, through the audit's own writer: four unverified training
    # tracks (ranked in reverse manifest order, two rows for one of them), one row about a
    # validation track and one about a verified track (neither may be picked).
    unverified = [t.path for t in train if not t.verified]
    ranked = unverified[::-1][:4]
    rows = [ranked[0], ranked[1], ranked[0], ranked[2], manifest.split("valid")[0].path, ranked[3]]
    rows += [t.path for t in train if t.verified][:1]
    suspicious = pd.DataFrame({
        "rank": range(1, len(rows) + 1), "track": rows, "tag": manifest.vocabulary[0], "label": 0, "score": 0.9,
        "p_wrong": np.linspace(0.9, 0.5, len(rows)), "suspected": "missing"})
    write_audit_tables(audit_location(job.storage, job.name), per_tag=pd.DataFrame(), suspicious=suspicious)

    page = tmp_path / "one.html"
    assert main(["verify", str(job_file), "-o", str(page), "--split", "train", "--tracks", "6", "--max-suspects", "3"]) == 0
    out = capsys.readouterr().out
    assert "audit suspects first: 3 tracks" in out and "6 tracks of the 'train' split" in out
    assert "2 suspect rows about tracks that are not candidates" in out
    batch, clips = embedded(page)
    paths = [t["path"] for t in batch["tracks"]]
    assert paths[:3] == ranked[:3]  # in the audit's order
    assert all(t["suspects"] and "audit: " in t["reason"] for t in batch["tracks"][:3])
    assert not any(t["reason"].startswith("audit suspect") for t in batch["tracks"][3:])
    assert set(paths) <= set(unverified)  # verified rows are never picked
    assert [opus_seconds(c) for c in clips] == pytest.approx([2.0] * 6, abs=0.01)  # the whole 2 s clip
    assert all(t["clip"]["how"].startswith("clip 0.0–2.0 s of 2.0 s: the middle of the track") for t in batch["tracks"])
    listed = tmp_path / "one.tracks.csv"
    assert read_paths(listed) == paths

    # The same command again: the same batch (and id, so the browser finds its saved work).
    assert main(["verify", str(job_file), "-o", str(page), "--split", "train", "--tracks", "6", "--max-suspects", "3",
                 "--overwrite"]) == 0
    assert embedded(page)[0]["batch"] == batch["batch"]

    # A second batch before the first is applied: --skip its list.
    other = tmp_path / "two.html"
    assert main(["verify", str(job_file), "-o", str(other), "--split", "train", "--tracks", "6", "--no-audit",
                 "--skip", str(listed)]) == 0
    assert "6 listed in --skip files left out" in capsys.readouterr().out
    second = [t["path"] for t in embedded(other)[0]["tracks"]]
    assert not set(second) & set(paths)

    # Or apply the first batch; a page from the new manifest picks none of it again.
    decisions = tmp_path / "decisions.csv"
    decisions.write_text("path,tags,decided\n" + "".join(f"{p},,true\n" for p in paths))
    new = tmp_path / "after-one.csv"
    assert main(["verify", str(job_file), "--apply", str(decisions), "-o", str(new)]) == 0
    third = tmp_path / "three.html"
    assert main(["verify", str(job_file), f"data.manifest={new}", "-o", str(third), "--split", "train",
                 "--tracks", "6", "--no-audit"]) == 0
    assert not {t["path"] for t in embedded(third)[0]["tracks"]} & set(paths)


def test_with_a_model_each_clip_is_centred_where_it_scores_the_tracks_tags_highest(tmp_path, tiny_job):
    job_file = tiny_job("model")
    job = load_job(job_file)
    vocabulary = read_manifest(job.data.manifest).vocabulary
    model_dir = write_random_tagger(tmp_path / "model", tags=vocabulary, crop_seconds=0.5, seed=3)
    page = tmp_path / "page.html"
    assert main(["verify", str(job_file), "-o", str(page), "--tracks", "3", "--clip-s", "1", "--model",
                 str(model_dir)]) == 0
    batch, clips = embedded(page)
    assert [opus_seconds(c) for c in clips] == pytest.approx([1.0] * 3, abs=0.01)
    exported = read_exported(model_dir)
    network = exported.recipe.build()
    network.load_state_dict(read_weights(model_dir))
    for track in batch["tracks"]:
        # The segment scores, computed here with the same public function.
        table, _ = probe_table([track["path"]], num_tags=len(vocabulary))
        scores = score_segments(network, table, sample_rate=exported.sample_rate, segment_samples=exported.crop_samples,
                                hop_seconds=0.25, batch_size=8)
        best, _ = relevant_segment(scores.probabilities, [vocabulary.index(t) for t in track["tags"]])
        centre = (scores.start_s[best] + scores.end_s[best]) / 2
        start, end = clip_window(2.0, 1.0, centre)
        assert track["clip"]["how"].startswith(f"clip {start:.1f}–{end:.1f} s of 2.0 s: around "
                                               f"{scores.start_s[best]:.1f}–{scores.end_s[best]:.1f} s, where the model")


def test_bad_input_is_one_line_and_exit_2(tmp_path, tiny_job, capsys):
    job_file = tiny_job("errors")
    job = load_job(job_file)
    manifest = Path(job.data.manifest)
    before = manifest.read_bytes()
    track = read_manifest(manifest).split("valid")[0]
    good = tmp_path / "good.csv"
    good.write_text(f"path,tags,decided\n{track.path},piano,true\n")

    def fails(*argv: str) -> str:
        assert main(["verify", str(job_file), *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("raytag verify: "), err
        return err

    assert "the original is never overwritten" in fails("--apply", str(good), "-o", str(manifest))
    assert manifest.read_bytes() == before
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("path,tags,decided\n/nowhere/x.wav,piano,true\n")
    assert f"{unknown}:2: no track /nowhere/x.wav in the manifest" in fails("--apply", str(unknown), "-o", str(tmp_path / "n.csv"))
    stranger = tmp_path / "stranger.csv"
    stranger.write_text(f"path,tags,decided\n{track.path},piano;theremin,true\n")
    assert "stranger.csv:2: tag 'theremin' is not in the job's vocabulary" in fails(
        "--apply", str(stranger), "-o", str(tmp_path / "n.csv"))
    assert not (tmp_path / "n.csv").exists()
    assert "--model is for making a page" in fails("--apply", str(good), "-o", str(tmp_path / "n.csv"), "--model", "m")
    assert "--seed is for making a page" in fails("--apply", str(good), "-o", str(tmp_path / "n.csv"), "--seed", "0")
    assert "no such file" in fails("--apply", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "n.csv"))
    taken = tmp_path / "taken.csv"
    taken.write_text("x")
    assert "exists; pass --overwrite" in fails("--apply", str(good), "-o", str(taken))
    taken.with_suffix(".html").write_text("x")
    assert "exists; pass --overwrite" in fails("-o", str(taken.with_suffix(".html")))
    assert "no suspicious.csv there" in fails("-o", str(tmp_path / "p.html"), "--audit", str(tmp_path))
    assert "name it *.html" in fails("-o", str(tmp_path / "p.txt"))
    assert main(["verify", str(job_file), "-o", str(tmp_path / "p.html"), "--tracks", "0"]) == 2
    assert "--tracks: must be at least 1" in capsys.readouterr().err
    # The good decisions apply, and the report says what changed.
    assert main(["verify", str(job_file), "--apply", str(good), "-o", str(tmp_path / "n.csv")]) == 0
    out = capsys.readouterr().out
    assert "1 decision: 1 checked, now verified" in out
    columns, rows = read_manifest_rows(tmp_path / "n.csv")
    index = [t.path for t in read_manifest(tmp_path / "n.csv").tracks].index(track.path)
    assert rows[index]["tags"] == "piano" and rows[index]["verified"] == "true"


def test_an_audits_suspicious_table_reads_back_as_written(tmp_path):
    rng = np.random.default_rng(0)
    truth = rng.random((3000, 2)) < 0.3
    noisy = truth & (rng.random(truth.shape) > 0.3)  # 30 % of the tags go missing
    scores = truth + rng.normal(0, 0.3, truth.shape)
    audit = audit_labels(scores=scores, labels=noisy.astype(int), tags=["a", "b"],
                         tracks=[f"/t/{i}.wav" for i in range(3000)], max_rows=50)
    assert len(audit.suspicious) == 50
    write_audit_tables(str(tmp_path), per_tag=audit.per_tag, suspicious=audit.suspicious)
    suspects = read_suspects(str(tmp_path))
    assert [(s.rank, s.track, s.tag, s.suspected) for s in suspects] == list(
        audit.suspicious[["rank", "track", "tag", "suspected"]].itertuples(index=False, name=None))
    assert [s.p_wrong for s in suspects] == pytest.approx(list(audit.suspicious["p_wrong"]))
    assert read_suspects(str(tmp_path / "none")) is None
