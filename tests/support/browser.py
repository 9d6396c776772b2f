"""A real headless Chromium for the status page tests, driven by Selenium.

Debian's ``chromium`` and ``chromium-driver`` packages (``make browser`` installs them;
``make test`` does so first): no browser or driver is downloaded, Selenium is told both
paths. Screenshots the tests keep go to ``.artifacts/`` at the repository root.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from testjobs import ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / ".artifacts"
"""Where tests keep what a person may want to look at after a run (screenshots)."""
WINDOW = (1280, 1100)
"""The browser window, pixels."""


@contextmanager
def chromium() -> Iterator[WebDriver]:
    """A headless Chromium session (a ``selenium.webdriver.Chrome``), quit at the end."""
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not tool.exists():
            pytest.fail(f"{tool} is missing: run `make browser` (Debian's chromium-driver)")
    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager download
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",  # root in a container: Chromium's sandbox needs user namespaces
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ):
        options.add_argument(flag)
    # Chromium leaves its singleton folder (/tmp/org.chromium.Chromium.*) behind when the
    # driver quits it: the session gets a temporary folder of its own, removed after.
    with tempfile.TemporaryDirectory(prefix="kubemr-chromium-") as scratch:
        service = Service(str(CHROMEDRIVER), env={**os.environ, "TMPDIR": scratch})
        driver = webdriver.Chrome(options=options, service=service)
        try:
            yield driver
        finally:
            driver.quit()


def keep_screenshot(driver: WebDriver, name: str) -> Path:
    """Save a screenshot of the page as ``.artifacts/<name>.png``; return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    assert driver.save_screenshot(str(path)), f"no screenshot saved to {path}"
    return path
