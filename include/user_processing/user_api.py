"""Talking to a randomuser.me-style user API: availability check, paging and retries.

The real API has served every kind of bad answer (see docs/guarantees.md): 5xx pages from its CDN,
429 without Retry-After, and, during outages, HTTP 200 with an empty `results` list. So a page is
only accepted once its body has been parsed and every user checked; anything else raises one of:

- ``TransientUserApiError``: worth retrying (timeouts, 429, 5xx, outage bodies). Retried here with
  exponential backoff; if it persists, the task fails and Airflow's own task retries take over.
- ``UserApiRequestRejected``: any other 4xx. The request itself is wrong; retrying cannot help.
- ``InvalidUserPayload``: the data broke its contract (a field missing or of the wrong type, fewer
  users than asked for; validation.py). Names the field and the user; retrying cannot help either.

Passwords, salts and password hashes are removed from every user here, before anything is written.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from include.user_processing.errors import InvalidUserPayload, UserApiRequestRejected
from include.user_processing.settings import (
    MAX_USERS_PER_PAGE,
    REQUEST_FIRST_WAIT,
    REQUEST_MAX_ATTEMPTS,
    USER_API_ENDPOINT,
)
from include.user_processing.validation import validate_users

if TYPE_CHECKING:
    import requests
    from airflow.providers.http.hooks.http import HttpHook

log = logging.getLogger(__name__)

SECRET_LOGIN_FIELDS = ("password", "salt", "md5", "sha1", "sha256")

# requests' (connect, read) timeouts, used unless the connection's extra sets "timeout".
DEFAULT_TIMEOUT_SECONDS = (10, 60)


class TransientUserApiError(Exception):
    """A failure that may go away on its own: retry it."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RequestRetries:
    """Retries of one page request, inside one task attempt (defaults: settings, i.e. Airflow config)."""

    max_attempts: int = REQUEST_MAX_ATTEMPTS
    first_wait_seconds: float = REQUEST_FIRST_WAIT.total_seconds()
    max_wait_seconds: float = 60.0

    def wait_seconds(self, attempt: int, error: BaseException | None) -> float:
        """Exponential backoff; a Retry-After header, when the API sends one, wins."""
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            return min(retry_after, self.max_wait_seconds)
        return min(self.first_wait_seconds * 2 ** (attempt - 1), self.max_wait_seconds)


def page_sizes(total_users: int) -> list[int]:
    """How many users to ask for on each page: full pages, then the remainder."""
    if total_users < 1:
        raise ValueError(f"the number of users to fetch must be at least 1, got {total_users}")
    pages = math.ceil(total_users / MAX_USERS_PER_PAGE)
    return [min(MAX_USERS_PER_PAGE, total_users - i * MAX_USERS_PER_PAGE) for i in range(pages)]


def request_timeout(hook: HttpHook) -> Any:
    """The connection's "timeout" extra if it sets one, else ours: requests' default is to wait forever.

    Seconds, or [connect, read] (JSON has no tuples; requests wants one).
    """
    timeout = hook.get_connection(hook.http_conn_id).extra_dejson.get("timeout", DEFAULT_TIMEOUT_SECONDS)
    return tuple(timeout) if isinstance(timeout, list) else timeout


def api_is_serving_users(response: requests.Response) -> bool:
    """HttpSensor check: True only for a 200 whose body holds at least one user.

    Outage answers (429, 5xx, an empty `results`, a non-JSON body) mean "not yet": keep poking.
    Any other 4xx means the sensor is misconfigured, so it fails at once with the reason.
    """
    try:
        users = _users_from_response(response.status_code, response.content, response.headers)
    except TransientUserApiError as error:
        log.info("User API not ready: %s", error)
        return False
    return bool(users)


def fetch_users_page(
    hook: HttpHook,
    *,
    seed: str,
    page: int,
    results: int,
    timeout: Any = DEFAULT_TIMEOUT_SECONDS,
    retries: RequestRetries = RequestRetries(),
) -> list[dict]:
    """Fetch one page of users, retrying transient failures; users come back validated, secrets removed."""
    import tenacity

    def log_retry(state: tenacity.RetryCallState) -> None:
        log.warning(
            "Page %d, attempt %d of %d failed (%s); retrying in %.1f s",
            page,
            state.attempt_number,
            retries.max_attempts,
            state.outcome.exception(),
            state.next_action.sleep,
        )

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientUserApiError),
        stop=tenacity.stop_after_attempt(retries.max_attempts),
        wait=lambda state: retries.wait_seconds(state.attempt_number, state.outcome.exception()),
        before_sleep=log_retry,
        reraise=True,
    )
    params = {"results": results, "page": page, "seed": seed}
    return retrying(_request_users, hook, params, timeout)


def _request_users(hook: HttpHook, params: dict[str, Any], timeout: Any) -> list[dict]:
    import requests

    try:
        response = hook.run(
            USER_API_ENDPOINT,
            data=params,
            extra_options={"check_response": False, "timeout": timeout},
        )
    except (requests.ConnectionError, requests.Timeout) as error:
        raise TransientUserApiError(f"request failed: {type(error).__name__}") from error
    users = _users_from_response(response.status_code, response.content, response.headers)
    if len(users) != params["results"]:
        # The API silently answers 1 user when it dislikes the `results` value.
        raise InvalidUserPayload(
            f"asked for {params['results']} users on page {params['page']}, got {len(users)}"
        )
    validate_users(users, page=params["page"])
    for user in users:
        strip_secrets(user)
    return users


def _users_from_response(status: int, body: bytes, headers: Any) -> list[dict]:
    """The `results` list of a response, or the reason there is none (never the body: it holds PII)."""
    if status == 429:
        raise TransientUserApiError("HTTP 429 Too Many Requests", _retry_after(headers))
    if status >= 500:
        raise TransientUserApiError(f"HTTP {status}")
    if status >= 400:
        raise UserApiRequestRejected(
            f"HTTP {status}: check the user_api connection's host and the endpoint {USER_API_ENDPOINT!r}"
        )
    try:
        payload = json.loads(body)
    except ValueError as error:
        raise TransientUserApiError(
            f"HTTP {status} but the body is not JSON ({len(body)} bytes, "
            f"Content-Type {headers.get('Content-Type')!r})"
        ) from error
    if not isinstance(payload, dict):
        raise InvalidUserPayload(f"expected a JSON object, got {type(payload).__name__}")
    if "error" in payload:
        raise TransientUserApiError(f"the API answered with an error: {payload['error']!r}")
    users = payload.get("results")
    if not isinstance(users, list):
        raise InvalidUserPayload("field 'results' is missing or not a list")
    if not users:
        raise TransientUserApiError("HTTP 200 with an empty 'results' list (a known outage answer)")
    return users


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: rare enough to fall back to our own backoff


def strip_secrets(user: dict) -> dict:
    """Remove the plaintext password, its salt and its hashes, in place."""
    login = user.get("login")
    if isinstance(login, dict):
        for field in SECRET_LOGIN_FIELDS:
            login.pop(field, None)
    return user
