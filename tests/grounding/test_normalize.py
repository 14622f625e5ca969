"""Numbers, units, dates and times in the forms people and tools write them."""

from __future__ import annotations

import pytest

from llm_gateway.grounding.normalize import (
    Date,
    conversions,
    find_dates,
    find_numbers,
    find_times,
    key_words,
    parse_number,
    stem,
    unit_of_key,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1,234.50", 1234.5), ("seven", 7), ("twenty-five", 25), ("-3", -3), ("zero", 0)],
)
def test_parse_number(text: str, value: float) -> None:
    assert parse_number(text) == value


def test_numbers_inside_ids_versions_and_addresses_are_not_numbers() -> None:
    text = "i-3abc in us-east-1 on t3.micro at 10.0.1.2, 12:30, api-7d9f"
    assert [n.text for n in find_numbers(text)] == []


def test_numbers_keep_their_units_scale_currency_and_percent() -> None:
    tokens = {n.text: n for n in find_numbers("$1,234.50, 1.2k, 2 GiB, 87.5%, 5000ms, 12 EUR")}
    assert tokens["1,234.50"].currency
    assert tokens["1.2k"].scaled
    assert tokens["1.2k"].value == 1200
    assert tokens["2 GiB"].unit == "gib"
    assert tokens["87.5%"].percent
    assert tokens["5000ms"].unit == "ms"
    assert tokens["12 EUR"].currency


def test_a_hyphenated_unit_is_a_unit() -> None:
    (token,) = find_numbers("a 5-minute TTL")
    assert token.unit == "minute"
    assert token.value == 5


def test_number_words_only_when_asked() -> None:
    assert [n.value for n in find_numbers("seven pods", words=True)] == [7]
    assert list(find_numbers("seven pods")) == []


def test_conversions_read_gb_both_ways() -> None:
    in_mib = {round(v) for v, u in conversions(2, "gb") if u == "mib"}
    assert 2048 in in_mib  # 2 GB read as 2 GiB
    assert {round(v) for v, u in conversions(90, "minutes") if u == "hours"} == {2}
    assert any(v == 1.5 for v, u in conversions(90, "minutes") if u == "hours")


def test_dates_in_several_formats() -> None:
    text = "2024-03-05T10:00Z, March 3, 2024, 3 Mar, 03/04/2024, 20 November 2023"
    found = {text[s:e]: readings for s, e, readings in find_dates(text)}
    assert found["2024-03-05"] == [Date(2024, 3, 5)]
    assert found["March 3, 2024"] == [Date(2024, 3, 3)]
    assert found["3 Mar"] == [Date(None, 3, 3)]
    assert found["03/04/2024"] == [Date(2024, 3, 4), Date(2024, 4, 3)]  # both readings
    assert found["20 November 2023"] == [Date(2023, 11, 20)]


def test_may_the_verb_is_no_month() -> None:
    assert list(find_dates("it may 3 times fail")) == []


def test_times() -> None:
    text = "at 9:00, 2:30 PM, 14:30:01Z and T09:05:00"
    assert [t for _, _, t in find_times(text)] == [(9, 0), (14, 30), (14, 30), (9, 5)]


def test_key_words_and_units_of_keys() -> None:
    assert key_words("PublicIpAddress") == ["public", "ip", "address"]
    assert unit_of_key("SizeInMiB") == "mib"
    assert unit_of_key("latency_ms") == "ms"
    assert unit_of_key("ttl") == "s"
    assert unit_of_key("items") is None


def test_stem() -> None:
    assert [stem(w) for w in ("instances", "statuses", "pods", "replies", "status")] == [
        "instance",
        "status",
        "pod",
        "reply",
        "status",
    ]


def test_temperatures_speeds_and_kubernetes_quantities_convert() -> None:
    from llm_gateway.grounding.normalize import in_unit, unit_of_key

    assert in_unit(8, "°c", "°f") == pytest.approx(46.4)
    assert in_unit(46.4, "°f", "°c") == pytest.approx(8)
    assert in_unit(22, "km/h", "mph") == pytest.approx(13.67, abs=0.01)
    assert in_unit(31230, "mi", "gib") == pytest.approx(30.498, abs=0.001)
    assert unit_of_key("temp_c") == "°c"
    assert unit_of_key("wind_kph") == "kph"
