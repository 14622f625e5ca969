"""The Authorize stage: the policy's obligations are obeyed, not only parsed."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm_gateway.auth import Credentials
from llm_gateway.auth.principal import Principal
from llm_gateway.chat import ChatRequest, ChatResponse, Message, TextPart, ToolSpec
from llm_gateway.errors import PolicyDenied
from llm_gateway.pipeline.authorize import Authorize
from llm_gateway.pipeline.context import ChatCall, Outcome, RequestContext
from llm_gateway.policy import PolicyService
from llm_gateway.routing import Resolution, Resolver
from llm_gateway.settings import load_settings
from tests.pipeline.deployments import deployment

POLICY = """package llm.authz
import rego.v1

decision := {"allow": true, "max_tokens": 100, "features": ["streaming"], "dlp_mode": "block"}
"""


async def _body() -> bytes:
    return b""


def _context(**chat: object) -> RequestContext:
    ctx = RequestContext(
        endpoint="openai",
        credentials=Credentials(),
        read_body=_body,
        payload=ChatCall(lambda body: ChatRequest(model="m", messages=[])),
        principal=Principal(user_id="alice", role="user"),
    )
    ctx.chat = ChatRequest(
        model="m",
        messages=[Message(role="user", content=[TextPart("hi")])],
        **chat,  # type: ignore[arg-type]
    )
    return ctx


@pytest.fixture
def stage(tmp_path: Path) -> Authorize:
    (tmp_path / "rego").mkdir()
    (tmp_path / "rego" / "authz.rego").write_text(POLICY)
    settings = load_settings(
        {"POLICY_DIR": str(tmp_path), "OPA_POLICY_PATH": "/v1/data/llm/authz/decision"},
        env_file=None,
    )
    return Authorize(
        PolicyService.from_settings(settings.policy), "test", Resolver({"m": deployment("m")})
    )


async def _answer(ctx: RequestContext) -> Outcome:
    return ChatResponse(model="m", text="ok")


@pytest.mark.parametrize(("asked", "sent"), [(None, 100), (5000, 100), (20, 20)])
async def test_max_tokens_is_capped(stage: Authorize, asked: int | None, sent: int) -> None:
    ctx = _context(max_tokens=asked, stream=True)
    await stage(ctx, _answer)
    assert ctx.chat is not None
    assert ctx.chat.max_tokens == sent
    assert ctx.decision is not None
    assert ctx.decision.obligations.dlp_mode == "block"  # left for the DLP stage to read


async def test_a_feature_outside_the_obligation_is_refused_and_audited_as_a_denial(
    stage: Authorize,
) -> None:
    ctx = _context(tools=[ToolSpec(name="lookup")])
    with pytest.raises(PolicyDenied) as denied:
        await stage(ctx, _answer)
    assert denied.value.details["reasons"] == ["feature not allowed: tools"]
    assert ctx.decision is not None
    assert ctx.decision.allow is False


class _Chain(Resolver):
    """A name that stands for several deployments, as a fallback chain will."""

    def __init__(self, *names: str) -> None:
        super().__init__({name: deployment(name) for name in names})
        self.order = names

    def resolve(self, name: str) -> Resolution:
        return Resolution(name, tuple(self.deployments[n] for n in self.order))


def _chain_stage(tmp_path: Path, *names: str) -> Authorize:
    (tmp_path / "rego").mkdir(exist_ok=True)
    (tmp_path / "rego" / "authz.rego").write_text(
        "package llm.authz\nimport rego.v1\n"
        'default decision := {"allow": false}\n'
        'decision := {"allow": true} if not input.request.model in {"banned", "also-banned"}\n'
    )
    settings = load_settings(
        {"POLICY_DIR": str(tmp_path), "OPA_POLICY_PATH": "/v1/data/llm/authz/decision"},
        env_file=None,
    )
    return Authorize(PolicyService.from_settings(settings.policy), "test", _Chain(*names))


async def test_each_candidate_is_decided_and_the_refused_are_dropped(tmp_path: Path) -> None:
    stage = _chain_stage(tmp_path, "m", "banned", "other")
    ctx = _context()
    await stage(ctx, _answer)
    resolution = ctx.call.resolution
    assert resolution is not None
    assert [d.name for d in resolution.candidates] == ["m", "other"]


async def test_a_request_none_of_whose_candidates_is_allowed_is_denied(tmp_path: Path) -> None:
    stage = _chain_stage(tmp_path, "banned", "also-banned")
    ctx = _context()
    with pytest.raises(PolicyDenied) as raised:
        await stage(ctx, _answer)
    assert raised.value.details == {
        "reasons": ["model not allowed: also-banned", "model not allowed: banned"]
    }
