"""Identifiers in answers and outputs, and how near two of them are."""

from __future__ import annotations

from llm_gateway.grounding.identifiers import find_identifiers, normal_ip, within_distance


def kinds(text: str) -> dict[str, str]:
    return {text[f.start : f.end]: f.kind for f in find_identifiers(text)}


def test_the_kinds() -> None:
    text = (
        "i-0a1b2c3d4e5f60718 arn:aws:iam::123456789012:role/deploy-bot. 10.0.1.23 2001:db8::1 "
        "jane.doe@example.com web-1.example.com ORD-1234 api-7d9f8c6b5-x2kqp t3.micro LH400 "
        "3f2b8c1e-9a4d-4e7b-8c2a-1d5e6f7a8b9c"
    )
    found = kinds(text)
    assert found["i-0a1b2c3d4e5f60718"] == "identifier"
    assert found["arn:aws:iam::123456789012:role/deploy-bot"] == "arn"  # without the full stop
    assert found["10.0.1.23"] == "ip"
    assert found["2001:db8::1"] == "ip"
    assert found["jane.doe@example.com"] == "email"
    assert found["web-1.example.com"] == "host"
    assert found["ORD-1234"] == "identifier"
    assert found["api-7d9f8c6b5-x2kqp"] == "identifier"
    assert found["t3.micro"] == "identifier"
    assert found["LH400"] == "identifier"
    assert found["3f2b8c1e-9a4d-4e7b-8c2a-1d5e6f7a8b9c"] == "identifier"


def test_prose_is_not_an_id() -> None:
    assert kinds("noon-to-6pm, well-known, Node.js, 14:30:00, S3 and EC2, e.g. this") == {}


def test_ipv6_is_compared_in_one_form() -> None:
    assert normal_ip("2001:0db8:0:0::1") == normal_ip("2001:db8::1")
    assert normal_ip("999.1.1.1") is None


def test_backticked_names_are_ids() -> None:
    assert kinds("listing `prod-logs` failed") == {"prod-logs": "identifier"}


def test_within_distance() -> None:
    assert within_distance("i-0a1b2c3d", "i-0a1b2c3e", 1)
    assert within_distance("ord-1234", "ord-1243", 2)
    assert not within_distance("ord-1234", "ord-1243", 1)
    assert not within_distance("abc", "abcdef", 2)


def test_a_time_of_a_year_is_no_identifier() -> None:
    assert [f.value for f in find_identifiers("the newest is from mid-2025")] == []
