"""A compliance report as JSON, as an HTML page (Jinja2, inline SVG charts) and as a PDF
(ReportLab's layout engine and drawings).

JSON needs nothing more than the gateway; HTML and PDF need the ``reports`` extra
(``pip install 'llm-gateway[reports]'``): without it they raise
:class:`RenderUnavailable`, which says so. The charts are the period's requests,
refusals and DLP events per day (consecutive days merged into one bar when the period
is longer than :data:`MAX_BARS` days), drawn from the same bar geometry in both.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, Literal

import orjson

from llm_gateway.reports.compliance import ComplianceReport
from llm_gateway.reports.evidence import Item

if TYPE_CHECKING:
    from reportlab.graphics.shapes import Drawing

Format = Literal["json", "html", "pdf"]
FORMATS: tuple[Format, ...] = ("json", "html", "pdf")
MEDIA_TYPES: dict[Format, str] = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}
MAX_BARS = 62
EXTRA = "pip install 'llm-gateway[reports]'"
STATUS_COLOURS = {"evidenced": "#1a7f37", "no activity": "#6e7781", "exception": "#cf222e"}
SERIES = (
    ("requests", "Requests", "#0969da"),
    ("refusals", "Refusals (401, 403)", "#bf8700"),
    ("dlp_events", "DLP events", "#8250df"),
)


class RenderUnavailable(RuntimeError):
    """The ``reports`` extra (Jinja2, ReportLab) is not installed."""


def render(report: ComplianceReport, form: Format) -> bytes:
    renderers: dict[Format, Callable[[ComplianceReport], bytes]] = {
        "json": to_json, "html": lambda r: to_html(r).encode(), "pdf": to_pdf,
    }  # fmt: skip
    return renderers[form](report)


def to_json(report: ComplianceReport) -> bytes:
    return orjson.dumps(report.model_dump(mode="json"), option=orjson.OPT_INDENT_2)


# --- the charts' data ------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    label: str  # the first day (and the last, when days are merged)
    requests: int
    refusals: int
    dlp_events: int

    def value(self, series: str) -> int:
        return int(getattr(self, series))


def bars(report: ComplianceReport) -> list[Bar]:
    """Every day of the period (those without a row as zeros), merged to ``MAX_BARS`` bars."""
    first, last = report.start.date(), (report.end - timedelta(microseconds=1)).date()
    days = max(1, (last - first).days + 1)
    per_bar = -(-days // MAX_BARS)
    count = -(-days // per_bar)
    sums = [[0, 0, 0] for _ in range(count)]
    for day in report.days:  # only the days with rows: a decade costs no more than a week
        index = (date.fromisoformat(day.day) - first).days // per_bar
        if 0 <= index < count:
            for i, value in enumerate((day.requests, day.refusals, day.dlp_events)):
                sums[index][i] += value
    out = []
    for index, (requests, refusals, dlp_events) in enumerate(sums):
        begin = first + timedelta(days=index * per_bar)
        finish = first + timedelta(days=min(days, (index + 1) * per_bar) - 1)  # never past 9999
        out.append(Bar(_label(begin, finish), requests, refusals, dlp_events))
    return out


def _label(first: date, last: date) -> str:
    return first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"


@dataclass(frozen=True)
class Rect:
    x: float
    y: float  # from the top
    width: float
    height: float


def geometry(values: Sequence[int], width: float, height: float) -> list[Rect]:
    """Bars for ``values`` in a ``width`` by ``height`` box, the tallest filling it."""
    top = max(values, default=0) or 1
    slot = width / max(1, len(values))
    gap = slot * 0.15 if len(values) > 1 else 0
    out = []
    for i, v in enumerate(values):
        h = height * v / top
        out.append(Rect(i * slot + gap / 2, height - h, slot - gap, h))
    return out


# --- HTML --------------------------------------------------------------------------

CHART_W, CHART_H = 640.0, 120.0


def svg_chart(values: Sequence[int], labels: Sequence[str], title: str, colour: str) -> str:
    """An inline SVG bar chart (escaped by the caller's template: only numbers and labels)."""
    from markupsafe import escape

    pad_l, pad_b, pad_t = 40.0, 18.0, 16.0
    rects = geometry(values, CHART_W - pad_l, CHART_H - pad_b - pad_t)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {CHART_W:.0f} {CHART_H:.0f}" width="{CHART_W:.0f}" '
        f'height="{CHART_H:.0f}" aria-label="{escape(title)}">',
        f'<text x="0" y="11" font-size="11" font-weight="bold">{escape(title)}</text>',
        f'<text x="{pad_l - 4}" y="{pad_t + 9}" font-size="9" text-anchor="end">'
        f"{max(values, default=0)}</text>",
        f'<text x="{pad_l - 4}" y="{CHART_H - pad_b}" font-size="9" text-anchor="end">0</text>',
        f'<line x1="{pad_l}" y1="{CHART_H - pad_b}" x2="{CHART_W}" y2="{CHART_H - pad_b}" '
        'stroke="#8c959f" stroke-width="1"/>',
    ]
    for rect, value, label in zip(rects, values, labels, strict=True):
        parts.append(
            f'<rect x="{pad_l + rect.x:.2f}" y="{pad_t + rect.y:.2f}" width="{rect.width:.2f}" '
            f'height="{rect.height:.2f}" fill="{colour}"><title>{escape(label)}: {value}'
            "</title></rect>"
        )
    if labels:
        parts.append(
            f'<text x="{pad_l}" y="{CHART_H - 4}" font-size="9">{escape(labels[0])}</text>'
            f'<text x="{CHART_W}" y="{CHART_H - 4}" font-size="9" text-anchor="end">'
            f"{escape(labels[-1])}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: ComplianceReport) -> str:
    try:
        import jinja2
        from markupsafe import Markup
    except ImportError as exc:
        raise RenderUnavailable(f"HTML reports need Jinja2: {EXTRA}") from exc
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("llm_gateway.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["quantity"] = quantity
    data = bars(report)
    labels = [b.label for b in data]
    charts = [
        Markup(svg_chart([b.value(key) for b in data], labels, title, colour))  # noqa: S704 - built from escaped parts
        for key, title, colour in SERIES
    ]
    return env.get_template("compliance.html").render(
        report=report, charts=charts, colours=STATUS_COLOURS, scope=scope_text(report)
    )


def quantity(item: Item) -> str:
    """``3 requests``, ``1 request``."""
    unit = item.unit[:-1] if item.total == 1 and item.unit.endswith("s") else item.unit
    return f"{item.total} {unit}"


def scope_text(report: ComplianceReport) -> str:
    if report.all_tenants:
        return "every tenant"
    return f"tenant {report.tenant}" if report.tenant is not None else "rows without a tenant"


def period_text(report: ComplianceReport) -> str:
    return f"{report.start.isoformat()} to {report.end.isoformat()} (end exclusive)"


# --- PDF ---------------------------------------------------------------------------


def to_pdf(report: ComplianceReport) -> bytes:
    try:
        from reportlab.lib import colors
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.styles import getSampleStyleSheet
        from reportlab.lib.units import mm
        from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer
    except ImportError as exc:
        raise RenderUnavailable(f"PDF reports need ReportLab: {EXTRA}") from exc
    styles = getSampleStyleSheet()
    out = io.BytesIO()
    doc = SimpleDocTemplate(
        out, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=16 * mm,
        bottomMargin=16 * mm, title=f"{report.framework_name} compliance evidence",
        author="LLM Security Gateway", subject=period_text(report),
    )  # fmt: skip
    story: list[Any] = [
        Paragraph(_x(f"{report.framework_name}: evidence from the LLM gateway"), styles["Title"]),
        Paragraph(
            _x(
                f"{report.reference}. Period {period_text(report)}; {scope_text(report)}; "
                f"generated {report.generated_at.isoformat()}."
            ),
            styles["Normal"],
        ),
        Spacer(1, 3 * mm),
        Paragraph(_x(report.disclaimer), styles["Italic"]),
        Spacer(1, 4 * mm),
        _summary_table(report, colors),
        Spacer(1, 5 * mm),
        Paragraph("Activity in the period", styles["Heading2"]),
    ]
    data = bars(report)
    for key, title, colour in SERIES:
        story += [_pdf_chart([b.value(key) for b in data], data, title, colour), Spacer(1, 2 * mm)]
    for control in report.controls:
        story += _control_story(control, styles, colors)
    story += _integrity_story(report, styles)
    doc.build(story)
    return out.getvalue()


def _x(text: str) -> str:
    """Text for a ReportLab paragraph (whose markup is XML-like)."""
    from xml.sax.saxutils import escape

    return escape(text)


def _table(rows: list[list[str]], colors: Any, widths: list[float] | None = None) -> Any:
    from reportlab.platypus import Table, TableStyle

    table = Table(rows, colWidths=widths, repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle([
            ("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 9),
            ("FONT", (0, 1), (-1, -1), "Helvetica", 9),
            ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eaeef2")),
            ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#d0d7de")),
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ])
    )  # fmt: skip
    return table


def _summary_table(report: ComplianceReport, colors: Any) -> Any:
    from reportlab.lib.units import mm

    rows = [["Control", "Title", "Status"]]
    rows += [[c.id, c.title, c.status] for c in report.controls]
    table = _table(rows, colors, [38 * mm, 100 * mm, 32 * mm])
    for i, c in enumerate(report.controls, start=1):
        table.setStyle([("TEXTCOLOR", (2, i), (2, i), colors.HexColor(STATUS_COLOURS[c.status]))])
    return table


def _pdf_chart(values: list[int], data: list[Bar], title: str, colour: str) -> Drawing:
    from reportlab.graphics.shapes import Drawing, Line, Rect, String
    from reportlab.lib import colors

    width, height, pad_l, pad_b, pad_t = 480.0, 96.0, 34.0, 14.0, 14.0
    drawing = Drawing(width, height)
    drawing.add(String(0, height - 10, title, fontName="Helvetica-Bold", fontSize=9))
    box_h = height - pad_b - pad_t
    for r in geometry(values, width - pad_l, box_h):  # y from the top; ReportLab's from below
        bar = Rect(pad_l + r.x, pad_b + (box_h - r.y - r.height), r.width, r.height)
        bar.fillColor, bar.strokeColor = colors.HexColor(colour), None
        drawing.add(bar)
    drawing.add(Line(pad_l, pad_b, width, pad_b, strokeColor=colors.HexColor("#8c959f")))
    top = str(max(values, default=0))
    drawing.add(String(pad_l - 3, pad_b + box_h - 7, top, fontSize=7, textAnchor="end"))
    drawing.add(String(pad_l - 3, pad_b, "0", fontSize=7, textAnchor="end"))
    if data:
        drawing.add(String(pad_l, 2, data[0].label, fontSize=7))
        drawing.add(String(width, 2, data[-1].label, fontSize=7, textAnchor="end"))
    return drawing


def _control_story(control: Any, styles: Any, colors: Any) -> list[Any]:
    from reportlab.platypus import KeepTogether, Paragraph, Spacer

    colour = STATUS_COLOURS[control.status]
    parts: list[Any] = [
        Paragraph(_x(f"{control.id} {control.title}"), styles["Heading2"]),
        Paragraph(
            f'Status: <font color="{colour}"><b>{_x(control.status)}</b></font>', styles["Normal"]
        ),
        Paragraph(
            _x(f"Evidence the gateway provides: {control.evidence_provided}"), styles["Normal"]
        ),
        Spacer(1, 2 * 2.83),
    ]
    for evidence in control.evidence:
        parts.append(Paragraph(_x(evidence.title), styles["Heading4"]))
        if evidence.integrity is not None:
            check = evidence.integrity
            said = (f"intact: {check.rows} rows verified in {check.chains} chain(s)"
                    if check.intact else f"broken: {check.problem}")  # fmt: skip
            parts.append(Paragraph(_x(said), styles["Normal"]))
            continue
        item = evidence.item
        assert item is not None
        rows = [["", "Count"], *[[k, str(v)] for k, v in item.counts.items()]]
        rows.append(["Total", quantity(item)])
        parts.append(KeepTogether([_table(rows, colors)]))
        if item.examples:
            parts.append(Paragraph(_x("Example requests: " + ", ".join(item.examples)),
                                   styles["Code"]))  # fmt: skip
    return parts


def _integrity_story(report: ComplianceReport, styles: Any) -> list[Any]:
    from reportlab.platypus import Paragraph

    check = report.integrity
    said = (f"The audit trail's hash chain was verified over the period: {check.rows} rows in "
            f"{check.chains} chain(s), intact." if check.intact else
            f"The audit trail's hash chain is broken: {check.problem}.")  # fmt: skip
    return [Paragraph("Audit trail integrity", styles["Heading2"]),
            Paragraph(_x(said), styles["Normal"])]  # fmt: skip
