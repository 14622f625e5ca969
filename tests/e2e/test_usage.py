"""Usage and cost attribution on PostgreSQL: the specification's cost query, the usage API
and ``llm-gateway usage`` agree after a mixed run; nobody reads another's usage.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from llm_gateway.emulators import EmulatorServer
from tests.e2e.conftest import Gateway, directive, start_gateway, stop_gateway
from tests.e2e.test_audit_postgres import SPEC_COST_QUERY, cli_env, db_upgrade, pg
from tests.harness import run_cli

pytestmark = pytest.mark.postgres

# (user, tenant, role, model, tokens in, tokens out), each sent once.
RUN = [
    ("alice", "acme", "user", "gpt-emu", 100, 200),
    ("alice", "acme", "user", "claude-emu", 1000, 500),
    ("alice", "acme", "user", "claude-emu", 10, 20),
    ("bob", "acme", "user", "gpt-emu", 3000, 4000),
    ("carol", "globex", "user", "claude-emu", 7000, 7000),
]


@pytest.fixture(scope="module")
def usage_gateway(
    emulator: EmulatorServer, postgres_admin_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    import uuid

    name = f"llm_gateway_test_{uuid.uuid4().hex[:12]}"
    pg(postgres_admin_url, f'CREATE DATABASE "{name}"')
    url = f"{postgres_admin_url.rsplit('/', 1)[0]}/{name}"
    tmp = tmp_path_factory.mktemp("usage")
    try:
        assert db_upgrade(url, tmp).returncode == 0
        gw = start_gateway(tmp, emulator.base_url, url)
        try:
            for user, tenant, role, model, tokens_in, tokens_out in RUN:
                text = directive("spend", usage={"input": tokens_in, "output": tokens_out})
                gw.openai(gw.token(user, tenant=tenant, role=role)).chat.completions.create(
                    model=model, messages=[{"role": "user", "content": text}]
                )
            yield gw
        finally:
            stop_gateway(gw)
    finally:
        pg(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def spec_totals(gw: Gateway, by: int) -> dict[str, tuple[int, float]]:
    """The specification's cost query, verbatim, summed by user (0) or model (1)."""
    totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for row in pg(gw.database_url, SPEC_COST_QUERY):
        if row["model"] is None:  # management actions: no model, no tokens, no cost
            assert row["total_tokens"] == 0
            continue
        key = row["user_id"] if by == 0 else row["model"]
        totals[key][0] += row["total_tokens"]
        totals[key][1] += row["total_cost"]
    return {k: (int(v[0]), v[1]) for k, v in totals.items()}


def api_usage(gw: Gateway, token: str, **params: str) -> httpx.Response:
    return httpx.get(
        f"{gw.base_url}/api/v1/usage", params=params, headers={"authorization": f"Bearer {token}"}
    )


def by_group(report: dict[str, Any]) -> dict[str, tuple[int, float]]:
    return {r["group"]: (r["tokens_used"], r["cost_usd"]) for r in report["rows"]}


def approx(totals: dict[str, tuple[int, float]]) -> dict[str, Any]:
    return {k: (tokens, pytest.approx(cost)) for k, (tokens, cost) in totals.items()}


def test_the_api_agrees_with_the_specifications_cost_query(usage_gateway: Gateway) -> None:
    spec_by_user = spec_totals(usage_gateway, 0)
    auditor = usage_gateway.token("audrey", role="auditor", tenant="acme")
    answer = api_usage(usage_gateway, auditor, group_by="user")
    assert answer.status_code == 200
    report = answer.json()
    assert report["scope"] == "tenant"
    acme = {u: t for u, t in spec_by_user.items() if u != "carol"}
    assert by_group(report) == approx(acme)  # carol's tenant is not the auditor's
    assert report["total"]["requests"] == 4
    by_model = by_group(api_usage(usage_gateway, auditor, group_by="model").json())
    assert set(by_model) == {"gpt-emu", "claude-emu"}
    assert by_model["gpt-emu"][0] == 300 + 7000


def test_a_user_reads_their_own_usage_only(usage_gateway: Gateway) -> None:
    alice = usage_gateway.token("alice", tenant="acme")
    own = api_usage(usage_gateway, alice, group_by="model").json()
    assert own["scope"] == "own"
    assert by_group(own) == approx(
        {"claude-emu": (1530, (1010 * 3 + 520 * 15) / 1e6), "gpt-emu": (300, 500 / 1e6)}
    )
    asking_for_bob = api_usage(usage_gateway, alice, group_by="user", user="bob").json()
    assert [r["group"] for r in asking_for_bob["rows"]] == ["alice"]
    other_tenant_auditor = usage_gateway.token("ray", role="auditor", tenant="globex")
    theirs = api_usage(usage_gateway, other_tenant_auditor, group_by="user").json()
    assert [r["group"] for r in theirs["rows"]] == ["carol"]
    newcomer = api_usage(usage_gateway, usage_gateway.token("gus", tenant="acme")).json()
    assert (newcomer["scope"], newcomer["rows"]) == ("own", [])


@pytest.mark.parametrize(
    ("params", "param"),
    [({"group_by": "colour"}, "group_by"), ({"from": "yesterday"}, "from"),
     ({"from": "2026-12-02", "to": "2026-12-01"}, "to")],
)  # fmt: skip
def test_bad_parameters_are_a_clear_400(
    usage_gateway: Gateway, params: dict[str, str], param: str
) -> None:
    answer = api_usage(usage_gateway, usage_gateway.token("alice", tenant="acme"), **params)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_request"
    assert param in answer.json()["error"]["message"]


def test_the_command_agrees_with_the_specifications_cost_query(
    usage_gateway: Gateway, tmp_path: Path
) -> None:
    done = run_cli(["usage", "--group-by", "model"], cli_env(usage_gateway.database_url), tmp_path)
    assert done.returncode == 0, done.stderr
    printed = {
        m.group(1): (int(m.group(2)), float(m.group(3)))
        for m in re.finditer(r"^(\S+)\s+\d+\s+\d+\s+\d+\s+(\d+)\s+([\d.]+)$", done.stdout, re.M)
    }
    total = printed.pop("TOTAL")
    assert printed == approx(spec_totals(usage_gateway, 1))
    assert total[0] == sum(t for t, _ in printed.values())
