"""HTTP stand-in for the randomuser.me API 1.4, with fault injection for tests.

    python -m template.standin_user_api --host 127.0.0.1 --port 8000 [--edge-cases] [--fault SPEC]...

Routes
    GET /                   what this is (plain text)
    GET /api/  /api/1.4/    users, with or without the trailing slash; any other version: 404
    /__standin__/...        control endpoints (below); never faulted, never in the request log

Query parameters, sanitised like the real API
    results   1-5000; anything else (0, -3, 6000, 2.5, abc) silently becomes 1
    page      1-10000; anything else becomes 1
    seed      any string; absent: a random 16-hex seed, echoed in info.seed
    nat       comma list of AU BR CA CH DE DK ES FI FR GB IE IN IR MX NL NO NZ RS TR UA US, any
              case; one unknown code and the filter is dropped (random nationalities)
    inc, exc  comma lists of gender,name,location,email,login,registered,dob,phone,cell,id,
              picture,nat; inc (default all) minus exc
    gender    male or female; ignored when a seed is given (as the real API does)
    noinfo    present: no "info" in the answer
    Others (format, password, lego, callback, dl) are ignored: the answer is always compact JSON.

Differences from the real API, on purpose
    - `age` counts up to 2022-05-23 (generator.AGE_REFERENCE_DATE), not today: a page stays
      byte-identical forever.
    - User i of a page depends only on (seed, page, i, nat): a smaller `results` gives a prefix of a
      larger one, and inc/exc only hide fields (the real API reshuffles later users:
      randomuser.me issue #155).
    - The same seed gives other people than the real API (a different generator), and no
      rate limit applies unless injected.

Fault injection
    Rules wait in a FIFO queue and apply to /api requests only. The first rule lets `after`
    requests through untouched, then affects the next `times` requests (-1: all of them), then
    leaves the queue and the next rule takes over.

    POST   /__standin__/faults      {"mode": "status", "status": 503, "times": 2, "after": 0}
    GET    /__standin__/faults      the rules still queued
    DELETE /__standin__/faults      drop all rules
    POST   /__standin__/edge-cases  {"enabled": true}: the first 8 users of every page carry
                                    quotes, commas, backslashes, newlines, "\\N", emoji...
    GET    /__standin__/requests    [{"path": ..., "query": {...}, "status": 200, "fault": null}, ...]
    DELETE /__standin__/requests    clear that log

    Modes (options, default):
    status            (status, 500) 500: text "Internal Server Error"; 502/503/504: a Cloudflare
                      HTML error page; 429: JSON {"error": "Whoa, ease up there cowboy..."}
                      without Retry-After; other codes: a short text
    timeout           (seconds, 30) wait, then answer normally; other requests go on meanwhile
    empty_results     200 {"results":[],"info":{"seed":"d3adb33f","results":1,...}} (2026 outages)
    error_object      200 {"error": "Uh oh, something has gone wrong. ..."} (the documented error)
    not_json          200 text/html: a proxy's error page
    truncated         200, the first half of the normal body
    drop_field        (field, required) remove a dotted path, e.g. "login.uuid", from every user
    street_as_string  location.street as one string, "1861 jan pieterszoon coenstraat" (pre-1.3)
    extra_field       an unknown key "extra_field" in every user and in the envelope
    results_one       one user, whatever `results` asked for (the real API on bad input)
    duplicate_uuids   the 3rd to 6th users reuse the uuid of the user two places before them
                      (u0 u1 u0 u1 u0 u1): two duplicates or more from results=4 on
"""

from __future__ import annotations

import contextlib
import json
import math
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from http.client import responses
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from template.standin_user_api.generator import generate_page

API_PATHS = frozenset({"/api", "/api/", "/api/1.4", "/api/1.4/"})
CONTROL_PREFIX = "/__standin__/"
JSON_TYPE = "application/json; charset=utf-8"
TEXT_TYPE = "text/plain; charset=utf-8"
HTML_TYPE = "text/html; charset=UTF-8"

FAULT_MODES = (
    "status", "timeout", "empty_results", "error_object", "not_json", "truncated",
    "drop_field", "street_as_string", "extra_field", "results_one", "duplicate_uuids",
)  # fmt: skip
# The option a mode takes, so the CLI can say "status=503" for {"mode": "status", "status": 503}.
MODE_OPTION = {"status": "status", "timeout": "seconds", "drop_field": "field"}

ABOUT = (
    "Stand-in for the randomuser.me API 1.4: a test double of this template, not randomuser.me.\n"
    "Users:   /api/1.4/?results=5&seed=demo\n"
    "Control: /__standin__/faults, /__standin__/edge-cases, /__standin__/requests\n"
    "Reference: template/standin_user_api/server.py\n"
)
# Bodies the real service has answered with (randomuser.me issues #159, #184, #232, #240).
OUTAGE_BODY = {"results": [], "info": {"seed": "d3adb33f", "results": 1, "page": 1, "version": "1.4"}}
ERROR_OBJECT = {
    "error": "Uh oh, something has gone wrong. Please tweet us @randomapi about the issue. Thank you."
}
RATE_LIMITED = (
    "Whoa, ease up there cowboy. You've requested {n} users in the last minute. "
    "Help us keep this service free and spare some bandwidth for other users please :)"
)
CLOUDFLARE_PAGE = """<!DOCTYPE html>
<html lang="en-US"><head><title>randomuser.me | {code}: {title}</title></head>
<body><div id="cf-error-details"><h1>{title}</h1><span>Error code {code}</span>
<p>Cloudflare Ray ID: 8e2b7c1d5f3a9e40 &bull; Performance &amp; security by Cloudflare</p>
</div></body></html>
"""
CLOUDFLARE_TITLES = {502: "Bad gateway", 503: "Service unavailable", 504: "Gateway time-out"}
PROXY_ERROR_PAGE = b"""<html>
<head><title>502 Bad Gateway</title></head>
<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body>
</html>
"""


@dataclass
class FaultRule:
    mode: str
    times: int = 1
    after: int = 0
    status: int = 500
    seconds: float = 30.0
    field: str = ""

    @classmethod
    def from_spec(cls, spec: Mapping) -> FaultRule:
        """Validate a rule given as JSON or CLI text (numbers may still be strings)."""
        options = dict(spec)
        mode = options.pop("mode", None)
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; expected one of: {', '.join(FAULT_MODES)}")
        allowed = {"times", "after", MODE_OPTION.get(mode)}
        if unknown := sorted(set(options) - allowed):
            raise ValueError(f"unknown option(s) for mode {mode!r}: {', '.join(unknown)}")
        rule = cls(
            mode=mode,
            times=_whole_number(options.get("times", 1), "times"),
            after=_whole_number(options.get("after", 0), "after"),
            status=_whole_number(options.get("status", 500), "status"),
            seconds=_number(options.get("seconds", 30.0), "seconds"),
            field=str(options.get("field", "")),
        )
        if rule.times == 0 or rule.times < -1:
            raise ValueError("times must be 1 or more, or -1 for every request")
        if rule.after < 0 or rule.seconds < 0:
            raise ValueError("after and seconds cannot be negative")
        if not 100 <= rule.status <= 599:
            raise ValueError(f"status must be an HTTP status code, got {rule.status}")
        if mode == "drop_field" and not rule.field:
            raise ValueError('drop_field needs a "field", such as "login.uuid"')
        return rule

    def describe(self) -> dict:
        described = {"mode": self.mode, "times": self.times, "after": self.after}
        if option := MODE_OPTION.get(self.mode):
            described[option] = getattr(self, option)
        return described


def parse_fault_option(text: str) -> dict:
    """CLI form of a rule: "status=503,times=2" -> {"mode": "status", "status": "503", "times": "2"}.

    The first item names the mode, with its option's value if it takes one ("timeout=5",
    "drop_field=login.uuid", "empty_results"); "mode=status,status=503" works too.
    """
    first, *rest = [item.strip() for item in text.split(",") if item.strip()] or [""]
    name, _, value = first.partition("=")
    spec = {"mode": value} if name == "mode" else {"mode": name}
    if name != "mode" and value:
        spec[MODE_OPTION.get(name, name)] = value
    for item in rest:
        key, _, value = item.partition("=")
        spec[key.strip()] = value.strip()
    FaultRule.from_spec(spec)  # fail now, with the reason, rather than at the first request
    return spec


class FaultQueue:
    """Thread-safe FIFO of fault rules; only the first rule is ever active."""

    def __init__(self, rules: Iterable[FaultRule] = ()) -> None:
        self._rules = deque(rules)
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def describe(self) -> list[dict]:
        with self._lock:
            return [rule.describe() for rule in self._rules]

    def next_fault(self) -> FaultRule | None:
        """The rule that applies to the request now arriving, if any; counts the request."""
        with self._lock:
            if not self._rules:
                return None
            rule = self._rules[0]
            if rule.after > 0:
                rule.after -= 1
                return None
            if rule.times > 0:
                rule.times -= 1
                if rule.times == 0:
                    self._rules.popleft()
            return rule


class RequestLog:
    """Thread-safe list of the /api requests answered, for tests to inspect."""

    def __init__(self) -> None:
        self._entries: list[dict] = []
        self._lock = threading.Lock()

    def add(self, entry: dict) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[dict]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # closing must not wait for requests sleeping in a "timeout" fault

    def __init__(self, address: tuple[str, int], faults: Iterable[Mapping] = (), edge_cases: bool = False):
        # Rules first: a bad one must fail before a socket is opened.
        self.faults = FaultQueue(FaultRule.from_spec(spec) for spec in faults)
        self.edge_cases = edge_cases
        self.request_log = RequestLog()
        super().__init__(address, StandinRequestHandler)


def make_server(
    host: str = "127.0.0.1", port: int = 0, faults: Iterable[Mapping] | None = None, edge_cases: bool = False
) -> StandinServer:
    """A bound, not yet serving, stand-in; port 0 picks a free port (see `.server_address`).

    `faults` are rules as the control endpoint takes them, e.g. [{"mode": "status", "status": 503}].
    """
    return StandinServer((host, port), faults=faults or (), edge_cases=edge_cases)


class StandinRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients of the real API get
    server: StandinServer

    def version_string(self) -> str:
        return "standin-randomuser/1.4"  # the Server header; the default names the Python version

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path in API_PATHS:
            self._serve_users(url.path, url.query)
        elif url.path == "/":
            self._send(200, TEXT_TYPE, ABOUT.encode())
        elif url.path == CONTROL_PREFIX + "faults":
            self._send_json(200, self.server.faults.describe())
        elif url.path == CONTROL_PREFIX + "requests":
            self._send_json(200, self.server.request_log.entries())
        else:
            self._send(404, TEXT_TYPE, b"Not Found")  # also unknown versions, like the real API

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            if path == CONTROL_PREFIX + "faults":
                self.server.faults.add(FaultRule.from_spec(body))
                self._send_json(201, {"queued": self.server.faults.describe()})
            elif path == CONTROL_PREFIX + "edge-cases":
                if not isinstance(body.get("enabled"), bool):
                    raise ValueError('expected {"enabled": true} or {"enabled": false}')
                self.server.edge_cases = body["enabled"]
                self._send_json(200, {"enabled": self.server.edge_cases})
            else:
                self._send(404, TEXT_TYPE, b"Not Found")
        except ValueError as error:  # json.JSONDecodeError is a ValueError too
            self._send_json(400, {"error": str(error)})

    def do_DELETE(self) -> None:
        path = urlsplit(self.path).path
        if path == CONTROL_PREFIX + "faults":
            self.server.faults.clear()
        elif path == CONTROL_PREFIX + "requests":
            self.server.request_log.clear()
        else:
            self._send(404, TEXT_TYPE, b"Not Found")
            return
        self._send(204, TEXT_TYPE, b"")

    def _serve_users(self, path: str, query_string: str) -> None:
        query = {name: values[-1] for name, values in parse_qs(query_string, keep_blank_values=True).items()}
        fault = self.server.faults.next_fault()
        mode = fault.mode if fault else None
        if fault and mode in CANNED_ANSWERS:
            status, content_type, body = CANNED_ANSWERS[mode](fault, query)
        else:
            page = users_page(query, edge_cases=self.server.edge_cases, one_user=mode == "results_one")
            if fault and mode in PAGE_CHANGES:
                PAGE_CHANGES[mode](page, fault)
            status, content_type, body = 200, JSON_TYPE, _json_bytes(page)
            if mode == "truncated":
                body = body[: len(body) // 2]
        # Logged before answering, so a test reading the log right after its request finds it.
        self.server.request_log.add({"path": path, "query": query, "status": status, "fault": mode})
        if mode == "timeout":
            time.sleep(fault.seconds)  # one thread per request: the others are not held up
        self._send(status, content_type, body)

    def _send_json(self, status: int, payload: object) -> None:
        self._send(status, JSON_TYPE, _json_bytes(payload))

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. during a "timeout" fault)


def users_page(query: Mapping[str, str], *, edge_cases: bool = False, one_user: bool = False) -> dict:
    """What /api answers for a query (one value per parameter), faults aside."""
    seed = query.get("seed") or secrets.token_hex(8)
    page = generate_page(
        seed,
        page=_query_number(query.get("page")),
        results=1 if one_user else _query_number(query.get("results")),
        nat=query.get("nat"),
        inc=query.get("inc"),
        exc=query.get("exc"),
        gender=None if query.get("seed") else query.get("gender"),
        edge_cases=edge_cases,
    )
    if "noinfo" in query:
        del page["info"]
    return page


def _query_number(text: str | None) -> int:
    """Digits only ("2.5", "-1", "abc" -> 0, which generate_page turns into its default of 1)."""
    text = (text or "").strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else 0


def _json_bytes(payload: object) -> bytes:
    # Compact and UTF-8 with non-ASCII characters as they are, like the real API.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def _status_answer(fault: FaultRule, query: Mapping[str, str]) -> tuple[int, str, bytes]:
    code = fault.status
    if code == 500:
        return code, TEXT_TYPE, b"Internal Server Error"  # what Express sends
    if code in CLOUDFLARE_TITLES:
        page = CLOUDFLARE_PAGE.format(code=code, title=CLOUDFLARE_TITLES[code])
        return code, HTML_TYPE, page.encode()
    if code == 429:
        requested = _query_number(query.get("results")) or 1
        return code, JSON_TYPE, _json_bytes({"error": RATE_LIMITED.format(n=requested)})
    return code, TEXT_TYPE, f"{code} {responses.get(code, 'Error')}".encode()


CANNED_ANSWERS = {
    "status": _status_answer,
    "empty_results": lambda fault, query: (200, JSON_TYPE, _json_bytes(OUTAGE_BODY)),
    "error_object": lambda fault, query: (200, JSON_TYPE, _json_bytes(ERROR_OBJECT)),
    "not_json": lambda fault, query: (200, HTML_TYPE, PROXY_ERROR_PAGE),
}


def _drop_field(page: dict, fault: FaultRule) -> None:
    *parents, leaf = fault.field.split(".")
    for user in page["results"]:
        node = user
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)


def _street_as_string(page: dict, fault: FaultRule) -> None:
    for user in page["results"]:
        if "location" in user:
            street = user["location"]["street"]
            user["location"]["street"] = f"{street['number']} {street['name']}".lower()


def _extra_field(page: dict, fault: FaultRule) -> None:
    page["extra_field"] = "not part of API 1.4"
    for user in page["results"]:
        user["extra_field"] = {"added_in": "a future version"}


def _duplicate_uuids(page: dict, fault: FaultRule) -> None:
    users = [user for user in page["results"] if "login" in user]
    for index in range(2, min(len(users), 6)):
        users[index]["login"]["uuid"] = users[index - 2]["login"]["uuid"]


PAGE_CHANGES = {
    "drop_field": _drop_field,
    "street_as_string": _street_as_string,
    "extra_field": _extra_field,
    "duplicate_uuids": _duplicate_uuids,
}


def _whole_number(value: object, name: str) -> int:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    return value


def _number(value: object, name: str) -> float:
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    return float(value)
