"""Settings from environment variables, with the product specification's names.

Values come from the process environment, then from ``.env`` in the working
directory for anything the environment does not set. Every value is parsed
and checked here, at start-up; a bad one stops the process with an error that
names the variable, where it came from and what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from dotenv import dotenv_values

T = TypeVar("T")

JWT_ALGORITHMS = frozenset(
    {"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
     "ES256", "ES384", "ES512", "EdDSA"}
)  # fmt: skip


class SettingsError(ValueError):
    """One or more settings are invalid; the message lists each problem."""


@dataclass(frozen=True, slots=True)
class Settings:
    # HTTP
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    workers: int = 1
    max_body_bytes: int = 2 * 1024 * 1024
    http_max_header_bytes: int = 65_536  # request line and headers; 0 = no limit
    http_max_headers: int = 100
    http_header_timeout_s: float = 15.0  # for the whole head, from its first byte
    http_body_timeout_s: float = 30.0  # the longest pause between two reads of a body
    http_max_connections_per_client: int = 256  # per client address; 0 = no limit
    log_level: str = "info"
    log_format: str = "json"
    # Files
    config_dir: Path = Path("config")
    data_dir: Path = Path("data")
    # Authentication
    jwt_secret: str | None = None
    jwt_algorithm: str = "HS256"
    jwt_algorithms: tuple[str, ...] = ()  # allow-list; defaults to (jwt_algorithm,)
    jwt_expiration: int = 3600
    jwt_public_key_file: Path | None = None
    jwt_jwks_file: Path | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway_seconds: int = 30
    api_key_cache_seconds: float = 10.0
    # Storage
    database_url: str | None = None
    db_host: str | None = None
    db_port: int = 5432
    db_name: str = "llm_gateway"
    db_user: str = "postgres"
    db_password: str | None = field(default=None, repr=False)
    audit_batch_max: int = 500
    # Redis (shared state for the stages that need it across replicas)
    redis_url: str | None = None
    redis_host: str = "127.0.0.1"
    redis_port: int = 6379
    redis_db: int = 0
    redis_password: str | None = field(default=None, repr=False)
    # Providers
    claude_api_key: str | None = field(default=None, repr=False)
    openai_api_key: str | None = field(default=None, repr=False)
    local_model_url: str | None = None
    demo_model: str = "auto"  # auto: serve the built-in demo model when nothing else is set
    # Policy (Rego): embedded, or an OPA server when OPA_URL is set
    environment: str = "development"  # the policy input's context.environment
    policy_dir: Path = Path("policies")
    opa_url: str | None = None
    opa_policy_path: str = "/v1/data/llm/authz/allow"
    opa_timeout_ms: int = 250
    opa_retries: int = 1
    policy_cache_seconds: float = 0.0  # OPA decisions cached by input; 0 = off
    policy_reload_seconds: float = 2.0  # how often policy files are checked; 0 = SIGHUP only
    # DLP
    dlp_enabled: bool = True
    dlp_mode: str = "redact"  # the default action: block, redact or alert
    dlp_enable_pii: bool = True
    dlp_enable_secrets: bool = True
    dlp_rules_file: Path | None = None  # default: CONFIG_DIR/dlp_rules.yaml when it exists
    dlp_backend: str = "re2"
    dlp_scan_responses: bool = True
    dlp_on_error: str = "block"  # a detector that fails: block (fail closed) or alert
    dlp_stream_holdback: int = 64  # characters of a streamed answer held back for scanning
    dlp_stream_holdback_max: int = 8192  # the longest hold while a secret's start is arriving
    dlp_ner: str = "auto"  # names and places: auto (when installed), on (required), off
    dlp_ner_max_chars: int = 50_000
    dlp_ner_timeout_ms: int = 3000
    dlp_ner_workers: int = 1
    dlp_ner_caller_chars: int = 200_000  # NER work one caller may have waiting; more is a 429
    dlp_operator: str = "replace"
    dlp_operator_overrides: tuple[tuple[str, str], ...] = ()  # rule, label or entity -> operator
    dlp_vault: str = "memory"  # where reversible tokens live: memory or redis
    dlp_vault_key: str | None = field(default=None, repr=False)
    dlp_vault_ttl: int = 86400

    @property
    def jwt_allowed_algorithms(self) -> tuple[str, ...]:
        return self.jwt_algorithms or (self.jwt_algorithm,)

    @property
    def sqlalchemy_url(self) -> str:
        """The async SQLAlchemy URL: DATABASE_URL, else PostgreSQL from DB_*, else SQLite."""
        if self.database_url:
            return _async_driver_url(self.database_url)
        if self.db_host:
            password = f":{quote(self.db_password, safe='')}" if self.db_password else ""
            return (
                f"postgresql+asyncpg://{quote(self.db_user, safe='')}{password}"
                f"@{self.db_host}:{self.db_port}/{self.db_name}"
            )
        return f"sqlite+aiosqlite:///{self.data_dir / 'gateway.db'}"

    @property
    def redis_dsn(self) -> str:
        if self.redis_url:
            return self.redis_url
        auth = f":{quote(self.redis_password, safe='')}@" if self.redis_password else ""
        return f"redis://{auth}{self.redis_host}:{self.redis_port}/{self.redis_db}"


def _async_driver_url(url: str) -> str:
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite://", "sqlite+aiosqlite://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


# --- parsing ---------------------------------------------------------------


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not lo <= value <= hi:
            raise ValueError(f"expected an integer from {lo} to {hi}")
        return value

    return parse


def _positive_float(raw: str) -> float:
    value = float(raw)
    if value < 0:
        raise ValueError("expected a number of seconds, zero or more")
    return value


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def _algorithm(raw: str) -> str:
    value = raw.strip()
    if value not in JWT_ALGORITHMS:
        raise ValueError(f"expected one of {', '.join(sorted(JWT_ALGORITHMS))} ('none' never)")
    return value


def _algorithms(raw: str) -> tuple[str, ...]:
    return tuple(_algorithm(a) for a in raw.split(",") if a.strip())


def _existing_file(raw: str) -> Path:
    path = Path(raw)
    if not path.is_file():
        raise ValueError(f"expected an existing file, {raw!r} is not one")
    return path


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


_OPERATORS = ("replace", "token", "mask", "hash", "synthetic")


def _overrides(raw: str) -> tuple[tuple[str, str], ...]:
    """``PERSON=token,US_SSN=mask``: an operator per rule name, label or entity."""
    pairs = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, operator = item.partition("=")
        if not sep or not name.strip() or operator.strip() not in _OPERATORS:
            raise ValueError(f"expected NAME=OPERATOR pairs, operators: {', '.join(_OPERATORS)}")
        pairs.append((name.strip(), operator.strip()))
    return tuple(pairs)


def _http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return raw.rstrip("/")


def _policy_path(raw: str) -> str:
    """OPA's Data API path of the decision, e.g. /v1/data/llm/authz/allow."""
    parts = raw.strip("/").split("/")
    if len(parts) < 3 or parts[:2] != ["v1", "data"] or not all(
        p.replace("_", "a").isalnum() for p in parts[2:]
    ):
        raise ValueError("expected /v1/data/<package path>/<rule>, e.g. /v1/data/llm/authz/allow")
    return "/" + "/".join(parts)


# attribute -> (variable names, first found wins; parser)
_SOURCES: dict[str, tuple[tuple[str, ...], Callable[[str], Any]]] = {
    "api_host": (("API_HOST",), str),
    "api_port": (("API_PORT",), _int(0, 65535)),
    "workers": (("WORKERS",), _int(1, 256)),
    "max_body_bytes": (("MAX_BODY_BYTES",), _int(1024, 1 << 30)),
    "http_max_header_bytes": (("HTTP_MAX_HEADER_BYTES",), _int(0, 1 << 24)),
    "http_max_headers": (("HTTP_MAX_HEADERS",), _int(0, 100_000)),
    "http_header_timeout_s": (("HTTP_HEADER_TIMEOUT_SECONDS",), _positive_float),
    "http_body_timeout_s": (("HTTP_BODY_TIMEOUT_SECONDS",), _positive_float),
    "http_max_connections_per_client": (("HTTP_MAX_CONNECTIONS_PER_CLIENT",), _int(0, 1 << 20)),
    "log_level": (("LOG_LEVEL",), _choice("debug", "info", "warning", "error")),
    "log_format": (("LOG_FORMAT",), _choice("json", "text")),
    "config_dir": (("CONFIG_DIR",), Path),
    "data_dir": (("DATA_DIR",), Path),
    "jwt_secret": (("JWT_SECRET",), str),
    "jwt_algorithm": (("JWT_ALGORITHM",), _algorithm),
    "jwt_algorithms": (("JWT_ALLOWED_ALGORITHMS",), _algorithms),
    "jwt_expiration": (("JWT_EXPIRATION",), _int(1, 365 * 86400)),
    "jwt_public_key_file": (("JWT_PUBLIC_KEY_FILE",), _existing_file),
    "jwt_jwks_file": (("JWT_JWKS_FILE",), _existing_file),
    "jwt_issuer": (("JWT_ISSUER",), str),
    "jwt_audience": (("JWT_AUDIENCE",), str),
    "jwt_leeway_seconds": (("JWT_LEEWAY_SECONDS",), _int(0, 3600)),
    "api_key_cache_seconds": (("API_KEY_CACHE_SECONDS",), _positive_float),
    "database_url": (("DATABASE_URL",), str),
    "db_host": (("DB_HOST",), str),
    "db_port": (("DB_PORT",), _int(1, 65535)),
    "db_name": (("DB_NAME",), str),
    "db_user": (("DB_USER",), str),
    "db_password": (("DB_PASSWORD",), str),
    "audit_batch_max": (("AUDIT_BATCH_MAX",), _int(1, 100_000)),
    "redis_url": (("REDIS_URL",), str),
    "redis_host": (("REDIS_HOST",), str),
    "redis_port": (("REDIS_PORT",), _int(1, 65535)),
    "redis_db": (("REDIS_DB",), _int(0, 1024)),
    "redis_password": (("REDIS_PASSWORD",), str),
    "claude_api_key": (("CLAUDE_API_KEY", "ANTHROPIC_API_KEY"), str),
    "openai_api_key": (("OPENAI_API_KEY",), str),
    "local_model_url": (("LOCAL_MODEL_URL",), str),
    "demo_model": (("DEMO_MODEL",), _choice("auto", "on", "off")),
    "environment": (("ENVIRONMENT",), str),
    "dlp_enabled": (("DLP_ENABLED",), _bool),
    "dlp_mode": (("DLP_MODE",), _choice("block", "redact", "alert")),
    "dlp_enable_pii": (("DLP_ENABLE_PII",), _bool),
    "dlp_enable_secrets": (("DLP_ENABLE_SECRETS",), _bool),
    "dlp_rules_file": (("DLP_RULES_FILE",), _existing_file),
    "dlp_backend": (("DLP_BACKEND",), _choice("re2", "hyperscan")),
    "dlp_scan_responses": (("DLP_SCAN_RESPONSES",), _bool),
    "dlp_on_error": (("DLP_ON_ERROR",), _choice("block", "alert")),
    "dlp_stream_holdback": (("DLP_STREAM_HOLDBACK",), _int(0, 65536)),
    "dlp_stream_holdback_max": (("DLP_STREAM_HOLDBACK_MAX",), _int(0, 1 << 20)),
    "dlp_ner": (("DLP_NER",), _choice("auto", "on", "off")),
    "dlp_ner_max_chars": (("DLP_NER_MAX_CHARS",), _int(1, 10_000_000)),
    "dlp_ner_timeout_ms": (("DLP_NER_TIMEOUT_MS",), _int(1, 600_000)),
    "dlp_ner_workers": (("DLP_NER_WORKERS",), _int(1, 64)),
    "dlp_ner_caller_chars": (("DLP_NER_CALLER_CHARS",), _int(1, 100_000_000)),
    "dlp_operator": (("DLP_OPERATOR",), _choice(*_OPERATORS)),
    "dlp_operator_overrides": (("DLP_OPERATOR_OVERRIDES",), _overrides),
    "dlp_vault": (("DLP_VAULT",), _choice("memory", "redis")),
    "dlp_vault_key": (("DLP_VAULT_KEY",), str),
    "dlp_vault_ttl": (("DLP_VAULT_TTL",), _int(1, 365 * 86400)),
    "policy_dir": (("POLICY_DIR",), Path),
    "opa_url": (("OPA_URL",), _http_url),
    "opa_policy_path": (("OPA_POLICY_PATH",), _policy_path),
    "opa_timeout_ms": (("OPA_TIMEOUT_MS",), _int(1, 60_000)),
    "opa_retries": (("OPA_RETRIES",), _int(0, 5)),
    "policy_cache_seconds": (("POLICY_CACHE_SECONDS",), _positive_float),
    "policy_reload_seconds": (("POLICY_RELOAD_SECONDS",), _positive_float),
}


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: Path | None = Path(".env")
) -> Settings:
    """Read settings from ``environ`` (default: the process) and then ``env_file``.

    Empty values count as unset, so ``cp .env.example .env`` changes nothing.
    """
    env = dict(os.environ if environ is None else environ)
    file_values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        file_values = {k: v for k, v in dotenv_values(env_file).items() if v is not None}

    values: dict[str, Any] = {}
    problems: list[str] = []
    for attr, (names, parse) in _SOURCES.items():
        for name in names:
            if env.get(name, "").strip():
                raw, origin = env[name], "environment"
            elif file_values.get(name, "").strip():
                raw, origin = file_values[name], str(env_file)
            else:
                continue
            try:
                values[attr] = parse(raw.strip())
            except ValueError as exc:
                problems.append(f"{origin}: {name}={_shown(name, raw)}: {exc}")
            break
    if problems:
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))
    settings = Settings(**values)
    _check_consistency(settings)
    return settings


def _shown(name: str, raw: str) -> str:
    """Quote a bad value for an error message, unless it may be a secret."""
    if any(word in name for word in ("SECRET", "PASSWORD", "KEY")):
        return "<hidden>"
    return repr(raw)


def _check_consistency(s: Settings) -> None:
    problems = []
    asymmetric = [a for a in s.jwt_allowed_algorithms if not a.startswith("HS")]
    if asymmetric and not (s.jwt_public_key_file or s.jwt_jwks_file):
        problems.append(
            f"JWT algorithms {', '.join(asymmetric)} need JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE"
        )
    if s.jwt_secret is not None and len(s.jwt_secret.encode()) < 32:
        problems.append("JWT_SECRET: expected at least 32 bytes (RFC 7518 requires it for HS256)")
    if s.dlp_vault == "redis" and not s.dlp_vault_key:
        problems.append(
            "DLP_VAULT=redis needs DLP_VAULT_KEY: every replica must open the same vault"
        )
    if problems:
        raise SettingsError("invalid settings:\n  " + "\n  ".join(problems))


def settings_variables() -> list[str]:
    """Every environment variable the gateway reads (for docs and tests)."""
    return [name for names, _ in _SOURCES.values() for name in names]


assert {f.name for f in fields(Settings)} == set(_SOURCES), "every setting has a source"
