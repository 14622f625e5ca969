"""``POST /api/v1/dlp/scan`` and ``llm-gateway dlp scan FILE|-``: findings, never values.

The API runs on a gateway of its own (the specification's rules, and
MAX_BODY_BYTES of 1 MiB so that the size limit is cheap to reach); the command
runs in-process with its own CONFIG_DIR, like ``tests/test_cli.py`` (``tests/harness.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from bench.dlp_values import CRAFTED_SLOW

from llm_gateway.emulators import EmulatorServer
from llm_gateway.settings import settings_variables
from tests import harness
from tests.e2e.conftest import JWT_SECRET, Gateway
from tests.e2e.dlp_support import (
    API_KEY,
    AWS_KEY_ID,
    EMAIL,
    GITHUB_TOKEN,
    SPEC_RULES,
    SSN,
    dlp_gateway,
)

LIMIT = 1024 * 1024
CARD = "4111 1111 1111 1111"
IP = "10.20.30.40"
#: value -> (entity, category, rule, action): one of each kind, each after non-ASCII text.
EXPECTED = {
    SSN: ("US_SSN", "pii", "pii.us_ssn", "redact"),
    EMAIL: ("EMAIL_ADDRESS", "pii", "pii.email_address", "redact"),
    CARD: ("CREDIT_CARD", "custom", "credit_card", "redact"),  # the spec's rule wins
    IP: ("INTERNAL_IP", "custom", "internal_ip", "alert"),
    API_KEY: ("API_KEY", "custom", "api_key", "block"),
    GITHUB_TOKEN: ("GITHUB_TOKEN", "secret", "secret.github_pat", "block"),
    AWS_KEY_ID: ("AWS_ACCESS_KEY", "secret", "secret.aws_access_key_id", "block"),
}
# Characters outside ASCII (2, 3 and 4 UTF-8 bytes, and one outside the BMP) before
# every value: offsets that counted bytes or UTF-16 units would miss.
#: The SSN in fullwidth digits (U+FF10...), which NFKC folds to ASCII.
FULLWIDTH_SSN = "".join(chr(0xFF10 + int(c)) if c.isdigit() else c for c in SSN)
TEXT = (
    f"Zürich 東京 — SSN {SSN}; mél {EMAIL}; カード {CARD}; "
    f"hôte {IP} 🙂; clé {API_KEY}; \N{MUSICAL SYMBOL G CLEF} {GITHUB_TOKEN}; aws {AWS_KEY_ID}."
)


@pytest.fixture(scope="module")
def gw(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    env = {"MAX_BODY_BYTES": str(LIMIT)}
    with dlp_gateway(tmp_path_factory, emulator, "dlp-scan", env) as gateway:
        yield gateway


def scan(gw: Gateway, body: Any = None, *, content: bytes | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {gw.token()}", "content-type": "application/json"}
    with gw.http() as http:
        if content is not None:
            return http.post("/api/v1/dlp/scan", content=content, headers=headers)
        return http.post("/api/v1/dlp/scan", json=body, headers=headers)


def assert_no_values(body: str, *values: str) -> None:
    """No value, escaped or not, appears anywhere in a response body."""
    for value in values:
        for form in (value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]):
            assert form not in body, f"{value!r} is in the response: {body[:500]}"


# --- 6. the scan API -------------------------------------------------------------


def test_scan_reports_each_finding_with_character_offsets_into_the_text(gw: Gateway) -> None:
    response = scan(gw, {"text": TEXT})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"findings", "ner"}  # no redacted_text unless asked for
    found = {TEXT[f["start"] : f["end"]]: f for f in body["findings"]}
    assert set(found) == set(EXPECTED), body["findings"]
    for value, (entity, category, rule, action) in EXPECTED.items():
        finding = found[value]
        assert set(finding) == {"entity", "category", "start", "end", "score", "rule", "action"}
        assert (finding["entity"], finding["category"]) == (entity, category), finding
        assert (finding["rule"], finding["action"]) == (rule, action), finding
        assert 0.5 <= finding["score"] <= 1.0
    starts = [f["start"] for f in body["findings"]]
    assert starts == sorted(starts)


def test_scan_never_returns_the_values(gw: Gateway) -> None:
    response = scan(gw, {"text": TEXT, "redact": False})
    assert response.status_code == 200
    assert_no_values(response.text, *EXPECTED)


def test_scan_with_redact_adds_the_redacted_text(gw: Gateway) -> None:
    text = f"Zürich 東京 SSN {SSN}, mail {EMAIL}, card {CARD}."
    response = scan(gw, {"text": text, "redact": True})
    assert response.status_code == 200
    body = response.json()
    assert body["redacted_text"] == (
        "Zürich 東京 SSN <SSN_REDACTED>, mail <EMAIL_REDACTED>, card <CREDIT_CARD_REDACTED>."
    )
    assert len(body["findings"]) == 3
    assert_no_values(response.text, SSN, EMAIL, CARD)


def test_scan_with_redact_never_returns_a_value_it_found(gw: Gateway) -> None:
    """Every finding is a value the API must not echo, whatever the rule's action: an
    alert-only rule (internal_ip) passes chat text through, but the scan API's promise is
    "never the raw values"."""
    response = scan(gw, {"text": TEXT, "redact": True})
    assert response.status_code == 200
    assert "redacted_text" in response.json()
    assert_no_values(response.text, *EXPECTED)


@pytest.mark.parametrize(
    ("original", "entity"),
    [
        (FULLWIDTH_SSN, "US_SSN"),  # fullwidth digits (NFKC)
        ("jane\u200b.roe@example.org", "EMAIL_ADDRESS"),  # a zero-width space inside
        ("5 3 6 2 2 8 7 2 6", "US_SSN"),  # digits typed apart
        ("4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "CREDIT_CARD"),
    ],
    ids=["fullwidth", "zero_width", "spaced_ssn", "spaced_card"],
)
def test_scan_maps_evasive_spellings_back_to_the_original_text(
    gw: Gateway, original: str, entity: str
) -> None:
    text = f"Zürich 東京 🙂 ssn/card/mail: {original} — fin"
    response = scan(gw, {"text": text, "redact": True})
    assert response.status_code == 200
    [finding] = response.json()["findings"]
    assert finding["entity"] == entity
    assert text[finding["start"] : finding["end"]] == original
    assert original not in response.text


def test_scan_of_clean_text_finds_nothing(gw: Gateway) -> None:
    text = "Order 1234 shipped on 2024-03-05, version 1.2.3.4.5, id 550e8400-e29b-41d4-a716."
    response = scan(gw, {"text": text, "redact": True})
    assert response.status_code == 200
    body = response.json()
    assert {k: v for k, v in body.items() if k != "ner"} == {"findings": [], "redacted_text": text}
    assert body["ner"] == "off"  # the test gateways run without NER


def forged_token(**claims: Any) -> str:
    payload = {"sub": "alice", "role": "user", "tier": "premium", "exp": int(time.time()) + 600}
    payload.update(claims)
    return jwt.encode(payload, "another-secret-" + "y" * 32, algorithm="HS256")


#: case -> (headers, the error code the gateway gives)
NO_CREDENTIALS: dict[str, tuple[dict[str, str], str]] = {
    "none": ({}, "missing_credentials"),
    "malformed_jwt": ({"authorization": "Bearer not-a-token"}, "malformed_token"),
    "wrong_signature": ({"authorization": f"Bearer {forged_token()}"}, "invalid_signature"),
}


@pytest.mark.parametrize("case", list(NO_CREDENTIALS))
def test_scan_requires_credentials(gw: Gateway, case: str) -> None:
    headers, code = NO_CREDENTIALS[case]
    with gw.http() as http:
        response = http.post("/api/v1/dlp/scan", json={"text": f"ssn {SSN}"}, headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"  # RFC 9110: a 401 names a scheme
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("authentication", code)
    assert SSN not in response.text
    assert "findings" not in response.text


def test_scan_refuses_an_expired_token(gw: Gateway) -> None:
    expired = jwt.encode(
        {"sub": "alice", "role": "user", "tier": "premium", "exp": int(time.time()) - 3600},
        JWT_SECRET,
        algorithm="HS256",
    )
    with gw.http() as http:
        response = http.post(
            "/api/v1/dlp/scan", json={"text": "hi"}, headers={"authorization": f"Bearer {expired}"}
        )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"


BAD_BODIES: dict[str, tuple[bytes, str]] = {
    "missing_text": (b'{"redact": true}', "missing_field"),
    "text_not_a_string": (b'{"text": 42}', "invalid_field"),
    "text_null": (b'{"text": null}', "missing_field"),
    "redact_not_a_boolean": (b'{"text": "hi", "redact": "yes"}', "invalid_field"),
    "invalid_json": (b'{"text": "unterminated', "invalid_json"),
    "not_an_object": (b'["text"]', "invalid_json"),
    "empty": (b"", "invalid_json"),
    "invalid_utf8": (b"\xff\xfe", "invalid_utf8"),
    "invalid_utf8_in_text": (b'{"text": "caf\xc3"}', "invalid_utf8"),
    "nested_10000": (b'{"text": "x", "y": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", "invalid_json"),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_scan_refuses_a_bad_body_with_400(gw: Gateway, case: str) -> None:
    raw, code = BAD_BODIES[case]
    response = scan(gw, content=raw)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert error["request_id"] == response.headers["x-request-id"]


def test_scan_refuses_a_body_over_the_limit_with_413(gw: Gateway) -> None:
    text = f"ssn {SSN} " * (LIMIT // 16 + 1)
    response = scan(gw, {"text": text})
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"]["code"] == "body_too_large"
    assert str(LIMIT) in response.text
    assert SSN not in response.text


@pytest.mark.parametrize("case", list(CRAFTED_SLOW))
def test_scan_of_text_crafted_to_be_slow_is_answered(gw: Gateway, case: str) -> None:
    """Answered at all: a backtracking blow-up on 500 KB would outlast the suite's timeout
    by hours. How long the scan takes is measured in bench/dlp_speed.py, not here."""
    response = scan(gw, {"text": CRAFTED_SLOW[case]})
    assert response.status_code == 200
    assert isinstance(response.json()["findings"], list)


# --- 7. llm-gateway dlp scan FILE|- ----------------------------------------------------


def run_cli(
    tmp: Path, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    config = tmp / "config"
    if not config.exists():
        config.mkdir()
        shutil.copy(SPEC_RULES, config / "dlp_rules.yaml")
    env = {k: v for k, v in os.environ.items() if k not in set(settings_variables())}
    env.update(CONFIG_DIR=str(config), DATA_DIR=str(tmp / "data"), DLP_NER="off")
    return harness.run_cli(["dlp", "scan", *args], env, tmp, stdin=stdin, text=False)


def assert_cli_silent_about(done: subprocess.CompletedProcess[bytes], *values: str) -> None:
    output = (done.stdout + done.stderr).decode()
    assert "Traceback" not in output, output
    for value in values:
        assert value not in output, output


def test_cli_scan_of_a_file_prints_findings_and_exits_1(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text(TEXT, encoding="utf-8")
    done = run_cli(tmp_path, str(path))
    assert done.returncode == 1, done.stderr
    body = json.loads(done.stdout)
    found = {TEXT[f["start"] : f["end"]]: f["entity"] for f in body["findings"]}
    assert found == {value: expected[0] for value, expected in EXPECTED.items()}
    assert_cli_silent_about(done, *EXPECTED)


def test_cli_scan_of_stdin_prints_findings_and_exits_1(tmp_path: Path) -> None:
    text = f"Zürich: ssn {SSN}, mail {EMAIL}\n"
    done = run_cli(tmp_path, "-", stdin=text.encode())
    assert done.returncode == 1, done.stderr
    findings = json.loads(done.stdout)["findings"]
    assert [text[f["start"] : f["end"]] for f in findings] == [SSN, EMAIL]
    assert_cli_silent_about(done, SSN, EMAIL)


def test_cli_scan_with_redact_prints_the_redacted_text_only(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "-", "--redact", stdin=f"ssn {SSN} key {API_KEY}".encode())
    assert done.returncode == 1
    assert json.loads(done.stdout)["redacted_text"] == "ssn <SSN_REDACTED> key <API_KEY_REDACTED>"
    assert_cli_silent_about(done, SSN, API_KEY)


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_cli_scan_of_clean_text_exits_0(tmp_path: Path, source: str) -> None:
    text = b"nothing to see: order 1234, version 1.2.3\n"
    if source == "file":
        (tmp_path / "clean.txt").write_bytes(text)
        done = run_cli(tmp_path, str(tmp_path / "clean.txt"))
    else:
        done = run_cli(tmp_path, "-", stdin=text)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"findings": [], "ner": "off"}  # DLP_NER=off here


@pytest.mark.parametrize("case", ["missing", "directory", "invalid_utf8", "stdin_invalid_utf8"])
def test_cli_scan_of_an_unreadable_source_exits_2(tmp_path: Path, case: str) -> None:
    if case == "missing":
        done = run_cli(tmp_path, str(tmp_path / "nope.txt"))
    elif case == "directory":
        done = run_cli(tmp_path, str(tmp_path))
    elif case == "invalid_utf8":
        (tmp_path / "bad.bin").write_bytes(b"\xff\xfe ssn " + SSN.encode())
        done = run_cli(tmp_path, str(tmp_path / "bad.bin"))
    else:
        done = run_cli(tmp_path, "-", stdin=b"\xff\xfe ssn " + SSN.encode())
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == b""
    assert b"error:" in done.stderr
    assert_cli_silent_about(done, SSN)
