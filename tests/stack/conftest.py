"""Fixtures for the compose stack tests: a REST client, and the stack's process logs on failure."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import pytest

from scripts.compose_stack import StackFailed


@dataclass
class ApiClient:
    """Airflow's public REST API v2, logged in with a JWT from POST /auth/token."""

    base_url: str
    token: str = ""

    def login(self, username: str, password: str) -> ApiClient:
        answer = self.request("POST", "/auth/token", {"username": username, "password": password})
        self.token = answer["access_token"]
        return self

    def request(self, method: str, path: str, body: object | None = None) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(  # noqa: S310 - http:// to the test's own api-server
            self.base_url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - as above
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:2000]
            raise ApiError(error.code, f"{method} {path} -> {error.code}: {detail}") from None
        return json.loads(payload) if payload else None


class ApiError(StackFailed):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """On a failed stack test, show the end of every process's output under the failure."""
    outcome = yield
    report = outcome.get_result()
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and stack is not None:
        report.sections.append(("compose stack: last lines of each process", stack.diagnostics()))
