"""The status page in a real browser (headless Chromium, Selenium): live during a local job,
naming the failing task of a failed one, and served again from a kept report.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make browser``; ``make test`` runs it
first). Screenshots are kept in ``.artifacts/``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from browser import chromium, keep_screenshot
from testjobs import APPS, ROOT, manifest, word_input, write_manifest

URL_DEADLINE = 120.0
"""Seconds until ``kubemr`` prints the page's URL."""
JOB_DEADLINE = 180.0
"""Seconds a job of these tests may take."""
REFRESH_DEADLINE = 10.0
"""Seconds the page may take to refresh itself (it polls every second)."""
EXIT_DEADLINE = 30.0
"""Seconds ``kubemr`` may take to exit after Ctrl-C."""
PAGE_URL = re.compile(r"status page: (http://\S+/)")


@contextlib.contextmanager
def serving(
    args: list[str], tmp_path: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run ``kubemr ARGS`` (which serves a status page) and yield it and the page's URL;
    Ctrl-C it at the end if it still runs."""
    log = tmp_path / f"kubemr-{len(list(tmp_path.glob('kubemr-*.log')))}.log"
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        # A background job of a non-interactive shell ignores SIGINT, and so would kubemr
        # (an ignored signal stays ignored across exec): our Ctrl-C must reach it.
        signal.signal(signal.SIGINT, signal.default_int_handler)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "kubemr", *args],
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    try:
        deadline = time.monotonic() + URL_DEADLINE
        while not (found := PAGE_URL.search(log.read_text(errors="replace"))):
            assert process.poll() is None, f"kubemr exited early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no status page URL:\n{log.read_text()}"
            time.sleep(0.05)
        yield process, found.group(1)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(EXIT_DEADLINE)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        print(log.read_text(errors="replace")[-4000:])


def stop(process: subprocess.Popen[bytes]) -> int:
    """Ctrl-C: the page stops being served and ``kubemr`` exits."""
    process.send_signal(signal.SIGINT)
    return process.wait(EXIT_DEADLINE)


def status(url: str) -> dict[str, Any] | None:
    """The ``/status`` document, or None if nothing answers (the master just exited)."""
    try:
        with urllib.request.urlopen(f"{url}status", timeout=5) as response:
            document: dict[str, Any] = json.loads(response.read())
            return document
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def text(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


READ_FIGURES = """
const job = document.querySelector('#report > .job');
const t = (id) => document.getElementById(id).textContent;
return {phase: t('phase'), final: job.dataset.final === 'true', elapsed: t('elapsed'),
        maps: [+t('maps-done'), +t('maps-total')],
        reduces: [+t('reduces-done'), +t('reduces-total')]};
"""
"""Read the page's figures in one script run (the page's own script swaps them at will)."""


def figures(driver: WebDriver) -> dict[str, Any]:
    """What the page shows now."""
    found: dict[str, Any] = driver.execute_script(READ_FIGURES)
    found["maps"], found["reduces"] = tuple(found["maps"]), tuple(found["reduces"])
    return found


def refreshed(driver: WebDriver, before: dict[str, Any]) -> dict[str, Any] | None:
    """The page's figures once its script replaced them (its elapsed time moved on), or
    None if the page is final and stopped refreshing."""
    deadline = time.monotonic() + REFRESH_DEADLINE
    while True:
        now = figures(driver)
        if now["elapsed"] != before["elapsed"] or now["final"] != before["final"]:
            return now
        if before["final"]:
            return None
        assert time.monotonic() < deadline, f"the page did not refresh itself: {now}"
        time.sleep(0.05)


def pair(document: dict[str, Any], kind: str) -> tuple[int, int]:
    return int(document[kind]["done"]), int(document[kind]["total"])


def slow_job(tmp_path: Path) -> dict[str, Any]:
    return manifest(
        "pagerun",
        {"module": f"{APPS / 'slow.py'}:Slow", "args": {"map_delay": "0.02"}},
        word_input(tmp_path, files=4, lines=400),
        tmp_path / "out",
        input={"splitSize": "2Ki"},
        reduceTasks=3,
        mapper={"replicas": 2},
        reducer={"replicas": 2},
    )


def test_page_of_a_running_job_updates_itself_and_matches_status(tmp_path: Path) -> None:
    """The page, loaded once while the job runs, shows progress numbers that change, each
    between the ``/status`` read just before it was rendered and the one just after
    (equal when those agree), and ends showing the job succeeded."""
    doc = slow_job(tmp_path)
    run = ["run", str(write_manifest(tmp_path, doc)), "--ui", "--quiet"]
    with chromium() as driver, serving(run, tmp_path) as (process, url):
        driver.get(url)
        page = figures(driver)
        assert not page["final"], "the job ended before the page was first loaded"
        badge = driver.execute_script(
            "return getComputedStyle(document.getElementById('phase')).backgroundColor"
        )
        assert badge != "rgba(0, 0, 0, 0)", "static/statuspage.css was not applied"
        shown: list[tuple[int, int]] = []
        exact = unreadable = 0
        screenshot = None
        deadline = time.monotonic() + JOB_DEADLINE
        while not page["final"]:
            assert time.monotonic() < deadline, f"the job did not end: {page}"
            before = status(url)
            # Two refreshes: the second was rendered after `before` was read.
            middle = refreshed(driver, page)
            page = refreshed(driver, middle) if middle is not None else page
            if page is None or page["final"]:
                page = figures(driver)
                break
            after = status(url)
            if before is None or after is None:
                unreadable += 1
                continue
            for kind in ("maps", "reduces"):
                low, high = pair(before, kind), pair(after, kind)
                assert low[1] == page[kind][1] == high[1], (kind, before, page, after)
                assert low[0] <= page[kind][0] <= high[0], (kind, before, page, after)
                exact += low == high
            shown.append(page["maps"])
            if screenshot is None and 0 < page["maps"][0] < page["maps"][1]:
                screenshot = keep_screenshot(driver, "statuspage-running")
        moved = len({done for done, _ in shown})
        assert moved >= 2, f"map progress never moved: {shown} ({unreadable} /status failed)"
        assert exact, "no sample where the page and /status could be compared exactly"
        assert screenshot is not None and screenshot.stat().st_size > 10_000
        assert page["phase"] == "Succeeded"
        assert page["maps"][0] == page["maps"][1] and page["reduces"][0] == page["reduces"][1]
        # The job is over: the page is still served, from the kept report, until Ctrl-C.
        driver.refresh()
        assert figures(driver)["phase"] == "Succeeded"
        assert stop(process) == 0
    summary = json.loads((tmp_path / "out" / "_summary.json").read_text())
    assert summary["report"]["maps"]["done"] == page["maps"][0]


def test_page_of_a_failed_job_names_the_failing_task_and_is_kept(tmp_path: Path) -> None:
    """A reduce that always raises fails the job: the page names the task, its exception
    and its workers' logs; the job's output is gone but ``_FAILED`` keeps the report, and
    ``kubemr ui`` serves the same page from it."""
    doc = manifest(
        "pagefail",
        {"module": f"{APPS / 'failing.py'}:Failing", "args": {"key": "w000", "map_delay": "0.01"}},
        word_input(tmp_path, files=2, lines=300),
        tmp_path / "out",
        input={"splitSize": "4Ki"},
        reduceTasks=2,
        faultTolerance={"maxTaskAttempts": 2},
    )
    run = ["run", str(write_manifest(tmp_path, doc)), "--ui", "--quiet"]
    with chromium() as driver, serving(run, tmp_path) as (process, url):
        driver.get(url)
        deadline = time.monotonic() + JOB_DEADLINE
        while True:
            with contextlib.suppress(NoSuchElementException, StaleElementReferenceException):
                task = text(driver, "failure-task")  # (the page's script may swap it meanwhile)
                break
            assert time.monotonic() < deadline, f"no failure shown: {figures(driver)}"
            time.sleep(0.1)
        assert re.fullmatch(r"reduce task \d \(partition \d\)", task), task
        assert "reduce refuses key 'w000'" in text(driver, "failure-error")
        assert figures(driver)["phase"] == "Failed"
        logs = text(driver, "failure")
        assert re.search(r"logs/reducer-\d\.log", logs), logs
        keep_screenshot(driver, "statuspage-failed")
        assert stop(process) == 1
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["_FAILED"]
    kept = json.loads((out / "_FAILED").read_text())
    assert kept["phase"] == "Failed" and kept["report"]["failure"]["task"] == task
    with chromium() as driver, serving(["ui", str(out)], tmp_path) as (viewer, url):
        driver.get(url)
        assert text(driver, "failure-task") == task
        assert figures(driver)["final"] and figures(driver)["phase"] == "Failed"
        assert stop(viewer) == 0


def test_ctrl_c_while_the_job_runs_stops_it_and_keeps_nothing(tmp_path: Path) -> None:
    """``--ui`` keeps the processes' logs for the page; Ctrl-C before the job ends removes
    them with everything else, as without ``--ui``."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    run = ["run", str(write_manifest(tmp_path, slow_job(tmp_path))), "--ui", "--quiet"]
    with serving(run, tmp_path, env={"TMPDIR": str(temp)}) as (process, url):
        running = status(url)
        assert running is not None and running["phase"] != "Succeeded", running
        assert stop(process) == 130
    assert list(temp.iterdir()) == [], "the temporary directory was not removed"
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == [], "an interrupted job left output"
