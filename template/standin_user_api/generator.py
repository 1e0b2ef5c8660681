"""Deterministic randomuser.me 1.4 users: no I/O, no clock, no global random state.

`generate_page` returns exactly the dict the stand-in server serialises for the same parameters.
User i of a page depends only on (seed, page, i, nat). Unlike the real API, where a different
`results`, `inc` or `exc` reshuffles every later user (randomuser.me issue #155), here a smaller
`results` gives a prefix of a larger one, and `inc`/`exc` only hide fields.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
import string
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from template.standin_user_api.data import (
    EDGE_CASE_ROWS,
    NAT_CODES,
    NATIONALITIES,
    PASSWORDS,
    TIMEZONES,
    TRANSLITERATION,
    USERNAME_ADJECTIVES,
    USERNAME_ANIMALS,
    Nationality,
)

API_VERSION = "1.4"
MAX_RESULTS = 5000
MAX_PAGE = 10000
FIELDS = (
    "gender", "name", "location", "email", "login", "registered",
    "dob", "phone", "cell", "id", "picture", "nat",
)  # fmt: skip

# The real generator draws dates between these instants (ms since 1970, UTC).
_GENERATOR_NOW_MS = 1_653_344_189_000  # 2022-05-23T22:16:29Z, a constant in the real api.js
_DOB_RANGE_MS = (-800_000_000_000, _GENERATOR_NOW_MS - 21 * 365 * 86_400_000)
_REGISTERED_RANGE_MS = (1_016_688_461_000, _GENERATOR_NOW_MS)
_EPOCH = datetime(1970, 1, 1)  # naive UTC: isoformat() then has no "+00:00" to strip

# The real API computes `age` against the server's clock, so the same seed answers differently
# from one day to the next. Ages here count up to this fixed date instead, so a page stays
# byte-identical forever.
AGE_REFERENCE_DATE = _EPOCH + timedelta(milliseconds=_GENERATOR_NOW_MS)
_AGE_REFERENCE_DAY = (AGE_REFERENCE_DATE.month, AGE_REFERENCE_DATE.day, AGE_REFERENCE_DATE.time())

_SALT_CHARACTERS = string.ascii_letters + string.digits
_PICTURE_BASE = "https://randomuser.me/api/portraits/"
_SLOT = re.compile(r"(#)|(@)|\{(\w+)\}")  # template syntax: see the `data` module


class _QuickRandom(random.Random):
    """random.Random whose choice/randint/randrange use a single random() call.

    The stock versions are exact but several times slower; with ~30 draws per user this saves
    about 15% of the time of a 5000-user page.
    The bias of int(random() * n) is below 1e-12 for the small n used here: irrelevant for fake users.
    """

    def choice(self, seq):
        return seq[int(self.random() * len(seq))]

    def randrange(self, start, stop=None):
        if stop is None:
            start, stop = 0, start
        return start + int(self.random() * (stop - start))

    def randint(self, a, b):
        return a + int(self.random() * (b - a + 1))


def generate_page(
    seed: str,
    page: int,
    results: int,
    nat: str | Iterable[str] | None = None,
    inc: str | Iterable[str] | None = None,
    exc: str | Iterable[str] | None = None,
    *,
    gender: str | None = None,
    edge_cases: bool = False,
) -> dict:
    """One page of users plus `info`, sanitised like the real API.

    `results` outside 1-5000 and `page` outside 1-10000 become 1; `nat` with any unknown code is
    ignored; `inc` (default: all fields) minus `exc` picks the fields. `nat`, `inc` and `exc`
    take a list of names or one comma-separated string. `gender` ("male"/"female")
    forces the gender (the server passes it only when no seed was given, as the real API does).
    `edge_cases` puts CSV-hostile values into the first users (see `data.EDGE_CASE_ROWS`) and gives
    every user a distinctive password full of special characters, like the real API's `password=`
    option: tests can then search logs and files for each one without false alarms.
    """
    results = results if 1 <= results <= MAX_RESULTS else 1
    page = page if 1 <= page <= MAX_PAGE else 1
    nats = _nat_filter(nat)
    fields = _selected_fields(inc, exc)
    page_key = _page_key(seed, page, nats)
    users = []
    for index in range(results):
        # A fresh generator per user, seeded from (page key, index): user i never depends on how
        # many users come before or after it. Seeding costs ~4 us, cheap next to the rest.
        user = _make_user(_QuickRandom((page_key << 16) | index), nats or NAT_CODES, gender)
        if edge_cases:
            _give_special_password(user)
            if index < len(EDGE_CASE_ROWS):
                _apply_edge_case(user, EDGE_CASE_ROWS[index])
        if len(fields) < len(FIELDS):
            user = {key: value for key, value in user.items() if key in fields}
        users.append(user)
    return {
        "results": users,
        "info": {"seed": seed, "results": results, "page": page, "version": API_VERSION},
    }


def fill_template(rng: random.Random, template: str | tuple[str, ...], fields: dict[str, str]) -> str:
    """Fill a phone/id/postcode template (syntax in `data`'s docstring); a tuple means pick one."""
    if isinstance(template, tuple):
        template = rng.choice(template)
    pattern, slots = _compile_template(template)
    # One draw for all the digits: random() has 53 bits, enough for the <= 15 digits of a template.
    digit_count = slots.count("#")
    digits = iter(f"{rng.randrange(10**digit_count):0{digit_count}d}")
    values = [
        next(digits) if slot == "#" else rng.choice(string.ascii_uppercase) if slot == "@" else fields[slot]
        for slot in slots
    ]
    return pattern % tuple(values)


@functools.cache
def _compile_template(template: str) -> tuple[str, tuple[str, ...]]:
    """A %-pattern and what fills each slot: "@#-{dmy}" -> ("%s%s-%s", ("@", "#", "dmy"))."""
    slots = tuple(digit or letter or field for digit, letter, field in _SLOT.findall(template))
    return _SLOT.sub("%s", template.replace("%", "%%")), slots


@functools.lru_cache(maxsize=8192)
def email_address(first: str, last: str) -> str:
    """The real API's rule: transliterate(first.last), spaces removed, lower case. Not unique."""
    ascii_only = unicodedata.normalize("NFKD", f"{first}.{last}".translate(TRANSLITERATION))
    local_part = "".join(char for char in ascii_only if char.isascii() and char != " ")
    return f"{local_part.lower()}@example.com"


def _make_user(rng: random.Random, nats: Sequence[str], forced_gender: str | None) -> dict:
    code = rng.choice(nats)
    nat: Nationality = NATIONALITIES[code]
    gender = rng.choice(("male", "female"))
    if forced_gender in ("male", "female"):
        gender = forced_gender  # drawn anyway, so every later draw stays the same
    male = gender == "male"
    first = rng.choice(nat.male_first if male else nat.female_first)
    last = rng.choice(nat.last)
    title = rng.choice(nat.male_titles if male else nat.female_titles)
    born = _EPOCH + timedelta(milliseconds=rng.randint(*_DOB_RANGE_MS))
    registered = _EPOCH + timedelta(milliseconds=rng.randint(*_REGISTERED_RANGE_MS))
    two_digit_year = f"{born.year % 100:02d}"
    template_fields = {
        "dmy": f"{born.day:02d}{born.month:02d}{two_digit_year}",
        "yy": two_digit_year,
        "mm": f"{born.month:02d}",
        "g": "1" if male else "2",
        "initial": last[0],
    }
    offset, description = rng.choice(TIMEZONES)
    password = rng.choice(PASSWORDS)
    salt = "".join(rng.choices(_SALT_CHARACTERS, k=8))
    username = f"{rng.choice(USERNAME_ADJECTIVES)}{rng.choice(USERNAME_ANIMALS)}{rng.randint(100, 999)}"
    picture = f"{'men' if male else 'women'}/{rng.randint(0, 99 if male else 96)}.jpg"
    user = {
        "gender": gender,
        "name": {"title": title, "first": first, "last": last},
        "location": {
            "street": {"number": rng.randint(1, 9999), "name": rng.choice(nat.streets)},
            "city": rng.choice(nat.cities),
            "state": rng.choice(nat.states),
            "country": nat.country,
            "postcode": _postcode(rng, nat.postcode),
            "coordinates": {
                "latitude": f"{rng.uniform(-90, 90):.4f}",
                "longitude": f"{rng.uniform(-180, 180):.4f}",
            },
            "timezone": {"offset": offset, "description": description},
        },
        "email": email_address(first, last),
        "login": {
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "username": username,
            "password": password,
            "salt": salt,
        },
        "dob": {"date": _iso(born), "age": _age(born)},
        "registered": {"date": _iso(registered), "age": _age(registered)},
        "phone": fill_template(rng, nat.phone, template_fields),
        "cell": fill_template(rng, nat.cell, template_fields),
        "id": {
            "name": nat.id_name,
            "value": None if nat.id_value is None else fill_template(rng, nat.id_value, template_fields),
        },
        "picture": {
            "large": f"{_PICTURE_BASE}{picture}",
            "medium": f"{_PICTURE_BASE}med/{picture}",
            "thumbnail": f"{_PICTURE_BASE}thumb/{picture}",
        },
        "nat": code,
    }
    _set_hashes(user["login"])
    return user


def _set_hashes(login: dict) -> None:
    """Fast hashes of password+salt, as the real API sends: trivial to crack, never store them."""
    salted = (login["password"] + login["salt"]).encode()
    login["md5"] = hashlib.md5(salted, usedforsecurity=False).hexdigest()
    login["sha1"] = hashlib.sha1(salted, usedforsecurity=False).hexdigest()
    login["sha256"] = hashlib.sha256(salted).hexdigest()


def _postcode(rng: random.Random, spec: range | tuple[str, ...]) -> int | str:
    if isinstance(spec, range):
        return rng.randrange(spec.start, spec.stop)
    return fill_template(rng, spec, {})


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds") + "Z"


def _age(moment: datetime) -> int:
    birthday_not_reached = (moment.month, moment.day, moment.time()) > _AGE_REFERENCE_DAY
    return AGE_REFERENCE_DATE.year - moment.year - birthday_not_reached


def _give_special_password(user: dict) -> None:
    login = user["login"]
    login["password"] = f"Sp3c!al,\"pw'\\ {login['salt']}"  # the salt makes it unique
    _set_hashes(login)


def _apply_edge_case(user: dict, row: tuple[str, str, str, str, str]) -> None:
    first, last, city, username, email = row
    user["name"]["first"] = first
    user["name"]["last"] = last
    user["location"]["city"] = city
    user["login"]["username"] = username
    user["email"] = email


def _names(values: str | Iterable[str] | None) -> set[str]:
    """{"a", "b"} from "a, b" or ["a", " b"]; blanks dropped."""
    if isinstance(values, str):
        values = values.split(",")
    return {value.strip() for value in values or () if value.strip()}


def _nat_filter(nat: str | Iterable[str] | None) -> tuple[str, ...] | None:
    """Upper-cased, sorted codes; None (no filter) if absent or if any code is unknown."""
    codes = {code.upper() for code in _names(nat)}
    if not codes or not codes <= NATIONALITIES.keys():
        return None
    return tuple(sorted(codes))


def _selected_fields(inc: str | Iterable[str] | None, exc: str | Iterable[str] | None) -> frozenset[str]:
    included = {name.lower() for name in _names(inc)} or set(FIELDS)
    excluded = {name.lower() for name in _names(exc)}
    return frozenset((included & set(FIELDS)) - excluded)


def _page_key(seed: str, page: int, nats: tuple[str, ...] | None) -> int:
    """64 bits standing for (seed, page, nat): the root of every user on the page."""
    text = "\x1f".join((seed, str(page), ",".join(nats or ())))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
