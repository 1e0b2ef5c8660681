"""The processing step on its own: real API samples and every data quirk, down to the exact CSV bytes."""

from __future__ import annotations

import copy
import csv
import io
import json
import random
import uuid

import pytest

from include.user_processing.fast_paths import CsvUser, SeenUserIds, decode_users
from include.user_processing.fields import COLUMNS, FIELDS
from include.user_processing.process import users_to_frame, write_run_csv, write_users_csv
from include.user_processing.user_api import SECRET_LOGIN_FIELDS
from template.standin_user_api import generate_page
from tests.example.conftest import FIXTURES

HEADER = ",".join(f'"{column}"' for column in COLUMNS) + "\n"  # the field table's columns, in order


def sample(name: str) -> list[dict]:
    return json.loads((FIXTURES / "randomuser" / name).read_text(encoding="utf-8"))["results"]


def to_csv(*pages_newest_first: list[dict]) -> str:
    out = io.StringIO()
    write_users_csv(list(pages_newest_first), out)
    return out.getvalue()


def make_user(uuid: str, first: str = "Ada", last: str = "Lovelace", **overrides) -> dict:
    """A v1.4-shaped user; overrides replace top-level keys or, with a dotted name, nested ones."""
    user = copy.deepcopy(sample("v1.4_single_BR_codeacademyuz.json")[0])
    user["login"]["uuid"] = uuid
    user["name"]["first"], user["name"]["last"] = first, last
    for path, value in overrides.items():
        *parents, key = path.split("__")
        node = user
        for parent in parents:
            node = node[parent]
        node[key] = value
    return user


def rows_of(csv_text: str, columns: list[str]) -> list[dict]:
    """The CSV's rows, each cut down to `columns`: the shipped ones, whatever columns you add."""
    return [{column: row[column] for column in columns} for row in csv.DictReader(io.StringIO(csv_text))]


def test_real_v14_sample_gives_the_exact_csv():
    text = to_csv(sample("v1.4_single_BR_codeacademyuz.json"))
    assert text.startswith(HEADER)
    golden = (
        '"user_id","firstname","lastname","email","username",'
        '"gender","city","country","postcode","nationality","registered_at"\n'
        '"4bbbf423-b3dd-409f-b35b-53957fc1b362","Damas","Oliveira","damas.oliveira@example.com",'
        '"goldenpeacock430","male","Cotia","Brazil","32158","BR","2014-08-30T05:19:44.274Z"\n'
    )
    shipped = next(csv.reader([golden.split("\n")[0]]))
    assert rows_of(text, shipped) == rows_of(golden, shipped)


def test_real_50_user_page_matches_the_reviewed_golden_csv():
    # v1.3 page: int and str postcodes, null ids, Persian names, apostrophes, no `registered` field.
    golden = (FIXTURES / "expected" / "v1.3_seed-abc_page1_50users_drawers.csv").read_text(encoding="utf-8")
    shipped = next(csv.reader([golden.split("\n")[0]]))
    assert rows_of(to_csv(sample("v1.3_seed-abc_page1_50users_drawers.json")), shipped) == rows_of(
        golden, shipped
    )


def test_postcodes_stay_text_with_leading_zeros_and_no_float_suffix():
    users = [
        make_user("00000000-0000-4000-8000-000000000001", location__postcode=32158),
        make_user("00000000-0000-4000-8000-000000000002", location__postcode="0150"),
        make_user("00000000-0000-4000-8000-000000000003", location__postcode="B7G 4G1"),
        make_user("00000000-0000-4000-8000-000000000004", location__postcode=None),
    ]
    assert list(users_to_frame(users)["postcode"]) == ["32158", "0150", "B7G 4G1", None]


def test_awkward_text_survives_a_csv_round_trip_byte_for_byte():
    awkward = [
        "تارا",  # Persian
        "Јован",  # Cyrillic
        "'t Hart",
        "O'Connell",
        'Dwayne "The Rock"',
        "Smith, Jr.",
        "back\\slash",
        "two\nlines",
        "windows\r\nline",
        "\\N",  # PostgreSQL's text-format NULL marker, must stay text
        "trailing space ",
        " leading space",
        "",
        "tab\there;semi",
        "emoji 😀",
    ]
    users = [
        make_user(f"00000000-0000-4000-8000-{index:012d}", first=text, last=text)
        for index, text in enumerate(awkward)
    ]
    rows = list(csv.DictReader(io.StringIO(to_csv(users), newline="")))
    assert [row["firstname"] for row in rows] == awkward
    assert [row["lastname"] for row in rows] == awkward


def test_every_value_is_quoted_so_copy_reads_it_as_data():
    text = to_csv([make_user("00000000-0000-4000-8000-000000000001", first="\\N", last="")])
    assert '"\\N",""' in text


def test_missing_optional_fields_become_empty():
    user = make_user("00000000-0000-4000-8000-000000000001")
    for key in ("gender", "nat", "registered"):
        del user[key]
    del user["location"]["city"]
    row = users_to_frame([user]).iloc[0]
    assert [row[c] for c in ("gender", "city", "nationality", "registered_at")] == [None] * 4
    (written,) = rows_of(to_csv([user]), ["city", "country", "postcode", "registered_at"])
    assert written == {"city": "", "country": "Brazil", "postcode": "32158", "registered_at": ""}


def test_source_values_are_not_cleaned():
    user = make_user("00000000-0000-4000-8000-000000000001", first="  Ada ", last="LOVELACE")
    user["email"] = "Ada.Lovelace@Example.com "
    row = users_to_frame([user]).iloc[0]
    assert (row["firstname"], row["lastname"], row["email"]) == (
        "  Ada ",
        "LOVELACE",
        "Ada.Lovelace@Example.com ",
    )


def test_duplicate_user_id_within_a_page_keeps_the_last_one():
    page = [
        make_user("00000000-0000-4000-8000-000000000001", first="first copy"),
        make_user("00000000-0000-4000-8000-000000000002", first="other"),
        make_user("00000000-0000-4000-8000-000000000001", first="last copy"),
    ]
    rows = list(csv.DictReader(io.StringIO(to_csv(page))))
    assert [(r["user_id"][-1], r["firstname"]) for r in rows] == [("2", "other"), ("1", "last copy")]


def test_duplicate_user_id_across_pages_keeps_the_one_from_the_later_page():
    page_1 = [make_user("00000000-0000-4000-8000-000000000001", first="page 1")]
    page_2 = [
        make_user("00000000-0000-4000-8000-000000000001", first="page 2"),
        make_user("00000000-0000-4000-8000-000000000002", first="new"),
    ]
    rows = list(csv.DictReader(io.StringIO(to_csv(page_2, page_1))))  # newest first, as extract yields
    assert sorted((r["user_id"][-1], r["firstname"]) for r in rows) == [("1", "page 2"), ("2", "new")]


def test_write_returns_the_row_count_and_writes_one_header():
    out = io.StringIO()
    pages = [[make_user(f"00000000-0000-4000-8000-00000000000{i}")] for i in range(3)]
    assert write_users_csv(pages, out) == 3
    assert out.getvalue().count('"user_id"') == 1


def test_no_pages_gives_a_header_only_csv():
    assert to_csv() == HEADER


def test_no_field_reads_a_password_or_its_hashes():
    # user_api strips them before anything is written: a column for one would stay empty, or worse.
    secrets = {f"login.{name}" for name in SECRET_LOGIN_FIELDS}
    assert not [field.path for field in FIELDS if field.path in secrets or "password" in field.column]


@pytest.mark.parametrize("secret", ["password", "salt", "md5", "sha1", "sha256"])
def test_no_login_secret_reaches_the_csv(secret):
    user = sample("v1.4_single_BR_codeacademyuz.json")[0]
    assert user["login"][secret] not in to_csv([user])


# process_user reads page files with decode_users (CsvUser records, the fast path); the tests above
# build the CSV from API dicts. The two must give the same bytes for every shape the API sends.
@pytest.mark.parametrize(
    "page",
    [
        sample("v1.4_single_BR_codeacademyuz.json"),
        sample("v1.3_seed-abc_page1_50users_drawers.json"),  # int postcodes, null ids, no `registered`
        generate_page("parity", 1, 300, edge_cases=True)["results"],  # every CSV-hostile value
        [make_user("00000000-0000-4000-8000-000000000001", gender=None, nat=None, location__city=None)],
    ],
    ids=["v1.4", "v1.3-50-users", "edge-cases", "nulls"],
)
def test_page_files_decoded_as_records_give_the_same_csv_as_dicts(page):
    records = decode_users(json.dumps(page, ensure_ascii=False).encode())
    assert all(isinstance(record, CsvUser) for record in records)
    assert to_csv(records) == to_csv(page)


def test_write_run_csv_turns_a_run_folder_into_its_users_csv(tmp_path):
    # process_user's body, on a run folder laid out as extract_user leaves it (run_folder and
    # run_files accept a local pathlib.Path as well as an ObjectStoragePath).
    from include.user_processing import run_files

    page_1 = [make_user("00000000-0000-4000-8000-000000000001", first="page 1")]
    page_2 = [
        make_user("00000000-0000-4000-8000-000000000001", first="page 2"),
        make_user("00000000-0000-4000-8000-000000000002", first="new"),
    ]
    run_files.raw_folder(tmp_path).mkdir()
    for page, users in enumerate([page_1, page_2], start=1):
        run_files.page_path(tmp_path, page).write_text(json.dumps(users), encoding="utf-8")
    run_files.manifest_path(tmp_path).write_text(json.dumps({"seed": "s", "users": 3, "pages": 2}))

    assert write_run_csv(tmp_path) == 2
    assert run_files.users_csv_path(tmp_path).read_text(encoding="utf-8") == to_csv(page_2, page_1)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["raw", "users.csv"]  # no .partial left


def test_a_page_of_another_shape_is_decoded_as_plain_dicts():
    # e.g. a hand-edited page file without `login`: processing then fails as it would without
    # the fast path, naming the missing key.
    page = [{"name": {"first": "Ada", "last": "Lovelace"}, "email": "ada@example.com"}]
    assert decode_users(json.dumps(page).encode()) == page
    with pytest.raises(KeyError, match="login"):
        to_csv(decode_users(json.dumps(page).encode()))


def test_seen_user_ids_agrees_with_a_plain_set_across_merges():
    rng = random.Random(7)  # noqa: S311 -- reproducible test ids, not secrets
    uuids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(2000)]
    # Mostly API-like lower-case UUIDs; also ids the numpy keys cannot hold, which take the slow path.
    other_ids = ["not-a-uuid", uuids[0].upper(), uuids[1].replace("-", ""), f" {uuids[2]}", "ü" * 36]
    pool = uuids + other_ids
    seen = SeenUserIds()
    seen.MERGE_EVERY = 100  # merge into the sorted array many times in this small test
    reference: set[str] = set()
    for _ in range(60):
        batch = list(dict.fromkeys(rng.choices(pool, k=rng.randrange(1, 120))))  # unique in a call
        expected = [user_id not in reference for user_id in batch]
        reference.update(batch)
        assert seen.add_and_flag_new(batch).tolist() == expected
    assert len(seen._keys) > 0  # the merges really happened
