"""What the browser test reads off the Airflow UI's pages, and the stand-in's fault control."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from scripts.local_env import LOCAL_DIR

if TYPE_CHECKING:
    from playwright.sync_api import Page

ARTIFACTS = LOCAL_DIR / "browser-test"  # git-ignored, like all of .local/
BACKGROUND = "e => getComputedStyle(e).backgroundColor"


@contextmanager
def saved_on_failure(page: Page, name: str) -> Iterator[None]:
    """On any failure, the page as it was: a screenshot and its HTML, named in the error."""
    try:
        yield
    except BaseException as error:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
        (ARTIFACTS / f"{name}.html").write_text(page.content())
        error.add_note(f"the page at {page.url}: {ARTIFACTS / name}.png and .html")
        raise


def run_state_colour(page: Page) -> tuple[str, str]:
    """The run page's state badge: its text (Success, Failed) and its colour."""
    badge = page.get_by_test_id("state-badge").first
    return badge.inner_text().strip().lower(), badge.evaluate(BACKGROUND)


def grid_colours(page: Page, run_id: str) -> dict[str, str]:
    """The colour of each task's square in the grid column of run_id, by task id."""
    cells = page.locator(f'[data-testid^="grid-{run_id}-"]')
    colours = {}
    for index in range(cells.count()):
        cell = cells.nth(index)
        task_id = cell.get_attribute("data-testid").removeprefix(f"grid-{run_id}-")
        colours[task_id] = cell.get_by_test_id("task-state-badge").evaluate(BACKGROUND)
    return colours


def hue(colour: str) -> float:
    """The hue (degrees) of a CSS colour as Chromium computes it: oklch(...) or rgb(...)."""
    if match := re.fullmatch(r"oklch\(([\d.]+) ([\d.]+) ([\d.]+).*\)", colour):
        return float(match.group(3))
    red, green, blue = (int(part) for part in re.findall(r"\d+", colour)[:3])
    return 149.0 if green > max(red, blue) else 25.0 if red > max(green, blue) else 260.0


def asset_event_runs(page: Page, dag_id: str) -> set[str]:
    """The runs of dag_id that the Asset events on this page link to."""
    hrefs = page.locator(f'a[href^="/dags/{dag_id}/runs/"]')
    return {hrefs.nth(i).get_attribute("href").split("/")[4] for i in range(hrefs.count())}


def standin_control(user_api_url: str, method: str, body: dict | None = None) -> None:
    """Queue (POST) or drop (DELETE) fault rules of the stand-in API."""
    request = urllib.request.Request(  # noqa: S310 - http:// to the test's own stand-in
        user_api_url.rstrip("/") + "/__standin__/faults",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - as above
        pass
