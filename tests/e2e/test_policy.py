"""The policy stage, end to end: the real gateway process, its policy files, and its callers.

The harness's gateways load the shipped ``authz.rego`` with tiers naming the
emulated models (free: ollama-emu; premium: all three; enterprise: ``*``).
The session's ``gateway`` decides with the boolean ``allow`` rule (the
default ``OPA_POLICY_PATH``); ``object_gateway`` with the object rule
``decision``, whose reasons reach the caller. Other gateways are started where
the configuration differs: a policy that errs at run time, reloads, start-up
failures, and OPA server mode against the stand-in in tests/policy/opa_server.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from openai.types.chat import ChatCompletionFunctionToolParam

from llm_gateway.emulators import EmulatorServer
from llm_gateway.policy.bundle import load_bundle
from llm_gateway.settings import settings_variables
from tests.e2e.conftest import (
    ACCESS_YAML,
    JWT_SECRET,
    MODELS,
    PRICING_YAML,
    Gateway,
    free_port,
    routing_yaml,
    start_gateway,
    stop_gateway,
    wait_for,
    write_policies,
)
from tests.policy.opa_server import OpaServer, Reply

RULE = "data.llm.authz.allow"
DECISION_PATH = "/v1/data/llm/authz/decision"
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]
DOORS = ("openai", "anthropic", "native")
#: The shipped policy's reasons for a free-tier call to gpt-emu, in object mode.
GPT_FOR_FREE = "model gpt-emu is not available to tier free"
WEATHER_TOOL: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
# PyJWT warns about HMAC key lengths it would not choose itself; not our concern here.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


def caller(gateway: Gateway, tier: str | None = "free", role: str = "user") -> str:
    """A fresh user's token, so that each test's audit rows are its own."""
    return gateway.token(f"u-{uuid.uuid4().hex[:10]}", role=role, tier=tier)


def revision_of(gateway: Gateway) -> str:
    """The revision the gateway should report: its policy directory, loaded here too."""
    return load_bundle(Path(gateway.env["POLICY_DIR"]), RULE).revision


def chat_status(gateway: Gateway, token: str, model: str = "gpt-emu") -> int:
    with gateway.http() as http:
        response = http.post(
            "/v1/chat/completions",
            json={"model": model, "messages": MESSAGES},
            headers={"authorization": f"Bearer {token}"},
        )
    return response.status_code


def sdk_error(exc: openai.APIStatusError) -> dict[str, Any]:
    """The error object the OpenAI SDK parsed from a refusal."""
    assert isinstance(exc.body, dict), exc.body
    return exc.body


def denial(
    gateway: Gateway, door: str, token: str, model: str = "gpt-emu"
) -> tuple[dict[str, Any], str]:
    """Make a call that must be refused with 403; (its error object, its request id).

    The OpenAI and Anthropic doors are called through the official SDKs, which
    must raise PermissionDeniedError; the error object's exact keys are checked.
    """
    if door == "openai":
        with pytest.raises(openai.PermissionDeniedError) as oai:
            gateway.openai(token).chat.completions.create(model=model, messages=MESSAGES)
        body = oai.value.response.json()
        assert set(body) == {"error"}, body
        error = body["error"]
        assert oai.value.body == error  # what the SDK hands its caller
        assert set(error) == {"message", "type", "param", "code", "request_id", "reasons"}
        assert error["type"] == "permission_error"
        return error, error["request_id"]
    if door == "anthropic":
        with pytest.raises(anthropic.PermissionDeniedError) as ant:
            gateway.anthropic(token).messages.create(model=model, max_tokens=32, messages=MESSAGES)
        body = ant.value.response.json()
        assert ant.value.body == body
        assert set(body) == {"type", "error", "request_id"}, body
        assert body["type"] == "error"
        error = body["error"]
        assert set(error) == {"type", "message", "code", "reasons"}, body
        assert error["type"] == "permission_error"
        return error, body["request_id"]
    with gateway.http() as http:
        response = http.post(
            "/api/v1/chat",
            json={"model": model, "messages": MESSAGES},
            headers={"authorization": f"Bearer {token}"},
        )
    assert response.status_code == 403, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"type", "code", "message", "request_id", "reasons"}, body
    assert error["type"] == "permission"
    return error, error["request_id"]


@pytest.fixture(scope="module")
def object_gateway(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """The shipped policy deciding with its object rule: reasons and obligations.

    Its files are not watched: ``test_sighup_reloads_the_policy`` reloads it by signal,
    so it is a process of its own (a gateway served in the test process has no signals).
    """
    tmp = tmp_path_factory.mktemp("object-policy")
    env = {"OPA_POLICY_PATH": DECISION_PATH, "POLICY_RELOAD_SECONDS": "0"}
    gw = start_gateway(tmp, emulator.base_url, f"sqlite:///{tmp}/gateway.db", env, process=True)
    try:
        yield gw
    finally:
        stop_gateway(gw)


@pytest.fixture(params=["boolean", "object"])
def mode(request: pytest.FixtureRequest) -> tuple[str, Gateway]:
    """Each policy mode's gateway: the boolean ``allow`` rule, or the ``decision`` object."""
    fixture = "gateway" if request.param == "boolean" else "object_gateway"
    return request.param, request.getfixturevalue(fixture)


# --- denials in each front door's format -------------------------------------------


@pytest.mark.parametrize("door", DOORS)
def test_a_model_outside_the_tier_is_a_403_in_the_doors_format(
    mode: tuple[str, Gateway], door: str
) -> None:
    """Same status and code in both modes; only the object rule has reasons to give."""
    name, gateway = mode
    error, request_id = denial(gateway, door, caller(gateway, tier="free"), model="gpt-emu")
    assert error["code"] == "policy_denied"
    assert error["reasons"] == ([] if name == "boolean" else [GPT_FOR_FREE])
    assert request_id


def test_a_denied_stream_is_refused_before_it_starts(object_gateway: Gateway) -> None:
    client = object_gateway.openai(caller(object_gateway, tier="free"))
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="gpt-emu", messages=MESSAGES, stream=True)
    assert sdk_error(info.value)["code"] == "policy_denied"
    assert sdk_error(info.value)["reasons"] == [GPT_FOR_FREE]


def test_a_feature_outside_the_tier_is_refused_with_a_reason_naming_it(
    object_gateway: Gateway,
) -> None:
    client = object_gateway.openai(caller(object_gateway, tier="free"))
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="ollama-emu", messages=MESSAGES, tools=[WEATHER_TOOL])
    assert sdk_error(info.value)["code"] == "policy_denied"
    assert sdk_error(info.value)["reasons"] == ["feature tools is not available to tier free"]


def test_a_feature_outside_the_tier_is_refused_in_boolean_mode_too(gateway: Gateway) -> None:
    client = gateway.openai(caller(gateway, tier="free"))
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="ollama-emu", messages=MESSAGES, tools=[WEATHER_TOOL])
    assert sdk_error(info.value)["code"] == "policy_denied"


def test_a_feature_inside_the_tier_is_allowed(mode: tuple[str, Gateway]) -> None:
    """The free tier may stream; the refusal above is about tools, not about the call."""
    _, gateway = mode
    client = gateway.openai(caller(gateway, tier="free"))
    stream = client.chat.completions.create(model="ollama-emu", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Echo: hello"


@pytest.mark.parametrize("model", MODELS)
def test_an_admin_may_call_any_model(mode: tuple[str, Gateway], model: str) -> None:
    _, gateway = mode
    client = gateway.openai(caller(gateway, tier=None, role="admin"))
    completion = client.chat.completions.create(model=model, messages=MESSAGES)
    assert completion.choices[0].message.content == "Echo: hello"


def test_an_admin_without_a_tier_may_stream_in_object_mode(object_gateway: Gateway) -> None:
    """An admin may do everything (authz.rego says so), features included."""
    client = object_gateway.openai(caller(object_gateway, tier=None, role="admin"))
    stream = client.chat.completions.create(model="gpt-emu", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "Echo: hello"


# --- the decision log: audit rows --------------------------------------------------


def test_an_allowed_call_is_audited_with_the_policy_revision(mode: tuple[str, Gateway]) -> None:
    _, gateway = mode
    raw = gateway.openai(caller(gateway, tier="premium")).chat.completions.with_raw_response
    response = raw.create(model="gpt-emu", messages=MESSAGES)
    row = gateway.audit_row(response.headers["x-request-id"])
    assert (row.status, row.policy_decision) == (200, "allow")
    assert row.policy_revision == revision_of(gateway)
    assert row.policy_eval_us is not None
    assert row.policy_eval_us > 0
    assert row.policy_reasons is None


def test_a_denied_call_is_audited_with_decision_and_revision(gateway: Gateway) -> None:
    _, request_id = denial(gateway, "openai", caller(gateway, tier="free"))
    row = gateway.audit_row(request_id)
    assert (row.status, row.error_code) == (403, "policy_denied")
    assert row.policy_decision == "deny"
    assert row.policy_revision == revision_of(gateway)
    assert row.policy_eval_us is not None
    assert row.policy_eval_us > 0
    assert row.model_requested == "gpt-emu"
    assert row.tokens_used == 0


def test_a_denial_in_object_mode_is_audited_with_its_reasons(object_gateway: Gateway) -> None:
    _, request_id = denial(object_gateway, "native", caller(object_gateway, tier="free"))
    row = object_gateway.audit_row(request_id)
    assert (row.status, row.policy_decision) == (403, "deny")
    assert row.policy_reasons is not None
    assert json.loads(row.policy_reasons) == [GPT_FOR_FREE]
    assert row.policy_revision == revision_of(object_gateway)


# --- GET /v1/models ----------------------------------------------------------------


MODELS_BY_CALLER = {
    # id: (role, tier, the models listed)
    "free": ("user", "free", {"ollama-emu"}),
    "premium": ("user", "premium", set(MODELS)),
    # "*" allows every name, auto (the gateway chooses among them) included.
    "enterprise": ("user", "enterprise", {*MODELS, "auto"}),
    "admin": ("admin", None, {*MODELS, "auto"}),
    "unknown-tier": ("user", "platinum", set()),
}


@pytest.mark.parametrize("who", MODELS_BY_CALLER)
def test_the_model_list_has_only_the_callers_models_in_openai_shape(
    gateway: Gateway, who: str
) -> None:
    role, tier, expected = MODELS_BY_CALLER[who]
    token = caller(gateway, tier=tier, role=role)
    listed = {model.id for model in gateway.openai(token).models.list()}
    assert listed == expected
    with gateway.http() as http:
        body = http.get("/v1/models", headers={"authorization": f"Bearer {token}"}).json()
    assert body["object"] == "list"
    assert {m["id"] for m in body["data"]} == expected


@pytest.mark.parametrize("who", MODELS_BY_CALLER)
def test_the_model_list_has_only_the_callers_models_in_anthropic_shape(
    gateway: Gateway, who: str
) -> None:
    role, tier, expected = MODELS_BY_CALLER[who]
    token = caller(gateway, tier=tier, role=role)
    listed = {model.id for model in gateway.anthropic(token).models.list()}
    assert listed == expected
    with gateway.http() as http:
        body = http.get(
            "/v1/models", headers={"x-api-key": token, "anthropic-version": "2023-06-01"}
        ).json()
    assert set(body) == {"data", "has_more", "first_id", "last_id"}
    ids = [m["id"] for m in body["data"]]
    assert set(ids) == expected
    assert (body["first_id"], body["last_id"]) == ((ids[0], ids[-1]) if ids else (None, None))


def test_the_model_list_follows_the_object_decision_too(object_gateway: Gateway) -> None:
    token = caller(object_gateway, tier="free")
    assert [m.id for m in object_gateway.openai(token).models.list()] == ["ollama-emu"]


# --- a policy that errs at run time ------------------------------------------------

CONFLICT_POLICY = """package llm.authz
import rego.v1

# Two values for one complete rule when a free-tier user calls: a conflict error.
allow := true if input.user.role == "user"
allow := false if input.user.tier == "free"
"""


@pytest.fixture(scope="module")
def erring_gateway(
    emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("erring-policy")
    policies = tmp / "erring"
    (policies / "rego").mkdir(parents=True)
    (policies / "rego" / "authz.rego").write_text(CONFLICT_POLICY)
    gw = start_gateway(
        tmp, emulator.base_url, f"sqlite:///{tmp}/gateway.db", {"POLICY_DIR": str(policies)}
    )
    try:
        yield gw
    finally:
        stop_gateway(gw)


@pytest.mark.parametrize("door", DOORS)
def test_a_policy_error_at_run_time_is_a_403_policy_error(
    erring_gateway: Gateway, door: str
) -> None:
    error, _ = denial(erring_gateway, door, caller(erring_gateway, tier="free"))
    assert error["code"] == "policy_error"


def test_a_policy_error_is_audited_as_an_error(erring_gateway: Gateway) -> None:
    _, request_id = denial(erring_gateway, "openai", caller(erring_gateway, tier="free"))
    row = erring_gateway.audit_row(request_id)
    assert (row.status, row.error_code, row.policy_decision) == (403, "policy_error", "error")
    assert row.policy_revision == revision_of(erring_gateway)


def test_a_policy_error_lists_no_models(erring_gateway: Gateway) -> None:
    token = caller(erring_gateway, tier="free")
    assert list(erring_gateway.openai(token).models.list()) == []


def test_the_erring_policy_still_decides_the_inputs_it_can(erring_gateway: Gateway) -> None:
    """Control: the policy works where it has one value, so the 403s above are its conflict."""
    client = erring_gateway.openai(caller(erring_gateway, tier="premium"))
    completion = client.chat.completions.create(model="gpt-emu", messages=MESSAGES)
    assert completion.choices[0].message.content == "Echo: hello"


# --- reloads -----------------------------------------------------------------------

FREE_GETS_GPT = """
access:
  tiers:
    free: {models: [ollama-emu, gpt-emu], features: [streaming]}
    premium: {models: [gpt-emu, claude-emu, ollama-emu], features: [streaming, tools]}
  deanonymize_roles: [admin]
"""
BROKEN_MODULE = "package llm.extra\nimport rego.v1\n\nbroken if {\n"


def test_a_file_change_reloads_and_a_broken_module_keeps_the_policy_in_force(
    emulator: EmulatorServer, tmp_path: Path
) -> None:
    """One scenario on one gateway watching its files every 0.2 s.

    A changed data file takes effect; then a module with a syntax error is
    refused and logged while the policy before it stays in force; once the
    file is gone, reloads work again.
    """
    env = {"POLICY_RELOAD_SECONDS": "0.2"}
    gateway = start_gateway(tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/gw.db", env)
    policy_dir = Path(gateway.env["POLICY_DIR"])
    token = caller(gateway, tier="free")
    try:
        assert chat_status(gateway, token) == 403
        before = revision_of(gateway)
        (policy_dir / "data" / "access.yaml").write_text(FREE_GETS_GPT)
        assert wait_for(lambda: chat_status(gateway, token) == 200)
        after = revision_of(gateway)
        assert f"revision {after} replaces {before}" in gateway.logs()

        (policy_dir / "rego" / "broken.rego").write_text(BROKEN_MODULE)
        assert wait_for(lambda: "policy reload failed" in gateway.logs())
        assert "rego/broken.rego" in gateway.logs()
        time.sleep(0.5)  # more watch intervals with the broken file in place
        assert chat_status(gateway, token) == 200
        assert chat_status(gateway, caller(gateway, tier="platinum")) == 403

        (policy_dir / "rego" / "broken.rego").unlink()
        (policy_dir / "data" / "access.yaml").write_text(ACCESS_YAML)
        assert wait_for(lambda: chat_status(gateway, token) == 403)
        assert gateway.running()
    finally:
        stop_gateway(gateway)


def test_sighup_reloads_the_policy(object_gateway: Gateway) -> None:
    """The object gateway does not watch its files (POLICY_RELOAD_SECONDS=0): only SIGHUP.

    The change adds a tier no other test uses, and is undone (with another
    SIGHUP) so that the module's other tests see the policy they expect.
    """
    access = Path(object_gateway.env["POLICY_DIR"]) / "data" / "access.yaml"
    original = access.read_text()
    with_gold = original.replace(
        "    enterprise:", "    gold: {models: [gpt-emu], features: []}\n    enterprise:"
    )
    assert with_gold != original
    token = caller(object_gateway, tier="gold")
    assert chat_status(object_gateway, token) == 403
    assert object_gateway.process is not None
    try:
        access.write_text(with_gold)
        time.sleep(0.5)
        assert chat_status(object_gateway, token) == 403  # no watcher: it waits for SIGHUP
        object_gateway.process.send_signal(signal.SIGHUP)
        assert wait_for(lambda: chat_status(object_gateway, token) == 200)
        assert object_gateway.process.poll() is None  # SIGHUP reloads, it does not stop
    finally:
        access.write_text(original)
        object_gateway.process.send_signal(signal.SIGHUP)
    assert wait_for(lambda: chat_status(object_gateway, token) == 403)


# --- start-up ----------------------------------------------------------------------

#: id -> (files written into the policy directory, extra settings, what the log must name)
BAD_STARTS: dict[str, tuple[dict[str, str], dict[str, str], tuple[str, ...]]] = {
    "syntax-error": (
        {"rego/authz.rego": "package llm.authz\nimport rego.v1\nallow if {\n"},
        {},
        ("rego/authz.rego", "not valid Rego"),
    ),
    "missing-rule": (
        {},
        {"OPA_POLICY_PATH": "/v1/data/llm/authz/permit"},
        ("data.llm.authz.permit", "not defined"),
    ),
    "bad-data": (
        {"data/access.yaml": "access: [unclosed\n"},
        {},
        ("access.yaml", "not valid YAML"),
    ),
}


def bad_policy_dir(tmp: Path, files: dict[str, str]) -> Path:
    policies = write_policies(tmp / "bad-policies")
    for name, text in files.items():
        (policies / name).write_text(text)
    return policies


@pytest.mark.parametrize("case", BAD_STARTS)
def test_a_bad_policy_stops_the_gateway_at_start_up(
    emulator: EmulatorServer, tmp_path: Path, case: str
) -> None:
    files, settings, named = BAD_STARTS[case]
    env = {"POLICY_DIR": str(bad_policy_dir(tmp_path, files)), **settings}
    with pytest.raises(RuntimeError, match="exited at start-up") as info:
        start_gateway(tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/gateway.db", env)
    message = str(info.value)
    assert "invalid policy" in message
    for text in named:
        assert text in message
    assert "Traceback" not in message


def test_a_bad_policy_exits_with_status_2(emulator: EmulatorServer, tmp_path: Path) -> None:
    """The harness only says the process exited; this checks how, with `serve` run directly."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "routing_policies.yaml").write_text(routing_yaml(emulator.base_url))
    (config / "pricing.yaml").write_text(PRICING_YAML)
    files, _, _ = BAD_STARTS["syntax-error"]
    gateway_vars = set(settings_variables())
    env = {k: v for k, v in os.environ.items() if k not in gateway_vars}
    env.update(
        CONFIG_DIR=str(config),
        POLICY_DIR=str(bad_policy_dir(tmp_path, files)),
        DATA_DIR=str(tmp_path / "data"),
        JWT_SECRET=JWT_SECRET,
        API_PORT="0",
    )
    done = subprocess.run(
        [sys.executable, "-m", "llm_gateway.cli", "serve"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "rego/authz.rego" in done.stderr


# --- OPA server mode ---------------------------------------------------------------


def opa_policy(_path: str, document: Any) -> Reply:
    """What the stand-in OPA decides: premium may do anything, "limited" only stream."""
    tier = document["user"]["tier"]
    if tier == "premium":
        return Reply.result({"allow": True})
    if tier == "limited":
        return Reply.result({"allow": True, "features": ["streaming"]})
    model = document["request"]["model"]
    return Reply.result({"allow": False, "reasons": [f"OPA says no: {tier} may not use {model}"]})


@pytest.fixture(scope="module")
def opa() -> Iterator[OpaServer]:
    server = OpaServer(opa_policy).start_in_thread()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def opa_gateway(
    emulator: EmulatorServer, opa: OpaServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("opa-mode")
    env = {
        "OPA_URL": opa.url,
        "OPA_POLICY_PATH": DECISION_PATH,
        "OPA_TIMEOUT_MS": "1000",
        "OPA_RETRIES": "0",
        "ENVIRONMENT": "e2e",
    }
    gw = start_gateway(tmp, emulator.base_url, f"sqlite:///{tmp}/gateway.db", env)
    try:
        yield gw
    finally:
        stop_gateway(gw)


def opa_inputs_of(opa: OpaServer, user: str) -> list[dict[str, Any]]:
    return [doc for doc in opa.inputs() if doc and doc["user"]["id"] == user]


def test_opa_mode_allows_what_opa_allows(opa: OpaServer, opa_gateway: Gateway) -> None:
    user = f"u-{uuid.uuid4().hex[:10]}"
    raw = opa_gateway.openai(opa_gateway.token(user, tier="premium")).chat.completions
    response = raw.with_raw_response.create(model="claude-emu", messages=MESSAGES)
    assert response.parse().choices[0].message.content == "Echo: hello"
    [document] = opa_inputs_of(opa, user)
    assert document["action"] == "chat"
    assert document["request"]["model"] == "claude-emu"
    assert document["request"]["endpoint"] == "openai"
    assert document["context"]["environment"] == "e2e"
    assert all(r.path == DECISION_PATH for r in opa.requests)
    row = opa_gateway.audit_row(response.headers["x-request-id"])
    assert (row.policy_decision, row.policy_revision) == ("allow", f"opa:{DECISION_PATH}")
    assert row.policy_eval_us is not None
    assert row.policy_eval_us > 0


@pytest.mark.parametrize("door", DOORS)
def test_opa_mode_denies_with_opas_reasons(opa_gateway: Gateway, door: str) -> None:
    error, request_id = denial(opa_gateway, door, caller(opa_gateway, tier="free"))
    assert error["code"] == "policy_denied"
    assert error["reasons"] == ["OPA says no: free may not use gpt-emu"]
    row = opa_gateway.audit_row(request_id)
    assert row.policy_decision == "deny"
    assert row.policy_reasons is not None
    assert json.loads(row.policy_reasons) == error["reasons"]


def test_opa_mode_lists_the_models_opa_allows(opa_gateway: Gateway) -> None:
    premium, free = caller(opa_gateway, tier="premium"), caller(opa_gateway, tier="free")
    assert {m.id for m in opa_gateway.openai(premium).models.list()} == {*MODELS, "auto"}
    assert list(opa_gateway.openai(free).models.list()) == []


def test_an_obligation_refusing_a_feature_is_a_403(opa_gateway: Gateway) -> None:
    client = opa_gateway.openai(caller(opa_gateway, tier="limited"))
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="gpt-emu", messages=MESSAGES, tools=[WEATHER_TOOL])
    assert sdk_error(info.value)["code"] == "policy_denied"
    assert sdk_error(info.value)["reasons"] == ["feature not allowed: tools"]


def test_a_request_refused_by_an_obligation_is_audited_as_a_denial(
    opa_gateway: Gateway,
) -> None:
    """The policy allowed the call but not its tools, so the gateway refused it: a deny."""
    client = opa_gateway.openai(caller(opa_gateway, tier="limited"))
    with pytest.raises(openai.PermissionDeniedError) as info:
        client.chat.completions.create(model="gpt-emu", messages=MESSAGES, tools=[WEATHER_TOOL])
    row = opa_gateway.audit_row(info.value.response.headers["x-request-id"])
    assert (row.status, row.error_code) == (403, "policy_denied")
    assert row.policy_decision == "deny"
    assert row.policy_reasons is not None
    assert "feature not allowed: tools" in json.loads(row.policy_reasons)


def test_opa_down_is_a_403_policy_error(emulator: EmulatorServer, tmp_path: Path) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    env = {"OPA_URL": nobody, "OPA_TIMEOUT_MS": "300", "OPA_RETRIES": "1"}
    gateway = start_gateway(tmp_path, emulator.base_url, f"sqlite:///{tmp_path}/gateway.db", env)
    try:
        token = caller(gateway, tier="premium", role="admin")
        error, request_id = denial(gateway, "openai", token)
        assert error["code"] == "policy_error"
        row = gateway.audit_row(request_id)
        assert (row.status, row.policy_decision) == (403, "error")
        assert list(gateway.openai(token).models.list()) == []
    finally:
        stop_gateway(gateway)
