"""``llm-gateway report compliance``: a framework's report from the database, to a file.

It reads the database directly, as ``audit export`` does (no gateway need run): one
tenant's rows with ``--tenant`` (``''`` for the rows without one), every tenant's
without. The form follows ``--format``, else ``--out``'s extension (``.json``,
``.html``, ``.pdf``); without ``--out`` the report goes to standard output.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

from llm_gateway.reports.compliance import ComplianceReport, compliance_report
from llm_gateway.reports.evidence import Scope
from llm_gateway.reports.render import FORMATS, Format, RenderUnavailable, render
from llm_gateway.settings import Settings
from llm_gateway.storage import Database
from llm_gateway.storage.usage import month_start, parse_moment

EXTENSIONS: dict[str, Format] = {".json": "json", ".html": "html", ".htm": "html", ".pdf": "pdf"}


async def compliance_command(
    settings: Settings,
    framework: str,
    start: str | None,
    end: str | None,
    tenant: str | None,
    out: str | None,
    form: str | None,
) -> int:
    try:
        chosen = _format(form, out)
        now = datetime.now(UTC)
        begin = parse_moment(start) if start else month_start(now)
        finish = parse_moment(end) if end else now
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if finish <= begin:
        print("error: --to must be later than --from", file=sys.stderr)
        return 1
    scope = Scope(begin, finish, tenant=tenant or None, all_tenants=tenant is None)
    report = await _report(settings, framework, scope)
    try:
        body = render(report, chosen)
    except RenderUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if out is not None:
        await asyncio.to_thread(Path(out).write_bytes, body)
    elif chosen == "pdf":
        sys.stdout.buffer.write(body)
    else:
        sys.stdout.write(body.decode())
    statuses = ", ".join(f"{c.id} {c.status}" for c in report.controls)
    print(f"{report.framework_name}: {report.requests} requests; {statuses}", file=sys.stderr)
    if not report.integrity.intact:
        print(f"warning: the audit chain is broken: {report.integrity.problem}", file=sys.stderr)
    return 0


def _format(form: str | None, out: str | None) -> Format:
    if form is not None:
        for known in FORMATS:
            if form == known:
                return known
        raise ValueError(f"--format: expected one of {', '.join(FORMATS)}")
    if out is None:
        return "json"
    suffix = Path(out).suffix.lower()
    if suffix not in EXTENSIONS:
        raise ValueError(f"--out: {out}: name a .json, .html or .pdf file, or give --format")
    return EXTENSIONS[suffix]


async def _report(settings: Settings, framework: str, scope: Scope) -> ComplianceReport:
    db = Database(settings.storage.sqlalchemy_url)
    try:
        return await compliance_report(db, framework, scope)
    finally:
        await db.dispose()
