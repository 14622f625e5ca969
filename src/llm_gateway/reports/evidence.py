"""What the audit trail shows about a period: counts aggregated in the database, examples.

:func:`gather` reads one tenant's rows (or every tenant's) of ``[start, end)``
and answers an :class:`Evidence`: for each kind of evidence (access decisions,
refusals, DLP events and findings, confirmations, management actions, policy
revisions, providers, errors, retention cuts) its counts by a key and up to
:data:`EXAMPLES` request ids; the requests, refusals and DLP events of each
day; and the hash chain's verification over the period. Every count is a
``GROUP BY`` in the database, so a long period never loads its rows; the chain
check streams them (:func:`llm_gateway.audit.integrity.verify`).

The DLP findings (``dlp_findings``, a JSON list of ``{entity, direction, count,
action}``) are expanded by the database's own JSON functions: ``json_each``
on SQLite, ``jsonb_array_elements`` on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    case,
    cast,
    distinct,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection

from llm_gateway.audit.chain import NO_TENANT
from llm_gateway.audit.integrity import verify
from llm_gateway.storage.db import Database
from llm_gateway.storage.models import AuditLog, AuditPrune
from llm_gateway.storage.usage import CHAT_ENDPOINTS

LOG = AuditLog.__table__
PRUNES = AuditPrune.__table__
#: Example request ids kept per kind of evidence.
EXAMPLES = 5
#: Refusals of access: no valid credential, or not allowed (by role or by the policy).
REFUSED_STATUSES = (401, 403)
#: Entities of the names-and-places detector (NER), personal data like the built-in PII rules.
NER_ENTITIES = ("PERSON", "LOCATION", "NRP")


@dataclass(frozen=True)
class Scope:
    """Which rows: ``[start, end)``, and one tenant's (``tenant`` None: the rows without
    one) unless ``all_tenants``."""

    start: datetime
    end: datetime
    tenant: str | None = None
    all_tenants: bool = False

    def rows(self) -> list[ColumnElement[bool]]:
        where = [LOG.c.timestamp >= self.start, LOG.c.timestamp < self.end]
        if not self.all_tenants:
            where.append(
                LOG.c.tenant.is_(None) if self.tenant is None else LOG.c.tenant == self.tenant
            )
        return where

    def prunes(self) -> list[ColumnElement[bool]]:
        where = [PRUNES.c.pruned_at >= self.start, PRUNES.c.pruned_at < self.end]
        if not self.all_tenants:
            where.append(PRUNES.c.tenant == (self.tenant or NO_TENANT))
        return where


class Item(BaseModel):
    """One kind of evidence: how many, broken down by a key, and example request ids."""

    total: int
    unit: str  # what total counts: "requests", "findings", "cuts"...
    counts: dict[str, int]
    examples: list[str]


class Finding(BaseModel):
    """The findings of one entity type, direction and action: spans, and requests with them."""

    entity: str
    category: str  # pii, secret or custom (a rule of the deployment's own)
    direction: str  # request or response
    action: str  # block, redact or alert
    findings: int
    requests: int


class Day(BaseModel):
    day: str  # YYYY-MM-DD (UTC)
    requests: int
    refusals: int
    dlp_events: int


class Integrity(BaseModel):
    """The hash chain's check over the period's rows."""

    intact: bool
    rows: int
    chains: int
    problem: str | None = None
    request_id: str | None = None  # the first row that does not fit, if it is known


class Evidence(BaseModel):
    start: datetime
    end: datetime
    tenant: str | None
    all_tenants: bool
    generated_at: datetime
    requests: int
    items: dict[str, Item]
    findings: list[Finding]
    days: list[Day]
    integrity: Integrity


@cache
def entity_categories() -> dict[str, str]:
    """The category of each built-in entity type (``pii`` or ``secret``), NER's included."""
    from llm_gateway.dlp.builtin import PII_FILE, SECRETS_FILE
    from llm_gateway.dlp.rules import load_rules

    found = {entity: "pii" for entity in NER_ENTITIES}
    for path in (PII_FILE, SECRETS_FILE):
        found |= {rule.entity: str(rule.category) for rule in load_rules(path, builtin=True)}
    return found


async def gather(db: Database, scope: Scope) -> Evidence:
    """The evidence of ``scope``'s rows, and the chain's verification over them."""
    async with db.engine.connect() as conn:
        collector = _Collector(conn, scope)
        requests = await collector.scalar(select(func.count()).select_from(LOG))
        findings = await collector.findings()
        items = {
            "access_decisions": await collector.access_decisions(),
            "access_refusals": await collector.refusals(),
            "authentication": await collector.authentication(),
            "dlp_events": await collector.dlp_events(),
            "pii_redacted": await collector.pii_redacted(findings),
            "secrets_blocked": await collector.secrets_blocked(findings),
            "outbound_screening": _screening(findings),
            "confirmations": await collector.confirmations(),
            "management_actions": await collector.management(),
            "policy_revisions": await collector.revisions(),
            "providers": await collector.providers(),
            "errors": await collector.errors(),
            "retention": await collector.retention(),
            "records": await collector.records(requests),
        }
        days = await collector.days()
    integrity = await _integrity(db, scope)
    return Evidence(
        start=scope.start, end=scope.end, tenant=scope.tenant, all_tenants=scope.all_tenants,
        generated_at=datetime.now(UTC), requests=requests, items=items, findings=findings,
        days=days, integrity=integrity,
    )  # fmt: skip


async def _integrity(db: Database, scope: Scope) -> Integrity:
    key = None if scope.all_tenants else (scope.tenant or NO_TENANT)
    done = await verify(db, key, scope.start, scope.end)
    broken = done.broken
    return Integrity(
        intact=broken is None, rows=done.rows, chains=done.tenants,
        problem=str(broken) if broken is not None else None,
        request_id=broken.request_id if broken is not None else None,
    )  # fmt: skip


class _Collector:
    """The queries, each confined to the scope's rows."""

    def __init__(self, conn: AsyncConnection, scope: Scope) -> None:
        self.conn = conn
        self.scope = scope
        self.postgres = conn.dialect.name == "postgresql"

    async def scalar(self, query: Select[Any]) -> int:
        return int((await self.conn.execute(query.where(*self.scope.rows()))).scalar() or 0)

    async def grouped(self, key: Any, *where: ColumnElement[bool]) -> dict[str, int]:
        query = select(key, func.count()).where(*self.scope.rows(), *where).group_by(key)
        rows = (await self.conn.execute(query.order_by(key))).all()
        return {str(k): int(n) for k, n in rows if k is not None}

    async def examples(self, *where: ColumnElement[bool]) -> list[str]:
        query = (
            select(LOG.c.request_id)
            .where(*self.scope.rows(), *where)
            .order_by(LOG.c.id.desc())
            .limit(EXAMPLES)
        )
        return [str(r) for r in (await self.conn.execute(query)).scalars()]

    async def item(self, key: Any, *where: ColumnElement[bool], unit: str = "requests") -> Item:
        counts = await self.grouped(key, *where)
        examples = await self.examples(*where) if counts else []
        return Item(total=sum(counts.values()), unit=unit, counts=counts, examples=examples)

    async def access_decisions(self) -> Item:
        item = await self.item(LOG.c.policy_decision, LOG.c.policy_decision.is_not(None))
        denied = LOG.c.policy_decision.in_(("deny", "error"))
        if item.counts.keys() - {"allow"}:
            item.examples = await self.examples(denied)  # what was refused says the most
        return item

    async def refusals(self) -> Item:
        code = func.coalesce(LOG.c.error_code, cast(LOG.c.status, String))
        return await self.item(code, LOG.c.status.in_(REFUSED_STATUSES))

    async def authentication(self) -> Item:
        method = func.coalesce(LOG.c.auth_method, literal_column("'none'"))
        item = await self.item(method)
        failed = LOG.c.status == 401
        failures = await self.scalar(select(func.count()).select_from(LOG).where(failed))
        if failures:
            item.counts["failed (401)"] = failures
            item.examples = await self.examples(failed)
        return item

    async def dlp_events(self) -> Item:
        return await self.item(LOG.c.dlp_action, LOG.c.dlp_action.is_not(None))

    async def findings(self) -> list[Finding]:
        element, entity, direction, action, count = self._elements()
        query = (
            select(entity, direction, action, func.sum(count), func.count(distinct(LOG.c.id)))
            .select_from(LOG)
            .join(element, true())
            .where(*self.scope.rows(), LOG.c.dlp_findings.is_not(None))
            .group_by(entity, direction, action)
            .order_by(entity, direction, action)
        )
        categories = entity_categories()
        return [
            Finding(entity=str(e), category=categories.get(str(e), "custom"), direction=str(d),
                    action=str(a), findings=int(n or 0), requests=int(r))
            for e, d, a, n, r in (await self.conn.execute(query)).all()
        ]  # fmt: skip

    def _elements(self) -> tuple[Any, Any, Any, Any, Any]:
        """The findings as a table valued function, and its fields as columns."""
        if self.postgres:
            element = (
                func.jsonb_array_elements(cast(LOG.c.dlp_findings, JSONB))
                .table_valued("value")
                .alias("finding")
            )
            value = element.c.value

            def field(name: str) -> Any:
                return value.op("->>")(name)

            return (
                element,
                field("entity"),
                field("direction"),
                field("action"),
                cast(field("count"), Integer),
            )
        element = func.json_each(LOG.c.dlp_findings).table_valued("value").alias("finding")

        def extract(name: str) -> Any:
            return func.json_extract(element.c.value, f"$.{name}")

        return element, extract("entity"), extract("direction"), extract("action"), extract("count")

    async def _with_findings(self, entities: Sequence[str], action: str) -> list[str]:
        """Example requests with a finding of one of ``entities`` that was given ``action``."""
        if not entities:
            return []
        element, entity, _, acted, _ = self._elements()
        query = (
            select(LOG.c.request_id)
            .select_from(LOG)
            .join(element, true())
            .where(*self.scope.rows(), entity.in_(entities), acted == action)
            .group_by(LOG.c.id, LOG.c.request_id)
            .order_by(LOG.c.id.desc())
            .limit(EXAMPLES)
        )
        return [str(r) for r in (await self.conn.execute(query)).scalars()]

    async def pii_redacted(self, findings: list[Finding]) -> Item:
        return await self._findings_item(findings, "pii", "redact")

    async def secrets_blocked(self, findings: list[Finding]) -> Item:
        return await self._findings_item(findings, "secret", "block")

    async def _findings_item(self, findings: list[Finding], category: str, action: str) -> Item:
        counts: dict[str, int] = {}
        for f in findings:
            if f.category == category and f.action == action:
                counts[f.entity] = counts.get(f.entity, 0) + f.findings
        examples = await self._with_findings(sorted(counts), action)
        return Item(total=sum(counts.values()), unit="findings", counts=counts, examples=examples)

    async def confirmations(self) -> Item:
        event = self._after_colon(LOG.c.confirmation)
        item = await self.item(event, LOG.c.confirmation.is_not(None), unit="events")
        opened = LOG.c.confirmation.like("%:challenged")
        if item.counts.get("challenged"):
            item.examples = await self.examples(opened)
        return item

    def _after_colon(self, column: Any) -> Any:
        """``<id>:<event>`` → ``<event>``."""
        if self.postgres:
            return func.split_part(column, ":", 2)
        return func.substr(column, func.instr(column, ":") + 1)

    async def management(self) -> Item:
        return await self.item(LOG.c.endpoint, LOG.c.endpoint.not_in(CHAT_ENDPOINTS))

    async def revisions(self) -> Item:
        return await self.item(LOG.c.policy_revision, LOG.c.policy_revision.is_not(None))

    async def providers(self) -> Item:
        return await self.item(LOG.c.provider, LOG.c.provider.is_not(None))

    async def errors(self) -> Item:
        return await self.item(LOG.c.error_code, LOG.c.error_code.is_not(None))

    async def records(self, requests: int) -> Item:
        chat = await self.scalar(
            select(func.count()).select_from(LOG).where(LOG.c.endpoint.in_(CHAT_ENDPOINTS))
        )
        counts = {"chat calls": chat, "management actions": requests - chat} if requests else {}
        return Item(total=requests, unit="requests", counts=counts,
                    examples=await self.examples() if requests else [])  # fmt: skip

    async def retention(self) -> Item:
        query = select(func.count(), func.coalesce(func.sum(PRUNES.c.rows), 0)).where(
            *self.scope.prunes()
        )
        cuts, removed = (await self.conn.execute(query)).one()
        examples = (
            await self.conn.execute(
                select(PRUNES.c.request_id)
                .where(*self.scope.prunes())
                .order_by(PRUNES.c.id.desc())
                .limit(EXAMPLES)
            )
        ).scalars()
        counts = {"cuts": int(cuts), "rows removed": int(removed)} if cuts else {}
        return Item(
            total=int(cuts), unit="cuts", counts=counts, examples=[str(e) for e in examples]
        )

    async def days(self) -> list[Day]:
        day = self._day(LOG.c.timestamp)
        refused = func.sum(_flag(LOG.c.status.in_(REFUSED_STATUSES)))
        dlp = func.sum(_flag(LOG.c.dlp_action.is_not(None)))
        query = (
            select(day, func.count(), refused, dlp)
            .where(*self.scope.rows())
            .group_by(day)
            .order_by(day)
        )
        return [
            Day(day=str(d)[:10], requests=int(n), refusals=int(r or 0), dlp_events=int(x or 0))
            for d, n, r, x in (await self.conn.execute(query)).all()
        ]

    def _day(self, column: Any) -> Any:
        if self.postgres:
            return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
        return func.substr(column, 1, 10)  # stored as "YYYY-MM-DD HH:MM:SS..." in UTC


def _flag(condition: ColumnElement[bool]) -> Any:
    return case((condition, 1), else_=0)


def _screening(findings: Iterable[Finding]) -> Item:
    """What DLP did to data on its way to a provider (request) and back (response)."""
    counts: dict[str, int] = {}
    for f in findings:
        key = f"{f.direction}: {f.action}"
        counts[key] = counts.get(key, 0) + f.findings
    return Item(total=sum(counts.values()), unit="findings", counts=counts, examples=[])
