"""What the benchmark measures: the gateway in a profile, or LiteLLM's proxy, on one upstream."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import jwt

from bench import procs

REPO = Path(__file__).resolve().parents[1]
JWT_SECRET = "bench-secret-" + "b" * 40
LITELLM_VERSION = "1.110.2"
LITELLM_KEY = "sk-bench-master-key"

BENCH_POLICIES = REPO / "bench" / "policies"

# Profiles are environment overrides; a stage that lands adds its switches to `full`.
PROFILES: dict[str, dict[str, str]] = {
    # JWT auth, routing, provider call, audit (always on), and a policy that allows all.
    "passthrough": {
        "POLICY_DIR": str(BENCH_POLICIES / "allow-all"),
        "DLP_ENABLED": "false",
        "RATE_LIMIT_ENABLED": "false",
    },
    # Every stage the gateway has, switched on.
    "full": {
        "POLICY_DIR": str(REPO / "policies"),
        "OPA_POLICY_PATH": "/v1/data/llm/authz/decision",  # reasons and obligations too
        "DLP_ENABLED": "true",  # every rule on the prompt and on the answer, streams included
        "DLP_NER": "off",  # the NER model has its own figures (stages.py)
        # Limits on Redis, as replicas run them: the user's rate and token budget
        # (rate_limits.yaml below) and the tenant's rate, far above what the load sends.
        "RATE_LIMIT_ENABLED": "true",
        "STATE_BACKEND": "redis",
        "RATE_LIMIT_PER_TENANT": "100000000",
    },
}

SPEC_GUARDRAILS = REPO / "tests" / "config" / "spec_guardrails.yaml"

# The bench caller's tier: limits and a budget that every request is counted against.
RATE_LIMITS = """
tiers:
  enterprise:
    requests_per_minute: 100000000
    tokens_per_month: 1000000000000
    models: ["*"]
"""


#: What the full profile adds to the routing file: the shared circuit breaker.
FULL_ROUTING = """
  circuit_breaker:
    enabled: true
"""


def routing_yaml(upstream: str, profile: str = "passthrough") -> str:
    return f"""
routing:
  models:
    bench:
      endpoint: {upstream}/v1
      provider: openai_compatible
      api_key: upstream-key
      timeout_ms: 10000
      max_concurrent: 256
    bench-stream:
      endpoint: {upstream}/stream/v1
      provider: openai_compatible
      api_key: upstream-key
      timeout_ms: 10000
      max_concurrent: 256
""" + (FULL_ROUTING if profile == "full" else "")


PRICING = """
models:
  bench: {input_per_million: 1.0, output_per_million: 2.0}
  bench-stream: {input_per_million: 1.0, output_per_million: 2.0}
"""


def bearer() -> str:
    claims = {
        "sub": "bench", "role": "user", "tier": "enterprise", "tenant": "bench",
        "exp": int(time.time()) + 86400,
    }  # fmt: skip
    return "Bearer " + jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def start_gateway(
    profile: str,
    upstream: str,
    work: Path,
    cpus: str,
    workers: int = 1,
    env: dict[str, str] | None = None,
    name: str = "",
) -> procs.Service:
    root = work / f"gateway-{profile}-{workers}w{name}"
    config = root / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "routing_policies.yaml").write_text(routing_yaml(upstream, profile))
    (config / "pricing.yaml").write_text(PRICING)
    (config / "rate_limits.yaml").write_text(RATE_LIMITS)
    if profile == "full":  # the specification's confirmation rules, on every request
        (config / "guardrails.yaml").write_text(SPEC_GUARDRAILS.read_text())
    port = procs.free_port()
    env = {
        "API_HOST": "127.0.0.1",
        "API_PORT": str(port),
        "WORKERS": str(workers),
        "CONFIG_DIR": str(config),
        "DATA_DIR": str(root / "data"),
        "JWT_SECRET": JWT_SECRET,
        "DEMO_MODEL": "off",
        "LOG_LEVEL": "warning",
        "DATABASE_URL": "",
        **PROFILES[profile],
        **(env or {}),
    }
    return procs.start(
        f"gateway-{profile}-{workers}w{name}",
        [str(REPO / ".venv/bin/llm-gateway"), "serve"],
        procs.Ready(f"http://127.0.0.1:{port}", "/ready"),
        cpus=cpus,
        env=env,
        log_dir=work,
        cwd=root,
    )


# The requirements of litellm's ``proxy`` extra, read from the installed package. Two
# adjustments for the package index this machine reaches: ``litellm-proxy`` (named by
# the extra from 1.110 on, while the proxy's code ships in the ``litellm`` wheel itself)
# is absent and skipped, and LiteLLM's own helper packages, pinned exactly to releases
# the index does not have yet, take the newest release it has.
_PROXY_REQUIREMENTS = """
import importlib.metadata
from packaging.requirements import Requirement
for text in importlib.metadata.requires("litellm") or []:
    req = Requirement(text)
    if not req.marker or not req.marker.evaluate({"extra": "proxy"}):
        continue
    if req.marker.evaluate({"extra": ""}) or req.name == "litellm-proxy":
        continue
    print(req.name if req.name.startswith("litellm-") else f"{req.name}{req.specifier}")
"""


def litellm_venv() -> Path:
    """LiteLLM's proxy in its own venv under .bench/, installed once, pinned."""
    venv = REPO / ".bench" / f"litellm-{LITELLM_VERSION}"
    ready = venv / ".installed"
    if not ready.exists():
        print(f"installing litellm[proxy]=={LITELLM_VERSION} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin/pip"), "install", "-q"]
        subprocess.run([*pip, f"litellm=={LITELLM_VERSION}", "packaging"], check=True)
        extra = subprocess.run(
            [str(venv / "bin/python"), "-c", _PROXY_REQUIREMENTS],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
        subprocess.run([*pip, *extra], check=True)
        ready.touch()
    return venv


def start_litellm(upstream: str, work: Path, cpus: str) -> procs.Service:
    venv = litellm_venv()
    config = work / "litellm.yaml"
    config.write_text(
        f"""
model_list:
  - model_name: bench
    litellm_params: {{model: openai/bench, api_base: "{upstream}/v1", api_key: upstream-key}}
  - model_name: bench-stream
    litellm_params: {{model: openai/bench, api_base: "{upstream}/stream/v1", api_key: upstream-key}}
general_settings:
  master_key: {LITELLM_KEY}
litellm_settings:
  set_verbose: false
"""
    )
    port = procs.free_port()
    env = {
        "LITELLM_LOG": "ERROR",
        "DISABLE_SCHEMA_UPDATE": "true",
        "LITELLM_TELEMETRY": "False",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch from the internet at start-up
    }
    return procs.start(
        "litellm",
        [
            str(venv / "bin/litellm"),
            "--config",
            str(config),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        procs.Ready(f"http://127.0.0.1:{port}", "/health/liveliness", timeout_s=180),
        cpus=cpus,
        env=env,
        log_dir=work,
    )
