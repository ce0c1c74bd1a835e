"""The review report in a real browser: headless Chromium (Debian's ``chromium`` package) loads a
report of a real SQLite store, every image decodes, and a screenshot shows the page.

Without Chromium the test is skipped on a laptop and fails under ``CI=true`` (tests/requirements.py;
CI installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image
from requirements import needs
from review_store import fill_pipeline, log_plot

from raytag.tracking.review import review_runs

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Injected into a copy of the report (the report has no scripts): after load, the body records
# how many images there are and the alt text of each one that did not decode.
IMAGE_CHECK = (
    "<script>window.addEventListener('load', () => { const images = [...document.images];"
    " document.body.setAttribute('data-images', images.length);"
    " document.body.setAttribute('data-broken', JSON.stringify("
    "images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt))); });</script>"
)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = needs(CHROMIUM is not None, "chromium is not installed (Debian: apt-get install -y chromium)")


@pytest.fixture(scope="module")
def chromium() -> str:
    return CHROMIUM


def run_chromium(chromium: str, profile: Path, *args: str) -> str:
    result = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def loaded_images(chromium: str, html: Path, profile: Path) -> tuple[int, list[str]]:
    """(images on the page, alt texts of those that did not decode), as Chromium sees them."""
    checked = html.with_name(html.stem + "-checked.html")
    checked.write_text(html.read_text().replace("</body>", IMAGE_CHECK + "</body>"))
    dom = run_chromium(chromium, profile, "--virtual-time-budget=10000", "--dump-dom", checked.as_uri())
    body = re.search(r"<body[^>]*\bdata-images=\"(\d+)\"[^>]*\bdata-broken=\"([^\"]*)\"", dom)
    assert body, dom[:500]
    return int(body.group(1)), json.loads(body.group(2).replace("&quot;", '"'))


def test_every_image_of_the_report_loads_in_chromium_and_the_page_renders(chromium, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("pipelines", artifact_location=str(tmp_path / "artifacts"))
    ids = fill_pipeline(client, experiment)
    log_plot(client, ids["teacher"], "curves.png")
    html = review_runs(tracking_uri=uri, parent_run_id=ids["parent"], html_path=tmp_path / "report.html").html_path
    expected = html.read_text().count("<img ")
    assert expected >= 7

    count, broken = loaded_images(chromium, html, tmp_path / "profile")
    assert (count, broken) == (expected, [])

    # The check catches an image that does not decode.
    damaged = tmp_path / "damaged.html"
    damaged.write_text(re.sub(r'src="data:image/png;base64,[^"]{40}', 'src="data:image/png;base64,AAAA', html.read_text(),
                              count=1))
    count, broken = loaded_images(chromium, damaged, tmp_path / "profile")
    assert count == expected and len(broken) == 1

    shot = tmp_path / "report.png"
    run_chromium(chromium, tmp_path / "profile", "--window-size=1400,2400", "--hide-scrollbars",
                 f"--screenshot={shot}", html.as_uri())
    with Image.open(shot) as image:
        assert image.size == (1400, 2400)
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.std() > 20  # tables and plots, not a blank page
    assert (pixels[:, 700:] < 250).mean() > 0.02  # the wide runs table and figures reach the right half


def test_the_per_tag_change_table_fits_a_900_pixel_page(tmp_path):
    """Two runs with long names: measured in Chromium (Selenium), nothing is wider than the
    page, and the per-tag change table fits its container without scrolling."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver")
    assert driver_path, "chromedriver is not installed (Debian: apt-get install -y chromium-driver)"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    ids = fill_pipeline(client, client.create_experiment("pipelines", artifact_location=str(tmp_path / "artifacts")))
    html = review_runs(tracking_uri=uri, run_ids=[ids["teacher"], ids["student"]], html_path=tmp_path / "r.html").html_path
    options = Options()
    for flag in FLAGS + ["--window-size=900,1200", f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    options.binary_location = CHROMIUM
    browser = webdriver.Chrome(options=options, service=Service(driver_path))
    try:
        browser.get(html.as_uri())
        page, document, tables = browser.execute_script(
            "return [window.innerWidth, document.documentElement.scrollWidth, [...document.querySelectorAll('table')]"
            ".map(t => [t.getBoundingClientRect().width, t.parentElement.getBoundingClientRect().right,"
            " t.parentElement.clientWidth, t.querySelector('th:nth-child(3)').textContent])]")
    finally:
        browser.quit()
    assert document <= page
    assert all(right <= page for _, right, _, _ in tables)
    change = [(width, room) for width, _, room, third in tables if third == "ROC-AUC A"]
    assert len(change) == 1 and change[0][0] <= change[0][1], change
