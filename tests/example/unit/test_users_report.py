"""users_report's pure parts: the summary and the charts, from marts given in the test."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from include.users_report.report import COUNTRY_CHART_FILE, YEAR_CHART_FILE, Marts, bar_chart, summary

SVG = "{http://www.w3.org/2000/svg}"
MARTS = Marts(
    by_country=[("Brazil", 3, 50.0), ("Türkiye", 2, 33.33), ("Côte d'Ivoire & Co", 1, 16.67)],
    by_year=[(2004, 1), (2011, 5)],
)


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # noqa: S314 - the SVG this test just made, not untrusted input


def texts(svg: str) -> list[str]:
    return [element.text for element in parse(svg).iter(f"{SVG}text")]


def test_summary_names_the_totals_every_country_and_year_and_links_the_charts():
    text = summary(MARTS)
    assert "6 users from 3 countries, registered from 2004 to 2011." in text
    assert "| Brazil | 3 | 50.00% |" in text
    assert "| Türkiye | 2 | 33.33% |" in text
    assert "| 2011 | 5 |" in text
    assert f"]({COUNTRY_CHART_FILE})" in text
    assert f"]({YEAR_CHART_FILE})" in text


def test_summary_lists_only_the_top_countries_but_counts_them_all():
    text = summary(MARTS, top=1)
    assert "| Brazil |" in text
    assert "Türkiye" not in text
    assert "6 users from 3 countries" in text


def test_summary_of_users_without_a_registration_year():
    assert "registered in no known year" in summary(Marts(by_country=[("Brazil", 1, 100.0)], by_year=[]))


def test_chart_is_valid_svg_with_a_label_and_value_per_bar_in_order():
    svg = bar_chart("Users by country", [(c, n) for c, n, _ in MARTS.by_country])
    labels = texts(svg)  # parses, so the names with & and ' are escaped
    assert labels == ["Users by country", "Brazil", "3", "Türkiye", "2", "Côte d'Ivoire & Co", "1"]
    bars = list(parse(svg).iter(f"{SVG}rect"))[1:]  # after the background
    widths = [float(bar.get("width")) for bar in bars]
    assert widths == sorted(widths, reverse=True)
    assert widths[0] == 400  # the largest value fills the bar width


def test_chart_of_nothing_is_still_an_svg():
    assert texts(bar_chart("Users by registration year", [])) == ["Users by registration year"]
