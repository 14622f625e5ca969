"""The ``llm-gateway`` command: serve, check the configuration, mint tokens, manage keys,
evaluate and test the policy."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import re
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from llm_gateway.config import ConfigError, GatewayConfig, load_gateway_config
from llm_gateway.policy import rule_of
from llm_gateway.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from llm_gateway.auth.key_admin import KeyAdmin

EXIT_CONFIG = 2
EXIT_DATABASE = 3  # as uvicorn exits when start-up fails


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    handler: Callable[[argparse.Namespace, Settings], int] = args.handler
    return handler(args, settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-gateway", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="start the gateway")
    serve.add_argument("--host", help="listen address (default: API_HOST)")
    serve.add_argument("--port", type=int, help="listen port (default: API_PORT)")
    serve.add_argument("--workers", type=int, help="worker processes (default: WORKERS)")
    serve.set_defaults(handler=_serve)

    check = commands.add_parser("check-config", help="validate settings and config files")
    check.set_defaults(handler=_check_config)

    token = commands.add_parser("token", help="development JWTs").add_subparsers(required=True)
    create_token = token.add_parser("create", help="print a JWT valid for JWT_EXPIRATION seconds")
    _identity_arguments(create_token)
    create_token.set_defaults(handler=_token_create)

    _keys_commands(commands)

    _directory_commands(commands)

    policy = commands.add_parser("policy", help="Rego policy").add_subparsers(required=True)
    evaluate = policy.add_parser("eval", help="print the decision for an input document")
    evaluate.add_argument("--input", required=True, help="a JSON input document, or - for stdin")
    evaluate.set_defaults(handler=_policy_eval)
    policy.add_parser("test", help="run the test_ rules of *_test.rego").set_defaults(
        handler=_policy_test
    )

    dlp = commands.add_parser("dlp", help="data loss prevention").add_subparsers(required=True)
    dlp_scan = dlp.add_parser("scan", help="print what DLP finds in a file (never the values)")
    dlp_scan.add_argument("file", help="a text file, or - for stdin")
    dlp_scan.add_argument("--redact", action="store_true", help="also print the redacted text")
    dlp_scan.set_defaults(handler=_dlp_scan)

    usage = commands.add_parser("usage", help="requests, tokens and cost from the audit trail")
    usage.add_argument(
        "--group-by", default="user", choices=["user", "team", "tenant", "model", "key"]
    )
    usage.add_argument("--from", dest="start", help="ISO date or time (default: month's start)")
    usage.add_argument("--to", dest="end", help="ISO date or time, exclusive (default: now)")
    usage.add_argument("--tenant", help="one tenant's rows only")
    usage.add_argument("--user", help="one user's rows only")
    usage.set_defaults(handler=_usage)

    _audit_commands(commands)

    _report_commands(commands)

    _mfa_commands(commands)

    db = commands.add_parser("db", help="database").add_subparsers(required=True)
    upgrade = db.add_parser("upgrade", help="apply pending migrations")
    upgrade.set_defaults(handler=_db_upgrade)
    return parser


def _mfa_commands(commands: Any) -> None:
    mfa = commands.add_parser("mfa", help="TOTP codes for confirmations").add_subparsers(
        required=True
    )
    enroll = mfa.add_parser("enroll", help="make a person's secret; print it and its URI")
    enroll.add_argument("--user", required=True, help="user id (the 'sub' claim)")
    enroll.add_argument("--tenant")
    enroll.set_defaults(handler=_mfa_enroll)


def _audit_commands(commands: Any) -> None:
    audit = commands.add_parser("audit", help="the audit trail: verify, prune, export")
    sub = audit.add_subparsers(required=True)
    verify = sub.add_parser("verify", help="recompute the hash chain; name the first bad row")
    verify.add_argument("--tenant", help="one tenant's chain ('' for the rows without one)")
    verify.add_argument("--from", dest="start", help="ISO date or time")
    verify.add_argument("--to", dest="end", help="ISO date or time, exclusive")
    verify.set_defaults(handler=_audit_verify)
    prune = sub.add_parser("prune", help="remove a tenant's rows older than a cut (recorded)")
    prune.add_argument("--tenant", required=True, help="the tenant ('' for the rows without one)")
    prune.add_argument("--before", required=True, help="ISO date or time: older rows go")
    prune.set_defaults(handler=_audit_prune)
    export = sub.add_parser("export", help="write rows as JSON lines or CSV (never any text)")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    export.add_argument("--from", dest="start", help="ISO date or time")
    export.add_argument("--to", dest="end", help="ISO date or time, exclusive")
    export.add_argument("--tenant", help="one tenant's rows ('' for the rows without one)")
    export.add_argument("--out", help="a file (default: stdout)")
    export.set_defaults(handler=_audit_export)


def _report_commands(commands: Any) -> None:
    from llm_gateway.reports.frameworks import FRAMEWORKS

    report = commands.add_parser("report", help="compliance reports from the audit trail")
    sub = report.add_subparsers(required=True)
    compliance = sub.add_parser(
        "compliance", help="a framework's controls and the evidence for them (JSON, HTML, PDF)"
    )
    compliance.add_argument("--framework", required=True, choices=sorted(FRAMEWORKS))
    compliance.add_argument("--from", dest="start", help="ISO date or time (default: month start)")
    compliance.add_argument("--to", dest="end", help="ISO date or time, exclusive (default: now)")
    compliance.add_argument("--tenant", help="one tenant's rows ('' for the rows without one)")
    compliance.add_argument("--out", help="a .json, .html or .pdf file (default: JSON to stdout)")
    compliance.add_argument("--format", choices=["json", "html", "pdf"], help="(default: --out's)")
    compliance.set_defaults(handler=_report_compliance)


def _identity_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--user", required=True, help="user id (the 'sub' claim)")
    parser.add_argument("--role", required=True)
    parser.add_argument("--tier", required=True)
    parser.add_argument("--team")
    parser.add_argument("--tenant")
    parser.add_argument(
        "--environment", help="where it acts (production, staging...), for confirmation rules"
    )


def checked_config(settings: Settings) -> GatewayConfig | None:
    """The configuration files and the policy, validated as `serve` does before it listens;
    ``None`` after printing why not (the in-process test harness checks with it too)."""
    from llm_gateway.dlp.backends import BackendError
    from llm_gateway.policy import PolicyLoadError, PolicyService

    try:
        config = load_gateway_config(settings.providers)
        _check_identity(settings, config)
        PolicyService.from_settings(settings.policy)
        if settings.dlp.enabled:
            from llm_gateway.dlp.service import load_rule_engine

            load_rule_engine(settings.dlp)
    except ConfigError as exc:
        print(f"error: invalid configuration:\n{exc}", file=sys.stderr)
        return None
    except PolicyLoadError as exc:
        print(f"error: invalid policy: {exc}", file=sys.stderr)
        return None
    except BackendError as exc:  # DLP_BACKEND names one that is not installed
        print(f"error: invalid configuration: {exc}", file=sys.stderr)
        return None
    return config if _dev_secrets_usable(settings) else None


def _check_identity(settings: Settings, config: GatewayConfig) -> None:
    issuer = settings.auth.oidc_issuer
    if issuer and any(e.issuer == issuer for e in config.identity.identity.issuers):
        path = settings.providers.config_dir / "identity.yaml"
        raise ConfigError(
            path,
            [f"{path}: identity.issuers: OIDC_ISSUER {issuer!r} is listed here too: "
             "configure it in one place"],
        )  # fmt: skip


def _dev_secrets_usable(settings: Settings) -> bool:
    """The development secrets under DATA_DIR that will be used, if they exist, are whole."""
    from llm_gateway.auth.jwt import dev_secret
    from llm_gateway.dev_secrets import SecretFileError
    from llm_gateway.dlp.vault_crypto import dev_key

    dlp = settings.dlp
    vault = dev_key(dlp.vault_key, dlp.data_dir) if dlp.enabled else None
    try:
        for secret in (dev_secret(settings.auth), vault):
            if secret is not None:
                secret.check()
    except (SecretFileError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True


# --- commands --------------------------------------------------------------


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from llm_gateway.observability import multiprocess
    from llm_gateway.observability.logging import configure_logging
    from llm_gateway.server import HttpLimits, ServerConfig, serve

    if checked_config(settings) is None:
        return EXIT_CONFIG
    configure_logging(settings.log)
    # Before workers start (so that they do not race to migrate SQLite), and so that a
    # database that is down or outdated is one line, not a traceback from each worker.
    problem = asyncio.run(_database_problem(settings))
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_DATABASE
    workers = args.workers or settings.http.workers
    if settings.metrics.enabled:
        multiprocess.prepare(workers)  # before the workers start: they inherit it
    serve(
        ServerConfig(
            "llm_gateway.app:create_app_from_env",
            limits=HttpLimits.of(settings.http),
            factory=True,
            host=args.host or settings.http.host,
            port=args.port if args.port is not None else settings.http.port,
            workers=workers,
            loop="uvloop",
            lifespan="on",
            access_log=False,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=math.ceil(settings.http.shutdown_grace_s),
            timeout_keep_alive=settings.http.keep_alive_s,
        )
    )
    return 0


def _check_config(args: argparse.Namespace, settings: Settings) -> int:
    config = checked_config(settings)
    if config is None:
        return EXIT_CONFIG
    for path in config.files:
        print(f"ok: {path}")
    policy = settings.policy
    if policy.opa_url:
        print(f"policy: decided by OPA at {policy.opa_url}{policy.opa_policy_path}")
    else:
        print(f"ok: {policy.policy_dir} (Rego, {rule_of(policy.opa_policy_path)})")
    if settings.dlp.enabled:
        from llm_gateway.dlp.service import rules_file

        print(f"ok: DLP rules: built-in and {rules_file(settings.dlp) or 'no rule file'}")
    for d in config.deployments.values():
        state = "enabled" if d.enabled else f"disabled ({d.disabled_reason})"
        print(f"model {d.name}: {d.provider.value} at {d.base_url or '-'}: {state}")
    if not config.enabled():
        print("no model is enabled: `llm-gateway serve` will serve the built-in demo model")
    for hook in config.alerts.destinations:  # by name: a webhook's URL is a credential
        print(f"alerts to {hook.name}: {hook.format}, {', '.join(sorted(hook.events))}")
    for name, why in config.alerts.disabled.items():
        print(f"alerts to {name}: disabled ({why})")
    return _check_tiers(config, settings)


def _check_tiers(config: GatewayConfig, settings: Settings) -> int:
    """The tiers file against the policy's tiers: each difference is an error here."""
    from llm_gateway.config.limits import tier_disagreements
    from llm_gateway.policy.bundle import load_data

    if not config.limits.tiers:
        return 0
    if settings.policy.opa_url:
        print("tiers: not compared with the policy's (its data lives in OPA)")
        return 0
    data = load_data(settings.policy.policy_dir)  # the policy itself was checked already
    problems = tier_disagreements(config.limits, data.get("access"))
    for problem in problems:
        print(f"error: tiers: {problem}", file=sys.stderr)
    if problems:
        print("the policy decides model access; make the tiers' model lists agree with it",
              file=sys.stderr)  # fmt: skip
        return 1
    print("ok: the tiers of rate_limits.yaml agree with the policy's data.access.tiers")
    return 0


def _token_create(args: argparse.Namespace, settings: Settings) -> int:
    from llm_gateway.auth.jwt import mint_token

    try:
        token = mint_token(
            settings.auth,
            sub=args.user,
            role=args.role,
            tier=args.tier,
            team=args.team,
            tenant=args.tenant,
            environment=args.environment,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(token)
    return 0


def _keys_commands(commands: Any) -> None:
    keys = commands.add_parser("keys", help="API keys").add_subparsers(required=True)
    create_key = keys.add_parser("create", help="create a key and print it (shown once)")
    _identity_arguments(create_key)
    create_key.add_argument("--expires", help="ISO date/time, or a duration such as 30d or 12h")
    create_key.add_argument("--description")
    create_key.add_argument(
        "--models", help="comma-separated model names the key may ask for (default: the policy's)"
    )
    create_key.set_defaults(handler=_keys_create)
    list_keys = keys.add_parser("list", help="list keys (never the keys themselves)")
    list_keys.add_argument("--tenant")
    list_keys.set_defaults(handler=_keys_list)
    show_key = keys.add_parser("show", help="show one key by its id (never the key itself)")
    show_key.add_argument("key_id")
    show_key.set_defaults(handler=_keys_show)
    revoke = keys.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")
    revoke.set_defaults(handler=_keys_revoke)
    rotate = keys.add_parser("rotate", help="replace a key; print the new one (shown once)")
    rotate.add_argument("key_id")
    rotate.add_argument(
        "--overlap", type=int, default=0, help="seconds the old key goes on working (0)"
    )
    rotate.set_defaults(handler=_keys_rotate)


def _directory_commands(commands: Any) -> None:
    """``tenants``, ``teams`` and ``users``: the operator's, on any tenant (``--tenant``;
    none: the principals without one), through the admin API's service."""
    tenants = commands.add_parser("tenants", help="a tenant's record").add_subparsers(required=True)
    for verb in ("create", "show", "update"):
        cmd = tenants.add_parser(verb, help=f"{verb} a tenant's record")
        cmd.add_argument("name")
        if verb != "show":
            cmd.add_argument("--display-name")
            cmd.add_argument("--tier")
            _budget_options(cmd)
        cmd.set_defaults(handler=_directory, kind="tenants", verb=verb)
    for kind, key in (("teams", "name"), ("users", "user_id")):
        group = commands.add_parser(kind, help=f"a tenant's {kind}").add_subparsers(required=True)
        for verb in ("create", "list", "show", "update", "delete"):
            cmd = group.add_parser(verb, help=f"{verb} {kind}")
            cmd.add_argument("--tenant")
            if verb != "list":
                cmd.add_argument(key)
            if verb in ("create", "update"):
                cmd.add_argument("--tier")
                if kind == "users":
                    cmd.add_argument("--team")
                    cmd.add_argument("--role")
                _budget_options(cmd)
            cmd.set_defaults(handler=_directory, kind=kind, verb=verb)


#: What a budget option takes to clear the budget (the admin API's null).
CLEAR = "none"


def _count(raw: str) -> int | None:
    if raw == CLEAR:
        return None
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError("expected a whole number, zero or more, or none")
    return value


def _dollars(raw: str) -> float | None:
    if raw == CLEAR:
        return None
    value = float(raw)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("expected a number of dollars, zero or more, or none")
    return value


def _budget_options(cmd: Any) -> None:
    """A user's, team's or tenant's budgets: that scope's limits over rate_limits.yaml's (a
    user's over their tier's). ``none`` clears one; an option not given leaves its budget
    as it is, so it is left out of the namespace (SUPPRESS) rather than defaulting to the
    ``None`` that "none" gives."""
    for flag, parse in (
        ("--requests-per-minute", _count),
        ("--tokens-per-month", _count),
        ("--cost-per-month-usd", _dollars),
    ):
        cmd.add_argument(
            flag, type=parse, default=argparse.SUPPRESS, metavar=f"N|{CLEAR}",
            help=f"{CLEAR} clears it",
        )  # fmt: skip


def _directory(args: argparse.Namespace, settings: Settings) -> int:
    from llm_gateway.auth.directory import BUDGETS, Directory
    from llm_gateway.errors import GatewayError
    from llm_gateway.storage import Database

    given = {
        name: getattr(args, name)
        for name in ("display_name", "tier", "team", "role")
        if getattr(args, name, None) is not None
    }
    given |= {name: getattr(args, name) for name in BUDGETS if name in args}  # None: clear

    def act(d: Directory) -> Coroutine[Any, Any, Any]:
        tenant, name = getattr(args, "tenant", None), getattr(args, "name", None)
        user = getattr(args, "user_id", None)
        table: dict[tuple[str, str], Callable[[], Coroutine[Any, Any, Any]]] = {
            ("tenants", "show"): lambda: d.tenant(name),
            ("tenants", "create"): lambda: d.update_tenant(name, **given),
            ("tenants", "update"): lambda: d.update_tenant(name, **given),
            ("teams", "create"): lambda: d.create_team(
                tenant, str(name), args.tier, **{k: v for k, v in given.items() if k in BUDGETS}
            ),
            ("teams", "list"): lambda: d.teams(tenant),
            ("teams", "show"): lambda: d.team(tenant, str(name)),
            ("teams", "update"): lambda: d.update_team(tenant, str(name), **given),
            ("teams", "delete"): lambda: d.delete_team(tenant, str(name)),
            ("users", "create"): lambda: d.create_user(tenant, str(user), **given),
            ("users", "list"): lambda: d.users(tenant),
            ("users", "show"): lambda: d.user(tenant, str(user)),
            ("users", "update"): lambda: d.update_user(tenant, str(user), **given),
            ("users", "delete"): lambda: d.delete_user(tenant, str(user)),
        }
        return table[(args.kind, args.verb)]()

    async def run() -> int:
        db = Database(settings.storage.sqlalchemy_url)
        try:
            if db.is_sqlite:
                await db.upgrade()
            try:
                done = await act(Directory(db.sessions))
            except GatewayError as exc:  # not found, exists already
                print(f"error: {exc}", file=sys.stderr)
                return 1
        finally:
            await db.dispose()
        for item in done if isinstance(done, list) else [done]:
            fields = dataclasses.asdict(item)
            print(" ".join(f"{k}={'-' if v is None else v}" for k, v in fields.items()))
        return 0

    return _run(run())


def _keys_create(args: argparse.Namespace, settings: Settings) -> int:
    try:
        expires = _parse_expiry(args.expires) if args.expires else None
    except ValueError as exc:
        print(f"error: --expires: {exc}", file=sys.stderr)
        return 1

    async def create(admin: KeyAdmin) -> int:
        from llm_gateway.auth.key_admin import KeySpec

        spec = KeySpec(
            user_id=args.user, role=args.role, tier=args.tier, team=args.team,
            expires_at=expires, description=args.description, environment=args.environment,
            allowed_models=_names(args.models),
        )  # fmt: skip
        key, info = await admin.create(spec, args.tenant)
        print(key)
        print(f"key id {info.key_id}: store the key now, it cannot be shown again", file=sys.stderr)
        return 0

    return _run(_with_keys(settings, create))


def _names(listed: str | None) -> tuple[str, ...] | None:
    if listed is None:
        return None
    return tuple(name.strip() for name in listed.split(",") if name.strip())


def _keys_list(args: argparse.Namespace, settings: Settings) -> int:
    async def show(admin: KeyAdmin) -> int:
        from llm_gateway.auth.key_admin import EVERY_TENANT

        rows = await admin.list(EVERY_TENANT if args.tenant is None else args.tenant)
        print(f"{'KEY ID':<14} {'USER':<20} {'ROLE':<10} {'TIER':<12} {'TENANT':<12} STATE")
        now = datetime.now(UTC)
        for k in rows:
            state = k.state(now)
            if k.revoked_at is not None:
                state = f"revoked {k.revoked_at:%Y-%m-%d}"
            tier, tenant = k.tier or "-", k.tenant or "-"
            print(f"{k.key_id:<14} {k.user_id:<20} {k.role:<10} {tier:<12} {tenant:<12} {state}")
        return 0

    return _run(_with_keys(settings, show))


def _keys_show(args: argparse.Namespace, settings: Settings) -> int:
    async def show(admin: KeyAdmin) -> int:
        from llm_gateway.auth.key_admin import EVERY_TENANT, ApiKeyNotFound

        try:
            info = await admin.show(args.key_id, EVERY_TENANT)
        except ApiKeyNotFound:
            print(f"error: no key with id {args.key_id}", file=sys.stderr)
            return 1
        for name, value in dataclasses.asdict(info).items():
            shown = ",".join(value) if isinstance(value, tuple) else value
            print(f"{name:<14} {'-' if shown is None else shown}")
        print(f"{'state':<14} {info.state()}")
        return 0

    return _run(_with_keys(settings, show))


def _keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async def revoke(admin: KeyAdmin) -> int:
        from llm_gateway.auth.key_admin import EVERY_TENANT, ApiKeyNotFound

        try:
            before = await admin.show(args.key_id, EVERY_TENANT)
        except ApiKeyNotFound:
            before = None
        if before is None or before.revoked_at is not None:
            print(f"error: no active key with id {args.key_id}", file=sys.stderr)
            return 1
        await admin.revoke(args.key_id, EVERY_TENANT)
        print(f"revoked {args.key_id}")
        return 0

    return _run(_with_keys(settings, revoke))


def _keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    async def rotate(admin: KeyAdmin) -> int:
        from llm_gateway.auth.key_admin import EVERY_TENANT
        from llm_gateway.errors import GatewayError

        try:
            key, new, old = await admin.rotate(args.key_id, EVERY_TENANT, args.overlap)
        except GatewayError as exc:  # not found, not active, a bad overlap
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(key)
        until = f"until {old.expires_at:%Y-%m-%dT%H:%M:%SZ}" if old.expires_at else "still"
        print(
            f"key id {new.key_id} replaces {old.key_id} (which works {until}): "
            "store the key now, it cannot be shown again",
            file=sys.stderr,
        )
        return 0

    return _run(_with_keys(settings, rotate))


def _mfa_enroll(args: argparse.Namespace, settings: Settings) -> int:
    from llm_gateway.dlp.vault_crypto import resolve_vault_key
    from llm_gateway.hitl.mfa import MfaCodes
    from llm_gateway.state import MemoryStore
    from llm_gateway.storage import Database

    async def enroll() -> int:
        db = Database(settings.storage.sqlalchemy_url)
        try:
            if db.is_sqlite:
                await db.upgrade()
            key = resolve_vault_key(settings.dlp.vault_key, settings.dlp.data_dir)
            codes = MfaCodes(db.sessions, key, MemoryStore())  # enrolment uses no code
            secret, uri = await codes.enroll(args.user, args.tenant)
        finally:
            await db.dispose()
        print(secret)
        print(uri)
        print("add it to an authenticator app now: it cannot be shown again", file=sys.stderr)
        return 0

    return _run(enroll())


def _policy_eval(args: argparse.Namespace, settings: Settings) -> int:
    from llm_gateway.policy.commands import eval_command

    return eval_command(args.input, settings.policy)


def _policy_test(args: argparse.Namespace, settings: Settings) -> int:
    from llm_gateway.policy.commands import test_command

    return test_command(settings.policy)


def _dlp_scan(args: argparse.Namespace, settings: Settings) -> int:
    from llm_gateway.dlp.commands import scan_command

    return scan_command(args.file, settings, redact=args.redact)


def _usage(args: argparse.Namespace, settings: Settings) -> int:
    from llm_gateway.storage import Database, usage

    now = datetime.now(UTC)
    try:
        start = usage.parse_moment(args.start) if args.start else usage.month_start(now)
        end = usage.parse_moment(args.end) if args.end else now
    except ValueError as exc:
        print(f"error: --from/--to: {exc}", file=sys.stderr)
        return 1
    where = usage.UsageFilter(
        start, end, user=args.user, restrict_tenant=args.tenant is not None, tenant_is=args.tenant
    )

    async def report() -> int:
        db = Database(settings.storage.sqlalchemy_url)
        try:
            async with db.sessions() as session:
                rows = await usage.usage_totals(session, usage.GroupBy(args.group_by), where)
        finally:
            await db.dispose()
        print(f"{args.group_by.upper():<24} {'REQUESTS':>9} {'TOKENS IN':>11} "
              f"{'TOKENS OUT':>11} {'TOKENS':>11} {'COST USD':>12}")  # fmt: skip
        labelled = [(row.group if row.group is not None else "-", row) for row in rows]
        for label, row in [*labelled, ("TOTAL", usage.total(rows))]:
            print(f"{label:<24} {row.requests:>9} {row.tokens_in:>11} {row.tokens_out:>11} "
                  f"{row.tokens_used:>11} {row.cost_usd:>12.6f}")  # fmt: skip
        return 0

    return _run(report())


def _moments(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    from llm_gateway.storage.usage import parse_moment

    start = parse_moment(args.start) if args.start else None
    end = parse_moment(args.end) if args.end else None
    return start, end


def _audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from llm_gateway.audit.integrity import verify
    from llm_gateway.storage import Database

    try:
        start, end = _moments(args)
    except ValueError as exc:
        print(f"error: --from/--to: {exc}", file=sys.stderr)
        return 1

    async def check() -> int:
        db = Database(settings.storage.sqlalchemy_url)
        try:
            done = await verify(db, args.tenant, start, end)
        finally:
            await db.dispose()
        if done.broken is not None:
            print(f"error: the audit chain is broken: {done.broken}", file=sys.stderr)
            return 1
        print(f"verified {done.rows} rows ({done.tenants} chains)")
        return 0

    return _run(check())


def _audit_prune(args: argparse.Namespace, settings: Settings) -> int:
    import getpass

    from llm_gateway.audit.integrity import PruneRefused, prune
    from llm_gateway.storage import Database
    from llm_gateway.storage.usage import parse_moment

    try:
        before = parse_moment(args.before)
    except ValueError as exc:
        print(f"error: --before: {exc}", file=sys.stderr)
        return 1

    async def cut() -> int:
        db = Database(settings.storage.sqlalchemy_url)
        try:
            done = await prune(db, args.tenant, before, f"cli:{getpass.getuser()}")
        except PruneRefused as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        finally:
            await db.dispose()
        print(f"pruned {done.rows} rows of tenant {done.tenant or '(none)'}; the chain now starts "
              f"after seq {done.anchor.seq} (audited as request {done.request_id})")  # fmt: skip
        return 0

    return _run(cut())


def _audit_export(args: argparse.Namespace, settings: Settings) -> int:
    from llm_gateway.storage import Database
    from llm_gateway.storage.audit_query import AuditQuery

    try:
        start, end = _moments(args)
    except ValueError as exc:
        print(f"error: --from/--to: {exc}", file=sys.stderr)
        return 1
    query = AuditQuery(
        start=start, end=end, restrict_tenant=args.tenant is not None,
        tenant_is=args.tenant or None,
    )  # fmt: skip

    out = open(args.out, "w", newline="", encoding="utf-8") if args.out else sys.stdout  # noqa: SIM115

    async def export() -> int:
        db = Database(settings.storage.sqlalchemy_url)
        try:
            count = await _write_rows(db, query, args.format, out)
        finally:
            if out is not sys.stdout:
                out.close()
            await db.dispose()
        print(f"exported {count} rows", file=sys.stderr)
        return 0

    return _run(export())


async def _write_rows(db: Any, query: Any, form: str, out: Any) -> int:
    import csv

    import orjson

    from llm_gateway.storage.audit_query import FIELDS, stream

    writer = csv.DictWriter(out, fieldnames=FIELDS) if form == "csv" else None
    if writer is not None:
        writer.writeheader()
    count = 0
    async with db.engine.connect() as conn:
        async for row in stream(conn, query):
            if writer is None:
                out.write(orjson.dumps(row).decode() + "\n")
            else:  # the JSON columns as JSON text, NULL as an empty cell
                writer.writerow({
                    k: orjson.dumps(v).decode() if isinstance(v, (list, dict)) else v
                    for k, v in row.items()
                })  # fmt: skip
            count += 1
    return count


def _report_compliance(args: argparse.Namespace, settings: Settings) -> int:
    from llm_gateway.reports.commands import compliance_command

    return _run(
        compliance_command(
            settings, args.framework, args.start, args.end, args.tenant, args.out, args.format
        )
    )


def _db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from llm_gateway.storage import Database

    async def upgrade() -> int:
        db = Database(settings.storage.sqlalchemy_url)
        try:
            await db.upgrade()
        finally:
            await db.dispose()
        print("database schema is up to date")
        return 0

    return _run(upgrade())


# --- helpers ---------------------------------------------------------------


async def _database_problem(settings: Settings) -> str | None:
    """Why the gateway cannot use its database (None: it can): SQLite is migrated here."""
    from llm_gateway.storage import Database
    from llm_gateway.storage.db import SchemaOutdated
    from llm_gateway.storage.failures import cause, where

    db = Database(settings.storage.sqlalchemy_url)
    try:
        if db.is_sqlite:
            await db.upgrade()
        else:
            await db.require_current()
    except SchemaOutdated as exc:
        return f"the database {where(db.url)}: {exc}"
    except Exception as exc:  # noqa: BLE001 - any failure to reach or migrate it, named
        return f"the database {where(db.url)} cannot be used: {cause(exc)}"
    finally:
        await db.dispose()
    return None


async def _with_keys(
    settings: Settings, action: Callable[[KeyAdmin], Coroutine[Any, Any, int]]
) -> int:
    from llm_gateway.auth.api_keys import ApiKeyStore
    from llm_gateway.auth.key_admin import KeyAdmin
    from llm_gateway.storage import Database

    db = Database(settings.storage.sqlalchemy_url)
    try:
        if db.is_sqlite:
            await db.upgrade()
        return await action(KeyAdmin(ApiKeyStore(db.sessions, cache_seconds=0)))
    finally:
        await db.dispose()


def _run(coroutine: Coroutine[Any, Any, int]) -> int:
    try:
        return asyncio.run(coroutine)
    except Exception as exc:  # noqa: BLE001 - the CLI's outermost boundary
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _parse_expiry(value: str) -> datetime:
    if match := _DURATION.match(value.strip()):
        amount, unit = match.groups()
        return datetime.now(UTC) + timedelta(**{_UNITS[unit]: int(amount)})
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an ISO date/time or a duration such as 30d") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


if __name__ == "__main__":
    sys.exit(main())
