"""What a run must produce, computed from the stand-in API's own generator and the DAG's seed rule."""

from __future__ import annotations

from datetime import UTC, datetime

from include.user_processing.extract import seed_for
from include.user_processing.settings import DEFAULT_USERS_PER_RUN
from include.user_processing.user_api import page_sizes
from template.standin_user_api import generate_page


def api_users(logical_date: str, total: int = DEFAULT_USERS_PER_RUN, edge_cases: bool = False) -> list[dict]:
    """The users the API serves for one logical date's seed, page by page, as the DAG asks for them."""
    seed = seed_for("user_processing", datetime.fromisoformat(logical_date).replace(tzinfo=UTC))
    return [
        user
        for page, size in enumerate(page_sizes(total), start=1)
        for user in generate_page(seed, page, size, edge_cases=edge_cases)["results"]
    ]


# The columns of `users` that user_rows gives, in its order: compare with users_in(warehouse, ROW).
ROW = "user_id::text, firstname, lastname, email, username, country"


def user_rows(logical_date: str, total: int = DEFAULT_USERS_PER_RUN, edge_cases: bool = False) -> list[tuple]:
    """(user_id, firstname, lastname, email, username, country) of each user, sorted by user_id."""
    return sorted(
        (
            user["login"]["uuid"],
            user["name"]["first"],
            user["name"]["last"],
            user["email"],
            user["login"]["username"],
            user["location"]["country"],
        )
        for user in api_users(logical_date, total, edge_cases)
    )


def assert_succeeded(result) -> None:
    assert result.returncode == 0, f"dags test failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
