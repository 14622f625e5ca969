"""A framework's compliance report: its controls, each with the period's evidence and a status.

A control is ``evidenced`` when any of its kinds of evidence has activity in
the period, ``no activity`` when none has, and ``exception`` when it rests on
the hash chain and the chain's verification found a break.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from llm_gateway.reports.evidence import Day, Evidence, Finding, Integrity, Item, Scope, gather
from llm_gateway.reports.frameworks import DISCLAIMER, FRAMEWORKS, ITEM_TITLES, Control, Framework
from llm_gateway.storage.db import Database

Status = Literal["evidenced", "no activity", "exception"]


class EvidenceItem(BaseModel):
    key: str
    title: str
    item: Item | None = None  # None for "integrity": see the control's integrity
    integrity: Integrity | None = None


class ControlReport(BaseModel):
    id: str
    title: str
    evidence_provided: str
    status: Status
    evidence: list[EvidenceItem]


class ComplianceReport(BaseModel):
    framework: str
    framework_name: str
    reference: str
    disclaimer: str
    start: datetime
    end: datetime
    tenant: str | None
    all_tenants: bool
    generated_at: datetime
    requests: int
    controls: list[ControlReport]
    days: list[Day]
    findings: list[Finding]
    integrity: Integrity

    def filename(self, extension: str) -> str:
        return f"compliance-{self.framework}-{self.start:%Y%m%d}-{self.end:%Y%m%d}.{extension}"


async def compliance_report(db: Database, framework: str, scope: Scope) -> ComplianceReport:
    """``framework``'s report (a key of ``FRAMEWORKS``) over ``scope``'s rows."""
    return build(FRAMEWORKS[framework], await gather(db, scope))


def build(framework: Framework, evidence: Evidence) -> ComplianceReport:
    return ComplianceReport(
        framework=framework.key, framework_name=framework.name, reference=framework.reference,
        disclaimer=DISCLAIMER, start=evidence.start, end=evidence.end, tenant=evidence.tenant,
        all_tenants=evidence.all_tenants, generated_at=evidence.generated_at,
        requests=evidence.requests,
        controls=[_control(c, evidence) for c in framework.controls],
        days=evidence.days, findings=evidence.findings, integrity=evidence.integrity,
    )  # fmt: skip


def _control(control: Control, evidence: Evidence) -> ControlReport:
    items = [
        EvidenceItem(key=key, title=ITEM_TITLES[key], integrity=evidence.integrity)
        if key == "integrity"
        else EvidenceItem(key=key, title=ITEM_TITLES[key], item=evidence.items[key])
        for key in control.items
    ]
    return ControlReport(
        id=control.id, title=control.title, evidence_provided=control.evidence,
        status=_status(items), evidence=items,
    )  # fmt: skip


def _status(items: list[EvidenceItem]) -> Status:
    checks = [e.integrity for e in items if e.integrity is not None]
    if any(not check.intact for check in checks):
        return "exception"
    active = any(e.item is not None and e.item.total > 0 for e in items)
    return "evidenced" if active or any(check.rows for check in checks) else "no activity"
