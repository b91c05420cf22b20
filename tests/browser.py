"""A real headless Chromium for the web page's tests: Debian's ``chromium`` + ``chromium-driver``, driven by Selenium.

Selenium is pointed at the system binaries (its own browser download cannot reach its hosts here).
:func:`why_no_browser` installs the two packages with apt-get when they are missing and this process is
root, the way ``tests/container/smoke.sh`` installs podman; otherwise it returns the reason to skip.
Tests import it as ``from browser import ...`` (``tests/`` is on ``sys.path``, like ``media``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
APT_PACKAGES = ("chromium", "chromium-driver")
# Headless, as root in a container, and quiet: no sandbox (root), no /dev/shm (small in containers), no GPU,
# and none of the background traffic a fresh profile starts (the machine has no network anyway).
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-dev-shm-usage",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

T = TypeVar("T")


def why_no_browser() -> str:
    """Empty when Chromium and its driver are (or could just be) installed, else why the browser tests skip."""
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return ""
    if sys.platform != "linux":
        return "the browser tests use Debian's chromium packages (Linux)"
    if shutil.which("apt-get") is None:
        return f"{CHROMIUM} or {CHROMEDRIVER} is missing and apt-get is not available to install them"
    if os.geteuid() != 0:
        return (
            f"{CHROMIUM} or {CHROMEDRIVER} is missing; install them as root: apt-get install {' '.join(APT_PACKAGES)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *APT_PACKAGES]):
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            return f"`{' '.join(command)}` failed: {(done.stderr or done.stdout).strip()[-500:]}"
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return f"apt-get installed {' '.join(APT_PACKAGES)} but {CHROMIUM} or {CHROMEDRIVER} is still missing"
    return ""


def chrome(profile: Path, *, width: int = 1280, height: int = 900):
    """A headless Chromium (Selenium WebDriver) with a throw-away profile folder; ``quit()`` it when done."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={profile}")
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def page_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def choose(driver, dropdown_css: str, label: str) -> None:
    """Pick ``label`` in a Gradio dropdown: open it, click the option with that text (a no-op if it is chosen)."""
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.CSS_SELECTOR, f"{dropdown_css} input")
    if box.get_attribute("value") == label:
        return
    box.click()

    def option():
        for item in driver.find_elements(By.CSS_SELECTOR, "[role=option]"):
            if item.text.strip() == label:
                return item
        return None

    wait_until(option, 10, f"the option {label!r}").click()
    value = driver.find_element(By.CSS_SELECTOR, f"{dropdown_css} input").get_attribute("value")
    assert value == label, f"the dropdown shows {value!r}, not {label!r}"
