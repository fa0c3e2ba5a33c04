"""The runbook site for real: `mkdocs build --strict` of docs/, served on a free loopback port,
opened in headless Chromium (Debian's chromium + chromium-driver, through selenium): every
catalogue alert's runbook_url, rebased onto the local server, is that runbook's page and names
the alert. The manual path's diagnosis queries run in psql against the sandbox's PostgreSQL."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from pflow_ops import catalogue, cli, docs
from tests.integration.conftest import ROOT, Stack
from tests.unit.test_review_journal import SCRIPT, T, generate

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": path}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return out


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def rebased(url: str, base: str) -> str:
    """The alert's runbook_url on the local server: same path, local scheme and host."""
    parts = urlsplit(url)
    return base + parts.path


ALERTS = [(rb.id, alert) for rb in catalogue.load().runbooks for alert in rb.alerts]


@pytest.mark.parametrize(("runbook", "alert"), ALERTS, ids=[a for _, a in ALERTS])
def test_every_alert_opens_its_runbook(
    browser: webdriver.Chrome, served: str, runbook: str, alert: str
) -> None:
    rb = catalogue.load().for_alert(alert)
    assert rb.id == runbook and rb.runbook_url
    browser.get(rebased(rb.runbook_url, served))
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.TAG_NAME, "h1"))
    assert browser.title.startswith(f"{rb.id} {rb.title}")
    assert browser.find_element(By.TAG_NAME, "h1").text == f"{rb.id} {rb.title}"
    assert alert in browser.find_element(By.TAG_NAME, "article").text
    # The anchor a run report's escalation links (report_md: <runbook_url>#escalation).
    assert browser.find_elements(By.ID, "escalation")


def test_the_index_links_every_runbook_and_a_screenshot(
    browser: webdriver.Chrome, served: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cat = catalogue.load()
    browser.get(rebased(cat.runbooks[0].runbook_url.rsplit("/", 1)[0] + "/", served))
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.TAG_NAME, "h1"))
    hrefs = {a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "article a")}
    for rb in cat.runbooks:
        assert rebased(rb.runbook_url, served) + "/" in hrefs
    browser.get(rebased(cat.runbooks[0].runbook_url, served))
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.TAG_NAME, "h1"))
    shot = tmp_path_factory.mktemp("artifacts") / f"{cat.runbooks[0].slug}.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def test_the_review_page_shows_hostile_alert_names_as_text(
    browser: webdriver.Chrome,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`pflow-ops review --save`'s HTML in the browser: the plot (a data: URI) is drawn, and an
    alert named `<script>...` is shown as those characters, never run."""
    monkeypatch.setenv("PFLOW_OPS_HOME", str(tmp_path))
    generate(tmp_path, offset=time.time() - T)  # a receiver journal with every alert fate
    assert cli.main(["review", "--save", str(tmp_path / "review")]) == 0
    assert "Alerts that started no run, and why:" in capsys.readouterr().out
    browser.get((tmp_path / "review" / "review.html").as_uri())
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.TAG_NAME, "h1"))
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Runbook review")
    img = browser.find_element(By.TAG_NAME, "img")
    assert browser.execute_script("return arguments[0].naturalWidth", img) > 100
    assert SCRIPT in browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_elements(By.TAG_NAME, "script") == []


def test_the_manual_diagnosis_queries_run_in_psql(stack: Stack) -> None:
    """The page's psql path works: each query, with its \\set lines, as the monitoring role."""
    pg = stack.endpoints["postgres"]
    script = "\n".join(f"{q['sets']}\n{q['sql']}" for q in docs.diagnosis_queries())
    env = {**os.environ, "PGPASSWORD": pg["monitor_password"]}
    argv = ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-h", pg["host"], "-p", str(pg["port"])]
    argv += ["-U", pg["monitor_user"], "-d", pg["database"], "-f", "-"]
    ran = subprocess.run(
        argv, input=script, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr
    assert "version_num" in ran.stdout and "xid_age" in ran.stdout
