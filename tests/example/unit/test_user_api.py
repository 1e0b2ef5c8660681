"""Validation and classification of user API answers (pure functions; HTTP itself is tested end to end)."""

from __future__ import annotations

import copy
import json
import re

import pytest
import requests

from include.user_processing.errors import InvalidUserPayload, UserApiRequestRejected
from include.user_processing.user_api import (
    SECRET_LOGIN_FIELDS,
    RequestRetries,
    TransientUserApiError,
    _users_from_response,
    api_is_serving_users,
    page_sizes,
    strip_secrets,
)
from include.user_processing.validation import is_valid_user, user_problem, validate_user, validate_users
from tests.example.conftest import FIXTURES

SAMPLE = json.loads((FIXTURES / "randomuser" / "v1.4_single_BR_codeacademyuz.json").read_text())
OUTAGE_BODY = b'{"results":[],"info":{"seed":"d3adb33f","results":1,"page":1,"version":"1.4"}}'


def response(status: int, body: bytes, headers: dict | None = None) -> requests.Response:
    real = requests.Response()
    real.status_code = status
    real._content = body
    real.headers.update(headers or {})
    return real


def user() -> dict:
    return copy.deepcopy(SAMPLE["results"][0])


@pytest.mark.parametrize(
    ("total", "expected"),
    [(1, [1]), (5000, [5000]), (5001, [5000, 1]), (12000, [5000, 5000, 2000])],
)
def test_page_sizes_never_exceed_the_api_maximum(total, expected):
    assert page_sizes(total) == expected


def test_page_sizes_reject_zero_users():
    with pytest.raises(ValueError, match="at least 1"):
        page_sizes(0)


def test_a_real_response_is_accepted():
    assert _users_from_response(200, json.dumps(SAMPLE).encode(), {}) == SAMPLE["results"]


@pytest.mark.parametrize(
    ("status", "body", "headers", "reason"),
    [
        (500, b"Internal Server Error", {}, "HTTP 500"),
        (503, b"<html>Cloudflare</html>", {}, "HTTP 503"),
        (429, b'{"error": "Whoa, ease up there cowboy."}', {}, "HTTP 429"),
        (200, OUTAGE_BODY, {}, "empty 'results'"),
        (200, b'{"error": "Uh oh, something has gone wrong."}', {}, "Uh oh"),
        (200, b"<html>proxy error</html>", {"Content-Type": "text/html"}, "not JSON"),
        (200, json.dumps(SAMPLE).encode()[:100], {}, "not JSON"),
    ],
)
def test_outage_answers_are_transient(status, body, headers, reason):
    with pytest.raises(TransientUserApiError, match=reason):
        _users_from_response(status, body, headers)


def test_transient_errors_never_quote_the_body():
    truncated = json.dumps(SAMPLE).encode()[:300]  # holds a name, an email: PII
    with pytest.raises(TransientUserApiError) as caught:
        _users_from_response(200, truncated, {})
    assert "Oliveira" not in str(caught.value)


def test_429_honours_retry_after():
    with pytest.raises(TransientUserApiError) as caught:
        _users_from_response(429, b"{}", {"Retry-After": "7"})
    assert caught.value.retry_after == 7
    assert RequestRetries().wait_seconds(1, caught.value) == 7


def test_backoff_doubles_and_is_capped():
    retries = RequestRetries(first_wait_seconds=2, max_wait_seconds=10)
    assert [retries.wait_seconds(attempt, None) for attempt in (1, 2, 3, 4)] == [2, 4, 8, 10]


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_other_client_errors_fail_fast(status):
    with pytest.raises(UserApiRequestRejected, match=f"HTTP {status}"):
        _users_from_response(status, b"Not Found", {})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[]", "expected a JSON object"),
        (b'{"info": {}}', "'results' is missing"),
        (b'{"results": {"a": 1}}', "'results' is missing or not a list"),
    ],
)
def test_an_unusable_envelope_is_invalid(body, message):
    with pytest.raises(InvalidUserPayload, match=message):
        _users_from_response(200, body, {})


def test_sensor_check_passes_only_when_users_are_served():
    assert api_is_serving_users(response(200, json.dumps(SAMPLE).encode())) is True
    assert api_is_serving_users(response(200, OUTAGE_BODY)) is False
    assert api_is_serving_users(response(503, b"down")) is False
    assert api_is_serving_users(response(429, b"{}")) is False
    with pytest.raises(UserApiRequestRejected):
        api_is_serving_users(response(404, b"Not Found"))


def test_real_samples_are_valid():
    for name in ("v1.4_single_BR_codeacademyuz.json", "v1.4_single_BR_fmaver-airflow.json"):
        payload = json.loads((FIXTURES / "randomuser" / name).read_text())
        validate_user(payload["results"][0], page=1, index=0)
    page = json.loads((FIXTURES / "randomuser" / "v1.3_seed-abc_page1_50users_drawers.json").read_text())
    for index, quirky in enumerate(page["results"]):  # null ids, str postcodes, no `registered`
        validate_user(quirky, page=1, index=index)


def broken(change) -> dict:
    bad = user()
    change(bad)
    return bad


@pytest.mark.parametrize(
    ("bad_user", "message"),
    [
        (broken(lambda u: u.pop("login")), "field 'login.uuid' is missing"),
        (broken(lambda u: u["login"].pop("uuid")), "field 'login.uuid' is missing"),
        (broken(lambda u: u["login"].update(uuid="not-a-uuid")), "'login.uuid' is not a lower-case UUID"),
        (broken(lambda u: u["login"].update(uuid=12345)), "'login.uuid' is a int, expected str"),
        (broken(lambda u: u.pop("email")), "field 'email' is missing"),
        (broken(lambda u: u.update(email=["a@b"])), "'email' is a list, expected str"),
        (broken(lambda u: u["name"].update(first=None)), "field 'name.first' is missing"),
        (broken(lambda u: u.update(name="Damas Oliveira")), "field 'name' is a str, expected an object"),
        (broken(lambda u: u["location"].pop("country")), "field 'location.country' is missing"),
        (
            broken(lambda u: u["location"].update(postcode=[1])),
            "'location.postcode' is a list, expected str or int",
        ),
        (broken(lambda u: u["location"].update(postcode=True)), "'location.postcode' is a bool"),
        (broken(lambda u: u["registered"].update(date="yesterday")), "'registered.date' is not an ISO-8601"),
        (broken(lambda u: u.update(gender=1)), "field 'gender' is a int, expected str"),
        ("just a string", "expected an object, got str"),
    ],
)
def test_invalid_users_name_the_field_and_the_user(bad_user, message):
    with pytest.raises(InvalidUserPayload) as caught:
        validate_user(bad_user, page=3, index=41)
    assert "user 41 on page 3" in str(caught.value)
    assert message in str(caught.value)
    assert not is_valid_user(bad_user)  # the fast check agrees
    with pytest.raises(InvalidUserPayload, match=f"user 1 on page 3: .*{re.escape(message)}"):
        validate_users([user(), bad_user, user()], page=3)


def test_the_fast_check_agrees_with_the_plain_one_on_real_users():
    page = json.loads((FIXTURES / "randomuser" / "v1.3_seed-abc_page1_50users_drawers.json").read_text())
    users = [SAMPLE["results"][0], *page["results"]]
    assert all(user_problem(one) is None and is_valid_user(one) for one in users)
    validate_users(users, page=1)


def test_schema_drift_in_fields_we_do_not_read_is_harmless():
    drifted = user()
    drifted["location"]["street"] = "6972 Rua Vinte E Quatro de Outubro"  # the pre-1.3 shape
    drifted["brand_new_field"] = {"anything": True}
    del drifted["id"], drifted["picture"], drifted["dob"]
    validate_user(drifted, page=1, index=0)


def test_strip_secrets_removes_the_password_salt_and_hashes():
    stripped = strip_secrets(user())
    assert not set(SECRET_LOGIN_FIELDS) & set(stripped["login"])
    assert stripped["login"]["uuid"] == SAMPLE["results"][0]["login"]["uuid"]
    assert "cheese1" not in json.dumps(stripped)
