"""The verification page in a real browser: Debian's Chromium driven by chromium-driver through
Selenium. A person's session: play a clip, change tags with the mouse and the keyboard, reload
(nothing lost), export the decisions, apply them with ``raytag verify --apply`` and find every
row of the new manifest as expected.

Without Chromium, chromium-driver or Selenium the test is skipped on a laptop and fails under
``CI=true`` (tests/requirements.py; .ci/run installs both packages).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import shutil
import urllib.parse
from pathlib import Path

import pytest
from requirements import needs

from raytag.cli import main
from raytag.config import load_job
from raytag.data.manifest import read_manifest, read_manifest_rows

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - the mark below skips or fails the test
    webdriver = None

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = needs(
    CHROMIUM is not None and CHROMEDRIVER is not None and webdriver is not None,
    "chromium, chromium-driver (Debian: apt-get install -y chromium chromium-driver) and selenium are needed",
)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
         "--autoplay-policy=no-user-gesture-required", "--window-size=1300,900"]


def browser_processes(driver_pid: int, profile: Path) -> set[int]:
    """chromium-driver and every process it started (its descendants, and any process whose
    command line names this session's profile folder), from /proc."""
    parents, marked = {}, set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        if str(profile).encode() in cmdline:
            marked.add(int(entry.name))
    found, grew = {driver_pid} | marked, True
    while grew:
        children = {pid for pid, parent in parents.items() if parent in found} - found
        found |= children
        grew = bool(children)
    return found


@pytest.fixture
def browser(tmp_path):
    """A headless Chromium session with a fresh profile; the driver and every browser process
    are stopped by pid at the end."""
    profile = tmp_path / "profile"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver_pid = driver.service.process.pid
    try:
        yield driver
    finally:
        started = browser_processes(driver_pid, profile)
        try:
            driver.quit()
        finally:
            for pid in started & browser_processes(driver_pid, profile):  # those still there
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def page_batch(page: Path) -> dict:
    """The batch JSON the page embeds."""
    found = re.search(r'<script id="raytag-batch" type="application/json">(.*?)</script>', page.read_text(), re.S)
    return json.loads(found.group(1).replace("<\\/", "</"))


def text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def box(driver, tag: str):
    return driver.find_element(By.CSS_SELECTOR, f'input[type=checkbox][data-tag="{tag}"]')


def keys(driver, *sequence: str) -> None:
    ActionChains(driver).send_keys(*sequence).perform()


def test_a_person_checks_a_batch_in_chromium_and_the_decisions_become_verified_rows(tmp_path, tiny_job, browser):
    job = tiny_job("verify")
    page = tmp_path / "page.html"
    assert main(["verify", str(job), "-o", str(page), "--tracks", "4", "--seed", "1"]) == 0
    batch = page_batch(page)
    vocabulary, tracks = batch["vocabulary"], batch["tracks"]
    assert len(tracks) == 4 and not any(t["suspects"] for t in tracks)
    browser.get(page.as_uri())
    wait = WebDriverWait(browser, 20)
    assert (text(browser, "progress"), text(browser, "position")) == ("0 of 4 checked", "track 1 of 4")

    # Space plays the clip: the audio element advances.
    keys(browser, " ")
    wait.until(lambda d: d.execute_script("const p = document.getElementById('player');"
                                          "return p.played.length > 0 && p.currentTime > 0.2"))
    assert browser.execute_script("return document.getElementById('player').duration") == pytest.approx(2.0, abs=0.05)

    # Track 1: uncheck its first tag and add one with the mouse, add another by keyboard search,
    # write a note (with a comma and quotes), mark it checked with "d" (which goes on).
    first = tracks[0]
    expected: dict[str, list[str]] = {}
    chosen = set(first["tags"])
    if first["tags"]:
        box(browser, first["tags"][0]).click()
        chosen.discard(first["tags"][0])
    extra = [t for t in vocabulary if t not in first["tags"]]
    box(browser, extra[0]).click()
    keys(browser, "/")
    keys(browser, extra[1], Keys.ENTER, Keys.ESCAPE)
    chosen |= {extra[0], extra[1]}
    keys(browser, "n")
    keys(browser, 'clip 1, "odd"', Keys.ESCAPE)
    keys(browser, "d")
    expected[first["path"]] = [t for t in vocabulary if t in chosen]
    assert text(browser, "position") == "track 2 of 4"

    # Track 2: keyboard only: "1" toggles its first listed tag, Enter marks it checked.
    second = tracks[1]
    keys(browser, "1")
    expected[second["path"]] = second["tags"][1:]
    keys(browser, Keys.ENTER)

    # Track 3: a tag added with the mouse but never marked checked: its row must not change.
    third = tracks[2]
    added_to_third = next(t for t in vocabulary if t not in third["tags"])
    box(browser, added_to_third).click()
    assert text(browser, "progress") == "2 of 4 checked"

    # A reload keeps everything: progress, the current track, its tags, notes.
    browser.refresh()
    assert (text(browser, "progress"), text(browser, "position")) == ("2 of 4 checked", "track 3 of 4")
    assert box(browser, added_to_third).is_selected()
    browser.find_elements(By.CSS_SELECTOR, "#tracks li")[0].click()
    assert text(browser, "position") == "track 1 of 4" and text(browser, "status") == "checked"
    assert {t for t in vocabulary if box(browser, t).is_selected()} == chosen
    assert browser.find_element(By.ID, "note").get_attribute("value") == 'clip 1, "odd"'
    saved = browser.execute_script(f"return localStorage.getItem('raytag-verify:{batch['batch']}')")
    assert json.loads(saved)["tracks"][first["path"]]["note"] == 'clip 1, "odd"'

    # Export: the link carries the decisions CSV as a data URL.
    link = browser.find_element(By.ID, "export")
    link.click()
    assert link.get_attribute("download") == f"decisions-{batch['batch']}.csv"
    href = link.get_attribute("href")
    assert href.startswith("data:text/csv;charset=utf-8,")
    exported = urllib.parse.unquote(href.split(",", 1)[1])
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["path"] for r in rows] == [t["path"] for t in tracks]
    assert [r["decided"] for r in rows] == ["true", "true", "false", "false"]
    decisions = tmp_path / "decisions.csv"
    decisions.write_text(exported)

    # Apply, then check the new manifest row by row against the original.
    new = tmp_path / "verified.csv"
    assert main(["verify", str(job), "--apply", str(decisions), "-o", str(new)]) == 0
    source = read_manifest(load_job(job).data.manifest)
    columns, before = read_manifest_rows(source.source)
    new_columns, after = read_manifest_rows(new)
    assert new_columns == columns and len(after) == len(before) == len(source.tracks)
    rewritten = read_manifest(new)
    assert sum(t.verified for t in rewritten.tracks) == 2 + sum(t.verified for t in source.tracks)
    for old_row, new_row, old_track, new_track in zip(before, after, source.tracks, rewritten.tracks):
        assert new_track.path == old_track.path  # the same file (written as an absolute path: another folder)
        assert new_row["path"] == old_track.path and old_row["path"] != old_track.path
        if old_track.path in expected:
            wanted = expected[old_track.path]
            kept_then_added = [t for t in old_track.tags if t in wanted] + [t for t in wanted if t not in old_track.tags]
            assert new_row["tags"] == ";".join(kept_then_added) and new_track.tags == tuple(kept_then_added)
            assert new_row["verified"] == "true" and new_track.verified
        else:
            assert {**new_row, "path": old_row["path"]} == old_row
