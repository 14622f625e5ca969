"""Management endpoints as actions through the pipeline: documented, decided once, audited.

The gateway here runs a policy of the test's own whose ``dlp_mode`` obligation
is ``block`` for team ``strict``, and which allows the models a caller's
``groups`` claim lists, so a listing's per-model decisions can be told apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from llm_gateway.api.dlp import ScanResult
from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import MODELS, Gateway, start_gateway, stop_gateway
from tests.e2e.dlp_support import EMAIL, SSN

POLICY = """
package llm.authz

import rego.v1

default decision := {"allow": false, "reasons": ["not allowed"]}

decision := {"allow": true, "dlp_mode": "block"} if {
	input.action != "models.list"
	input.user.team == "strict"
}

decision := {"allow": true} if {
	input.action != "models.list"
	input.user.team != "strict"
}

decision := {"allow": true} if {
	input.action == "models.list"
	input.request.model in input.user.groups
}
"""


@pytest.fixture(scope="module")
def gw(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("actions")
    (tmp / "policy" / "rego").mkdir(parents=True)
    (tmp / "policy" / "rego" / "authz.rego").write_text(POLICY)
    env = {"POLICY_DIR": str(tmp / "policy"), "OPA_POLICY_PATH": "/v1/data/llm/authz/decision"}
    gateway = start_gateway(tmp, emulator.base_url, f"sqlite:///{tmp}/gateway.db", env)
    try:
        yield gateway
    finally:
        stop_gateway(gateway)


def scan(gw: Gateway, token: str, text: str) -> Any:
    with gw.http() as http:
        response = http.post(
            "/api/v1/dlp/scan", json={"text": text}, headers={"authorization": f"Bearer {token}"}
        )
    assert response.status_code == 200, response.text
    return response


def test_openapi_documents_every_management_endpoint(gw: Gateway) -> None:
    with gw.http() as http:
        document = http.get("/openapi.json").json()
    paths = document["paths"]
    scan_doc = paths["/api/v1/dlp/scan"]["post"]
    assert "text" in scan_doc["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert {"200", "401", "403"} <= set(scan_doc["responses"])
    result = scan_doc["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert "findings" in document["components"]["schemas"][result.rsplit("/", 1)[1]]["properties"]
    assert {"200", "401"} <= set(paths["/v1/models"]["get"]["responses"])
    assert {"/health", "/ready"} <= set(paths)


def test_scan_obeys_the_callers_dlp_mode(gw: Gateway) -> None:
    text = f"SSN {SSN}, mail {EMAIL}"
    answer = scan(gw, gw.token(team="relaxed"), text).json()
    ScanResult.model_validate(answer, strict=True)  # the documented model is what is sent
    usual = answer["findings"]
    strict = scan(gw, gw.token(team="strict"), text).json()["findings"]
    entities = {f["entity"] for f in usual}
    assert entities == {f["entity"] for f in strict} >= {"US_SSN", "EMAIL_ADDRESS"}
    assert {f["action"] for f in usual} != {"block"}
    assert {f["action"] for f in strict} == {"block"}


def test_a_scan_is_audited_without_its_text(gw: Gateway) -> None:
    response = scan(gw, gw.token("auditee", team="relaxed"), f"SSN {SSN}")
    row = gw.audit_row(response.headers["x-request-id"])
    assert (row.endpoint, row.status, row.user_id) == ("dlp.scan", 200, "auditee")
    assert row.policy_decision == "allow"
    assert SSN not in str(vars(row))


def test_a_refused_scan_is_audited(gw: Gateway) -> None:
    with gw.http() as http:
        response = http.post("/api/v1/dlp/scan", json={"text": "x"})
    assert response.status_code == 401
    row = gw.audit_row(response.headers["x-request-id"])
    assert (row.endpoint, row.status, row.error_code) == ("dlp.scan", 401, "missing_credentials")


def test_the_listing_shows_what_the_policy_allows_and_is_audited(gw: Gateway) -> None:
    allowed = [MODELS[0], MODELS[2]]
    client = gw.openai(gw.token("lister", groups=allowed))
    page = client.models.with_raw_response.list()
    assert [m.id for m in page.parse()] == allowed
    row = gw.audit_row(page.headers["x-request-id"])
    assert (row.endpoint, row.status, row.user_id) == ("models.list", 200, "lister")
    assert row.policy_decision == "allow"
    assert [m.id for m in gw.openai(gw.token(groups=[])).models.list()] == []


def test_a_chat_calls_row_lists_its_attempts(gw: Gateway) -> None:
    client = gw.openai(gw.token(team="relaxed"))
    raw = client.chat.completions.with_raw_response.create(
        model=MODELS[0], messages=[{"role": "user", "content": "hello"}]
    )
    row = gw.audit_row(raw.headers["x-request-id"])
    assert row.attempts is not None
    attempts = json.loads(row.attempts)
    assert [(a["model"], a["status"], a["error_code"]) for a in attempts] == [
        (MODELS[0], 200, None)
    ]
    assert attempts[0]["latency_ms"] >= 0
