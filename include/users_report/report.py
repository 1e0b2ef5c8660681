"""users_report: the dbt marts -> a summary a person reads (summary.md) and two bar charts (SVG).

The report runs once dbt has rebuilt both marts (their Asset events: the DAG's schedule), so it reads
them as they are: nothing to wait for. It reads the relations the dbt manifest says the models
build (include/common/assets.py), so a mart's schema or alias is declared in dbt only.

Plain Python over a psycopg connection: the DAG hands in include.common.warehouse.connect(). The charts
are hand-written SVG (text, no plotting library): readable in a browser or on GitHub, and testable.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from psycopg import sql

from include.common.assets import dbt_model_relation
from include.users_report.settings import BY_COUNTRY_MART, BY_YEAR_MART

if TYPE_CHECKING:
    import psycopg
    from airflow.sdk import ObjectStoragePath

SUMMARY_FILE = "summary.md"
COUNTRY_CHART_FILE = "users_by_country.svg"
YEAR_CHART_FILE = "users_by_registration_year.svg"


@dataclass(frozen=True)
class Marts:
    by_country: list[tuple[str, int, float]]  # country, users, share_pct; most users first
    by_year: list[tuple[int, int]]  # registration_year, users; oldest first

    @property
    def users(self) -> int:
        return sum(users for _, users, _ in self.by_country)


def read_marts(conn: psycopg.Connection) -> Marts:
    """Both marts, read in one snapshot so the two agree."""
    country_mart = sql.Identifier(*dbt_model_relation(BY_COUNTRY_MART))
    year_mart = sql.Identifier(*dbt_model_relation(BY_YEAR_MART))
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        by_country = conn.execute(
            sql.SQL("SELECT country, users, share_pct FROM {} ORDER BY users DESC, country").format(
                country_mart
            )
        ).fetchall()
        by_year = conn.execute(
            sql.SQL("SELECT registration_year, users FROM {} ORDER BY registration_year").format(year_mart)
        ).fetchall()
    return Marts(
        by_country=[(country, int(users), float(share)) for country, users, share in by_country],
        by_year=[(int(year), int(users)) for year, users in by_year],
    )


def summary(marts: Marts, top: int = 10) -> str:
    """Markdown: the totals, the top countries, the years, and the two charts."""
    lines = [
        "# Users report",
        "",
        f"{marts.users} users from {len(marts.by_country)} countries,"
        f" registered {_year_span(marts.by_year)}.",
        "",
        f"![Users by country]({COUNTRY_CHART_FILE})",
        "",
        "| country | users | share |",
        "|---|---:|---:|",
        *(f"| {country} | {users} | {share:.2f}% |" for country, users, share in marts.by_country[:top]),
        "",
        f"![Users by registration year]({YEAR_CHART_FILE})",
        "",
        "| registration year | users |",
        "|---|---:|",
        *(f"| {year} | {users} |" for year, users in marts.by_year),
        "",
    ]
    return "\n".join(lines)


def bar_chart(title: str, bars: list[tuple[str, int]]) -> str:
    """A horizontal bar chart as SVG: one labelled bar per (label, value), in the order given."""
    row, label_width, bar_width, top = 22, 160, 400, 40
    height = top + row * len(bars) + 10
    largest = max((value for _, value in bars), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_width + bar_width + 80}" height="{height}"'
        ' font-family="sans-serif" font-size="13">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="24" font-size="16" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(bars):
        y = top + i * row
        width = round(bar_width * value / largest)
        parts += [
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end">{escape(str(label))}</text>',
            f'<rect x="{label_width}" y="{y + 3}" width="{width}" height="{row - 6}" fill="#017cee"/>',
            f'<text x="{label_width + width + 6}" y="{y + 15}">{value}</text>',
        ]
    return "\n".join([*parts, "</svg>", ""])


def write_report(folder: ObjectStoragePath, marts: Marts) -> dict:
    """Write summary.md and the two charts into `folder`; each file appears whole or not at all."""
    from include.common import run_folder

    files = {
        SUMMARY_FILE: summary(marts),
        COUNTRY_CHART_FILE: bar_chart(
            "Users by country", [(country, users) for country, users, _ in marts.by_country]
        ),
        YEAR_CHART_FILE: bar_chart("Users by registration year", [(str(y), n) for y, n in marts.by_year]),
    }
    for name, text in files.items():
        with run_folder.open_for_atomic_write(folder / name, "w", encoding="utf-8") as file:
            file.write(text)
    return {"folder": str(folder), "users": marts.users, "countries": len(marts.by_country)}


def _year_span(by_year: list[tuple[int, int]]) -> str:
    if not by_year:
        return "in no known year"
    first, last = by_year[0][0], by_year[-1][0]
    return f"in {first}" if first == last else f"from {first} to {last}"
