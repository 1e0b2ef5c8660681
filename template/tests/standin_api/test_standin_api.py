"""The randomuser.me stand-in: shape, determinism, parameters, quirks, edge cases, faults, CLI."""

from __future__ import annotations

import hashlib
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from template.standin_user_api import generate_page, make_server
from template.standin_user_api.data import EDGE_CASE_ROWS
from template.standin_user_api.generator import AGE_REFERENCE_DATE, email_address
from template.standin_user_api.server import parse_fault_option

REPO_ROOT = Path(__file__).resolve().parents[3]
FIXTURE = REPO_ROOT / "tests/example/fixtures/randomuser/v1.4_single_BR_codeacademyuz.json"
# The only JSON types that vary between users of the real API.
VARYING_TYPES = {"location.postcode": {int, str}, "id.value": {str, type(None)}}
UUID_V4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
ISO_MS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
REAL_NATS = {
    "AU", "BR", "CA", "CH", "DE", "DK", "ES", "FI", "FR", "GB", "IE",
    "IN", "IR", "MX", "NL", "NO", "NZ", "RS", "TR", "UA", "US",
}  # fmt: skip


# ---------------------------------------------------------------- helpers


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def request(url: str, method: str = "GET", payload: object = None, timeout: float = 10) -> Answer:
    data = None if payload is None else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - our own http:// server
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:  # noqa: S310
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        with error:
            return Answer(error.code, dict(error.headers), error.read())


def flatten(value: object, path: tuple[str, ...] = ()) -> list[tuple[str, type]]:
    """[("name.first", str), ...] in key order."""
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in flatten(item, (*path, key))]
    return [(".".join(path), type(value))]


@pytest.fixture
def base_url():
    server = make_server()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host}:{port}"
    server.shutdown()
    server.server_close()
    thread.join()


def add_fault(base_url: str, **rule) -> None:
    answer = request(f"{base_url}/__standin__/faults", "POST", rule)
    assert answer.status == 201, answer.body


@pytest.fixture
def start_cli():
    """Start the CLI on a free port: returns the process and the base URL from its one stdout line."""
    processes: list[subprocess.Popen] = []

    def start(*args: str, hash_seed: str = "0") -> tuple[subprocess.Popen, str]:
        # A fixed command. (S603 is off in pyproject.toml, not in every lint run: hence RUF100.)
        process = subprocess.Popen(  # noqa: S603, RUF100
            [sys.executable, "-m", "template.standin_user_api", "--port", "0", *args],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONHASHSEED": hash_seed},  # str hashes differ between processes
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        processes.append(process)
        ready, _, _ = select.select([process.stdout], [], [], 15)
        line = process.stdout.readline() if ready else ""
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)\n", line)
        assert match, f"unexpected first line from the CLI: {line!r}"
        return process, match.group(1)

    yield start
    for process in processes:  # whatever a failing test left running
        if process.poll() is None:
            process.kill()
        process.communicate()


def stop_cli(process: subprocess.Popen, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=10)
    return process.returncode, stdout, stderr


# ---------------------------------------------------------------- shape and determinism


def test_users_have_the_structure_and_types_of_a_real_v1_4_answer():
    real = json.loads(FIXTURE.read_text(encoding="utf-8"))
    real_leaves = flatten(real["results"][0])
    page = generate_page("shape", 1, 500)

    assert list(page) == list(real) == ["results", "info"]
    assert flatten(page["info"]) == flatten(real["info"])
    for user in page["results"]:
        leaves = flatten(user)
        assert [path for path, _ in leaves] == [path for path, _ in real_leaves]
        for (path, kind), (_, real_kind) in zip(leaves, real_leaves, strict=True):
            assert kind in VARYING_TYPES.get(path, {real_kind}), (path, kind, user["nat"])


def test_info_echoes_the_request():
    assert generate_page("my seed", 7, 3)["info"] == {
        "seed": "my seed",
        "results": 3,
        "page": 7,
        "version": "1.4",
    }


def test_the_same_parameters_give_byte_identical_bodies():
    def body():
        page = generate_page("same", 2, 300, nat=["us", "IR"], exc=["picture"])
        return json.dumps(page, ensure_ascii=False, separators=(",", ":")).encode()

    assert body() == body()


def test_ages_count_to_a_fixed_date_not_today():
    for user in generate_page("ages", 1, 200)["results"]:
        born = user["dob"]["date"]
        year, month, day = int(born[:4]), int(born[5:7]), int(born[8:10])
        reference = AGE_REFERENCE_DATE
        assert user["dob"]["age"] == reference.year - year - ((reference.month, reference.day) < (month, day))
    assert AGE_REFERENCE_DATE.year == 2022


def test_a_smaller_page_is_a_prefix_of_a_larger_one():
    assert generate_page("prefix", 3, 40)["results"] == generate_page("prefix", 3, 400)["results"][:40]


def test_inc_and_exc_only_hide_fields():
    full = generate_page("fields", 1, 30)["results"]
    some = generate_page("fields", 1, 30, inc="email, NAME,location", exc="location")["results"]
    assert some == [{"name": user["name"], "email": user["email"]} for user in full]
    without_login = generate_page("fields", 1, 30, exc=["login"])["results"]
    assert without_login == [{key: value for key, value in user.items() if key != "login"} for user in full]


def test_seeds_and_pages_give_different_users():
    def uuids(seed, page):
        return {user["login"]["uuid"] for user in generate_page(seed, page, 100)["results"]}

    assert len(uuids("a", 1) | uuids("a", 2) | uuids("b", 1)) == 300


def test_nat_filter_is_part_of_the_seed_and_ignored_when_invalid():
    us_gb = generate_page("nat", 1, 200, nat="us,GB")["results"]
    assert {user["nat"] for user in us_gb} == {"US", "GB"}
    invalid = generate_page("nat", 1, 200, nat="us,xx")
    assert invalid == generate_page("nat", 1, 200)
    assert len({user["nat"] for user in invalid["results"]}) > 10


# ---------------------------------------------------------------- realistic quirks


@pytest.fixture(scope="module")
def users():
    return generate_page("quirks", 1, 3000)["results"]


def by_nat(users, *nats):
    return [user for user in users if user["nat"] in nats]


def test_all_twenty_one_nationalities_appear(users):
    assert {user["nat"] for user in users} == REAL_NATS


def test_postcodes_are_ints_or_strings_per_country(users):
    postcodes = {
        nat: [user["location"]["postcode"] for user in by_nat(users, nat)]
        for nat in ("AU", "CA", "GB", "NL", "NO", "US")
    }
    assert all(isinstance(code, int) and 200 <= code <= 9999 for code in postcodes["AU"])
    assert all(isinstance(code, int) for code in postcodes["US"])
    assert all(re.fullmatch(r"[A-Z]\d[A-Z] \d[A-Z]\d", code) for code in postcodes["CA"])
    assert all(re.fullmatch(r"[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}", code) for code in postcodes["GB"])
    assert all(re.fullmatch(r"\d{4} [A-Z]{2}", code) for code in postcodes["NL"])
    assert all(isinstance(code, str) for code in postcodes["NO"])
    assert any(code.startswith("0") for code in postcodes["NO"])


def test_ids_are_null_for_some_countries_and_broken_for_finland(users):
    for user in by_nat(users, "IR", "NZ", "TR", "UA"):
        assert user["id"] == {"name": "", "value": None}
    assert all(re.fullmatch(r"NaNNA\d{3}undefined", user["id"]["value"]) for user in by_nat(users, "FI"))
    assert all(re.fullmatch(r"\d{3}-\d\d-\d{4}", user["id"]["value"]) for user in by_nat(users, "US"))


def test_persian_text_with_ascii_emails(users):
    iranians = by_nat(users, "IR")
    persian = re.compile("[\u0600-\u06ff]")
    assert all(
        persian.search(user["name"]["first"] + user["location"]["street"]["name"]) for user in iranians
    )
    assert all(re.fullmatch(r"[a-z]+\.[a-z]+@example\.com", user["email"]) for user in iranians)
    # The rule itself, on a sample from the real API:
    assert email_address("تارا", "محمدخان") == "tr.mhmdkhn@example.com"


def test_apostrophes_trailing_spaces_and_homoglyphs(users):
    names = {user["name"]["first"] for user in by_nat(users, "UA")} | {user["name"]["last"] for user in users}
    streets = {user["nat"] + ":" + user["location"]["street"]["name"] for user in users}
    assert "V'yacheslav" in names
    assert "Bab'yuk" in names
    assert "'t Hart" in names
    assert "IE:O'Connell Street" in streets
    assert "FR:Place de L'Église" in streets
    assert any(street.startswith("BR:") and street.endswith(" ") for street in streets)
    assert any(street.startswith("RS:") and street.endswith(" ") for street in streets)
    assert any(street.startswith("RS:") and "\u0408" in street for street in streets)
    assert any(user["email"].startswith("'t") or ".'t" in user["email"] for user in by_nat(users, "NL"))
    assert {"Karadaş", "Røstad", "Bélanger"} <= names


def test_titles_phones_and_timezones(users):
    swiss_titles = {user["name"]["title"] for user in by_nat(users, "CH")}
    assert swiss_titles == {"Monsieur", "Madame", "Mademoiselle"}
    assert {user["name"]["title"] for user in by_nat(users, "US") if user["gender"] == "male"} == {"Mr"}
    assert all(re.fullmatch(r"[A-Z]\d\d [A-Z]\d\d-\d{4}", user["phone"]) for user in by_nat(users, "CA"))
    offsets = {user["location"]["timezone"]["offset"] for user in users}
    assert {"+5:30", "0:00", "-3:30"} <= offsets
    assert any("," in user["location"]["timezone"]["description"] for user in users)


def test_logins_hash_the_plaintext_password_with_the_salt(users):
    passwords = {user["login"]["password"] for user in users}
    assert "0007" in passwords
    for user in users[:200]:
        login = user["login"]
        salted = (login["password"] + login["salt"]).encode()
        assert re.fullmatch(r"[A-Za-z0-9]{8}", login["salt"])
        assert login["md5"] == hashlib.md5(salted, usedforsecurity=False).hexdigest()
        assert login["sha1"] == hashlib.sha1(salted, usedforsecurity=False).hexdigest()
        assert login["sha256"] == hashlib.sha256(salted).hexdigest()
        assert UUID_V4.fullmatch(login["uuid"])
        assert re.fullmatch(r"[a-z]+\d{3}", login["username"])


def test_dates_coordinates_and_pictures_look_like_the_real_ones(users):
    for user in users[:200]:
        assert ISO_MS_UTC.fullmatch(user["dob"]["date"])
        assert ISO_MS_UTC.fullmatch(user["registered"]["date"])
        assert re.fullmatch(r"-?\d{1,3}\.\d{4}", user["location"]["coordinates"]["latitude"])
        folder = "men" if user["gender"] == "male" else "women"
        number = re.fullmatch(
            rf"https://randomuser\.me/api/portraits/{folder}/(\d+)\.jpg", user["picture"]["large"]
        )
        assert number
        assert user["picture"]["thumbnail"].endswith(f"/thumb/{folder}/{number.group(1)}.jpg")
        assert user["email"].endswith("@example.com")
        assert " " not in user["email"]


def test_usernames_and_emails_repeat_within_500_users():
    users = generate_page("abc", 1, 500)["results"]
    usernames = Counter(user["login"]["username"] for user in users)
    emails = Counter(user["email"] for user in users)
    assert max(usernames.values()) > 1
    assert max(emails.values()) > 1
    assert len({user["login"]["uuid"] for user in users}) == 500


# ---------------------------------------------------------------- edge-case mode


def test_edge_case_mode_puts_hostile_values_into_the_first_users():
    plain = generate_page("edges", 1, 12)["results"]
    edgy = generate_page("edges", 1, 12, edge_cases=True)["results"]
    values = [
        value
        for user in edgy[:8]
        for value in (
            user["name"]["first"],
            user["name"]["last"],
            user["location"]["city"],
            user["login"]["username"],
            user["email"],
        )
    ]
    assert all(isinstance(value, str) for value in values)
    joined = "".join(values)
    for needle in ('"', ",", "\\", "\n", "\r\n", ";", "\t"):
        assert needle in joined, repr(needle)
    assert "\\N" in values
    assert "" in values
    assert any(value != value.strip() and value.strip() for value in values)
    assert any(ord(char) > 0xFFFF for char in joined)  # 4-byte UTF-8
    assert [user["name"] for user in edgy[8:]] == [user["name"] for user in plain[8:]]
    assert [user["login"]["uuid"] for user in edgy] == [user["login"]["uuid"] for user in plain]
    assert len(EDGE_CASE_ROWS) == 8


def test_edge_case_mode_gives_every_user_a_unique_special_password_with_matching_hashes():
    logins = [user["login"] for user in generate_page("edges", 1, 50, edge_cases=True)["results"]]
    passwords = [login["password"] for login in logins]
    assert len(set(passwords)) == len(passwords)
    assert all(all(char in password for char in ",\"\\' ") for password in passwords)
    for login in logins:
        salted = (login["password"] + login["salt"]).encode()
        assert login["sha256"] == hashlib.sha256(salted).hexdigest()


def test_edge_cases_can_be_switched_on_and_off_over_http(base_url):
    url = f"{base_url}/api/1.4/?seed=edges&results=12"
    assert request(f"{base_url}/__standin__/edge-cases", "POST", {"enabled": True}).status == 200
    assert request(url).json() == generate_page("edges", 1, 12, edge_cases=True)
    assert request(f"{base_url}/__standin__/edge-cases", "POST", {"enabled": False}).status == 200
    assert request(url).json() == generate_page("edges", 1, 12)


# ---------------------------------------------------------------- HTTP: routes and parameters


def test_api_routes_serve_the_same_compact_utf8_json(base_url):
    query = "?seed=routes&results=5&nat=ir"
    answers = [request(base_url + path + query) for path in ("/api", "/api/", "/api/1.4", "/api/1.4/")]
    assert {answer.status for answer in answers} == {200}
    assert len({answer.body for answer in answers}) == 1
    answer = answers[0]
    assert answer.headers["Content-Type"] == "application/json; charset=utf-8"
    assert (
        answer.body
        == json.dumps(
            generate_page("routes", 1, 5, nat=["IR"]), ensure_ascii=False, separators=(",", ":")
        ).encode()
    )
    assert "ی".encode() in answer.body
    assert b"\\u" not in answer.body


@pytest.mark.parametrize("path", ["/api/9.9/", "/api/1.3/", "/users", "/api/1.4/extra"])
def test_unknown_paths_and_versions_are_404(base_url, path):
    assert request(base_url + path).status == 404


def test_root_says_what_this_is(base_url):
    answer = request(base_url + "/")
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert b"randomuser.me" in answer.body
    assert b"/api/1.4/" in answer.body


@pytest.mark.parametrize("results", ["0", "6000", "2.5", "abc", "-3", ""])
def test_bad_results_silently_become_one(base_url, results):
    page = request(f"{base_url}/api/?seed=s&results={results}").json()
    assert len(page["results"]) == 1
    assert page["info"]["results"] == 1


def test_results_up_to_5000_are_served(base_url):
    page = request(f"{base_url}/api/?seed=s&results=5000").json()
    assert len(page["results"]) == page["info"]["results"] == 5000


@pytest.mark.parametrize(
    ("page", "expected"), [("0", 1), ("-2", 1), ("10001", 1), ("x", 1), ("10000", 10000)]
)
def test_page_bounds(base_url, page, expected):
    assert request(f"{base_url}/api/?seed=s&page={page}").json()["info"]["page"] == expected


def test_query_parameters_reach_the_generator(base_url):
    page = request(f"{base_url}/api/?seed=q&results=20&nat=US,gb&inc=name,nat,login&exc=login&noinfo").json()
    assert page == {"results": generate_page("q", 1, 20, nat="us,gb", inc="name,nat")["results"]}
    assert list(page["results"][0]) == ["name", "nat"]


def test_missing_seed_gets_a_random_one_and_gender_applies_only_then(base_url):
    first = request(f"{base_url}/api/?results=30&gender=female").json()
    second = request(f"{base_url}/api/?results=30&gender=female").json()
    assert re.fullmatch(r"[0-9a-f]{16}", first["info"]["seed"])
    assert first["info"]["seed"] != second["info"]["seed"]
    assert {user["gender"] for user in first["results"]} == {"female"}
    seeded = request(f"{base_url}/api/?results=30&gender=female&seed=g").json()
    assert {user["gender"] for user in seeded["results"]} == {"male", "female"}


# ---------------------------------------------------------------- HTTP: faults


@pytest.mark.parametrize(
    ("status", "content_type", "marker"),
    [
        (500, "text/plain", b"Internal Server Error"),
        (502, "text/html", b"Bad gateway"),
        (503, "text/html", b"Service unavailable"),
        (504, "text/html", b"Gateway time-out"),
        (418, "text/plain", b"418"),
    ],
)
def test_status_faults(base_url, status, content_type, marker):
    add_fault(base_url, mode="status", status=status)
    answer = request(f"{base_url}/api/")
    assert answer.status == status
    assert answer.headers["Content-Type"].startswith(content_type)
    assert marker in answer.body
    assert request(f"{base_url}/api/").status == 200  # times defaults to 1


def test_cloudflare_pages_look_like_cloudflare(base_url):
    add_fault(base_url, mode="status", status=502)
    assert b"Cloudflare" in request(f"{base_url}/api/").body


def test_429_is_json_without_retry_after(base_url):
    add_fault(base_url, mode="status", status=429)
    answer = request(f"{base_url}/api/?results=250")
    assert answer.status == 429
    assert "Retry-After" not in answer.headers
    assert answer.json()["error"].startswith("Whoa, ease up there cowboy. You've requested 250 users")


def test_after_and_times_and_the_request_log(base_url):
    add_fault(base_url, mode="status", status=503, times=2, after=1)
    statuses = [request(f"{base_url}/api/?seed=log&results={n}").status for n in range(1, 5)]
    assert statuses == [200, 503, 503, 200]
    log = request(f"{base_url}/__standin__/requests").json()
    assert [entry["fault"] for entry in log] == [None, "status", "status", None]
    assert [entry["status"] for entry in log] == statuses
    assert log[0] == {"path": "/api/", "query": {"seed": "log", "results": "1"}, "status": 200, "fault": None}
    assert request(f"{base_url}/__standin__/requests", "DELETE").status == 204
    assert request(f"{base_url}/__standin__/requests").json() == []


def test_rules_apply_in_fifo_order_and_forever_until_cleared(base_url):
    add_fault(base_url, mode="status", status=500)
    add_fault(base_url, mode="empty_results", times=-1)
    assert request(f"{base_url}/api/").status == 500
    for _ in range(3):
        assert request(f"{base_url}/api/").json()["results"] == []
    assert request(f"{base_url}/__standin__/faults").json() == [
        {"mode": "empty_results", "times": -1, "after": 0}
    ]
    assert request(f"{base_url}/__standin__/faults", "DELETE").status == 204
    assert len(request(f"{base_url}/api/").json()["results"]) == 1


def test_control_endpoints_are_never_faulted_nor_logged(base_url):
    add_fault(base_url, mode="status", status=500)
    assert request(f"{base_url}/__standin__/requests").status == 200
    assert request(f"{base_url}/").status == 200
    assert request(f"{base_url}/api/").status == 500
    assert [entry["path"] for entry in request(f"{base_url}/__standin__/requests").json()] == ["/api/"]


def test_timeout_delays_one_answer_without_blocking_others(base_url):
    add_fault(base_url, mode="timeout", seconds=1.5)
    slow: dict = {}

    def slow_request():
        started = time.monotonic()
        slow["answer"] = request(f"{base_url}/api/?seed=slow", timeout=10)
        slow["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=slow_request)
    thread.start()
    deadline = time.monotonic() + 5
    while not request(f"{base_url}/__standin__/requests").json():  # until the slow one took the rule
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    assert request(f"{base_url}/api/?seed=fast").status == 200
    assert time.monotonic() - started < 1.0
    thread.join()
    assert slow["seconds"] >= 1.5
    assert slow["answer"].json() == generate_page("slow", 1, 1)


def test_timeout_trips_a_client_timeout(base_url):
    add_fault(base_url, mode="timeout", seconds=1)
    with pytest.raises((TimeoutError, urllib.error.URLError)):
        request(f"{base_url}/api/", timeout=0.2)


def test_outage_and_error_bodies(base_url):
    add_fault(base_url, mode="empty_results")
    add_fault(base_url, mode="error_object")
    add_fault(base_url, mode="not_json")
    empty = request(f"{base_url}/api/?results=5")
    assert empty.status == 200
    assert empty.body == b'{"results":[],"info":{"seed":"d3adb33f","results":1,"page":1,"version":"1.4"}}'
    error = request(f"{base_url}/api/")
    assert error.status == 200
    assert error.json() == {
        "error": "Uh oh, something has gone wrong. Please tweet us @randomapi about the issue. Thank you."
    }
    html = request(f"{base_url}/api/")
    assert html.status == 200
    assert html.headers["Content-Type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        json.loads(html.body)


def test_truncated_body(base_url):
    url = f"{base_url}/api/?seed=cut&results=20"
    add_fault(base_url, mode="truncated")
    truncated = request(url)
    whole = request(url).body
    assert truncated.status == 200
    assert truncated.body == whole[: len(whole) // 2]
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.body)


@pytest.mark.parametrize(
    ("field", "still_there"),
    [("login.uuid", lambda user: "uuid" not in user["login"] and "username" in user["login"]),
     ("email", lambda user: "email" not in user and "name" in user),
     ("login", lambda user: "login" not in user),
     ("no.such.path", lambda user: "uuid" in user["login"])],
)  # fmt: skip
def test_drop_field(base_url, field, still_there):
    add_fault(base_url, mode="drop_field", field=field)
    users = request(f"{base_url}/api/?seed=drop&results=10").json()["results"]
    assert len(users) == 10
    assert all(still_there(user) for user in users)


def test_street_as_string(base_url):
    add_fault(base_url, mode="street_as_string")
    users = request(f"{base_url}/api/?seed=street&results=10").json()["results"]
    expected = generate_page("street", 1, 10)["results"]
    for user, original in zip(users, expected, strict=True):
        street = original["location"]["street"]
        assert user["location"]["street"] == f"{street['number']} {street['name']}".lower()


def test_extra_field(base_url):
    add_fault(base_url, mode="extra_field")
    page = request(f"{base_url}/api/?seed=extra&results=3").json()
    assert "extra_field" in page
    assert all("extra_field" in user for user in page["results"])


def test_results_one(base_url):
    add_fault(base_url, mode="results_one")
    page = request(f"{base_url}/api/?seed=one&results=10").json()
    assert len(page["results"]) == page["info"]["results"] == 1


def test_duplicate_uuids(base_url):
    add_fault(base_url, mode="duplicate_uuids")
    users = request(f"{base_url}/api/?seed=dup&results=10").json()["results"]
    uuids = [user["login"]["uuid"] for user in users]
    assert len(uuids) - len(set(uuids)) >= 2
    assert len({user["location"]["coordinates"]["latitude"] for user in users}) == 10  # different people


@pytest.mark.parametrize(
    "rule",
    [
        {"mode": "nope"},
        {"mode": "status", "status": 99},
        {"mode": "drop_field"},
        {"mode": "status", "times": 0},
        {"mode": "timeout", "seconds": "soon"},
        {"mode": "empty_results", "status": 500},
        ["status"],
    ],
)
def test_bad_rules_are_rejected(base_url, rule):
    answer = request(f"{base_url}/__standin__/faults", "POST", rule)
    assert answer.status == 400
    assert "error" in answer.json()
    assert request(f"{base_url}/__standin__/faults").json() == []


def test_bad_control_requests(base_url):
    assert request(f"{base_url}/__standin__/edge-cases", "POST", {"enabled": "yes"}).status == 400
    assert request(f"{base_url}/__standin__/nothing", "POST", {}).status == 404
    assert request(f"{base_url}/__standin__/nothing", "DELETE").status == 404


def test_make_server_takes_initial_faults_and_checks_them():
    server = make_server(faults=[{"mode": "status", "status": 503}], edge_cases=True)
    try:
        assert server.faults.describe() == [{"mode": "status", "times": 1, "after": 0, "status": 503}]
        assert server.edge_cases is True
    finally:
        server.server_close()
    with pytest.raises(ValueError, match="unknown fault mode"):
        make_server(faults=[{"mode": "slow"}])


def test_cli_fault_syntax():
    assert parse_fault_option("status=500,times=2") == {"mode": "status", "status": "500", "times": "2"}
    assert parse_fault_option("timeout=0.5") == {"mode": "timeout", "seconds": "0.5"}
    assert parse_fault_option("drop_field=login.uuid,after=1") == {
        "mode": "drop_field",
        "field": "login.uuid",
        "after": "1",
    }
    assert parse_fault_option("mode=status, status=503") == {"mode": "status", "status": "503"}
    assert parse_fault_option("empty_results,times=-1") == {"mode": "empty_results", "times": "-1"}


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "unknown fault mode ''"),
        ("bogus", "unknown fault mode 'bogus'"),
        ("status=abc", "status must be a whole number"),
        ("empty_results=3", "unknown option"),
        ("timeout=nan", "seconds must be a number"),
    ],
)
def test_cli_fault_syntax_errors(spec, reason):
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_fault_option(spec)


# ---------------------------------------------------------------- CLI


def test_two_cli_processes_serve_identical_bytes_and_exit_cleanly_on_sigterm(start_cli):
    url = "/api/1.4/?seed=processes&results=50&nat=ir,no,ua&exc=picture"
    first, first_url = start_cli(hash_seed="1")
    second, second_url = start_cli(hash_seed="2")
    bodies = [request(first_url + url).body, request(second_url + url).body]
    results = [stop_cli(first), stop_cli(second)]
    assert bodies[0] == bodies[1]
    assert len(json.loads(bodies[0])["results"]) == 50
    for returncode, stdout, stderr in results:
        assert returncode == 0
        assert stdout == ""  # nothing after the listening line
        assert "GET /api/1.4/?seed=processes" in stderr  # one short line per request...
        assert "@example.com" not in stderr  # ...never the body


def test_cli_flags_start_with_faults_and_edge_cases_and_sigint_exits_cleanly(start_cli):
    process, url = start_cli("--fault", "status=503", "--edge-cases")
    assert request(url + "/api/?seed=cli").status == 503
    assert request(url + "/api/?seed=cli&results=2").json() == generate_page("cli", 1, 2, edge_cases=True)
    returncode, _, _ = stop_cli(process, signal.SIGINT)
    assert returncode == 0


def test_cli_rejects_a_bad_fault():
    finished = subprocess.run(
        [sys.executable, "-m", "template.standin_user_api", "--port", "0", "--fault", "bogus"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert finished.returncode == 2
    assert "unknown fault mode 'bogus'" in finished.stderr
