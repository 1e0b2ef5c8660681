"""A real Chromium for the browser test and `make screenshots`: Debian's `chromium`, driven by Playwright.

Playwright's own browser download cannot be relied on (it fetches from a CDN, not a package
registry), so Playwright launches the system's Chromium instead; on Debian/Ubuntu as root, apt-get
installs it the first time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from scripts.local_env import apt_get_install

if TYPE_CHECKING:
    from playwright.sync_api import Page

INSTALL_HINT = (
    "Chromium is not installed. Debian/Ubuntu: sudo apt-get install -y chromium; elsewhere install "
    "Chromium or Chrome and set CHROMIUM=/path/to/it."
)
VIEWPORT = {"width": 1400, "height": 900}  # reads on GitHub at its own size


def find_chromium(install: bool = True) -> str:
    """The Chromium executable: $CHROMIUM, else chromium on PATH; apt-get installs it as root on Debian."""
    names = ("chromium", "chromium-browser", "google-chrome")  # google-chrome: on GitHub's runners
    found = os.environ.get("CHROMIUM") or next(filter(None, map(shutil.which, names)), None)
    if found:
        return found
    if install and os.geteuid() == 0 and shutil.which("apt-get"):
        print("Chromium missing: installing it with apt-get (root, Debian/Ubuntu) ...", flush=True)
        apt_get_install("chromium")
        return find_chromium(install=False)
    raise FileNotFoundError(INSTALL_HINT)


@contextmanager
def browser_page() -> Iterator[Page]:
    """A page of a fresh headless Chromium, closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # --no-sandbox: Chromium's sandbox refuses to run as root, as everything does in CI here.
        browser = playwright.chromium.launch(executable_path=find_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


@contextmanager
def logged_in_page(base_url: str, user: str, password: str) -> Iterator[Page]:
    """A browser page signed in to the Airflow UI at base_url."""
    with browser_page() as page:
        page.goto(base_url + "/")
        page.get_by_label("Username").fill(user)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(lambda url: "/auth/login" not in url)
        yield page


def expand_all_task_groups(page: Page) -> None:
    """Click "Expand all task groups" in the grid or graph, unless all are open (it is disabled then)."""
    button = page.get_by_test_id("expand-all-button")
    button.wait_for()
    if button.is_enabled():
        button.click()
