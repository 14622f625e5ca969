"""The report's forms: the PDF renders (to PNG pages, with pypdfium2) and is not blank, its
text carries the controls and the counts; the HTML has every control, its evidence and
the three charts of the period, escaped; the charts' bars follow the days; without the
``reports`` extra the error says how to install it."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from llm_gateway.reports.compliance import ComplianceReport, build, compliance_report
from llm_gateway.reports.evidence import Day, Evidence, Integrity, Item, Scope
from llm_gateway.reports.frameworks import FRAMEWORKS
from llm_gateway.reports.render import (
    MAX_BARS,
    RenderUnavailable,
    bars,
    geometry,
    to_html,
    to_json,
    to_pdf,
)
from llm_gateway.settings import async_driver_url
from llm_gateway.storage import Database
from tests.conftest import require_modules
from tests.reports.seed import END, START, seed_sync


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ComplianceReport]:
    url = f"sqlite:///{tmp_path_factory.mktemp('render')}/gateway.db"
    seed_sync(url)

    async def build_all() -> dict[str, ComplianceReport]:
        db = Database(async_driver_url(url))
        try:
            scope = Scope(START, END, tenant="acme")
            return {f: await compliance_report(db, f, scope) for f in FRAMEWORKS}
        finally:
            await db.dispose()

    return asyncio.run(build_all())


def pages(pdf: bytes, tmp: Path) -> tuple[list[Path], str]:
    """The PDF's pages as PNG files, and its text."""
    require_modules("pypdfium2", extra="dev")
    import pypdfium2

    document = pypdfium2.PdfDocument(pdf)
    try:
        paths, text = [], []
        for i in range(len(document)):
            page = document[i]
            path = tmp / f"page-{i + 1}.png"
            page.render(scale=1).to_pil().save(path)
            paths.append(path)
            textpage = page.get_textpage()
            text.append(textpage.get_text_range())
            textpage.close()
            page.close()
    finally:
        document.close()
    return paths, "\n".join(text)


def ink(path: Path) -> float:
    """The share of the page's pixels that are not white."""
    from PIL import Image

    with Image.open(path) as image:
        grey = image.convert("L")
        histogram = grey.histogram()
    return 1 - sum(histogram[250:]) / sum(histogram)


@pytest.mark.parametrize("framework", sorted(FRAMEWORKS))
def test_the_pdf_renders_to_pages_with_the_controls_and_counts(
    reports: dict[str, ComplianceReport], framework: str, tmp_path: Path
) -> None:
    require_modules("reportlab", extra="reports")
    report = reports[framework]
    pdf = to_pdf(report)
    assert pdf.startswith(b"%PDF-")
    paths, text = pages(pdf, tmp_path)
    assert len(paths) >= 2
    inked = [ink(p) for p in paths]
    assert inked[0] > 0.05, inked  # the title, the summary and the charts
    assert all(share > 0.001 for share in inked), inked  # no blank page
    for control in report.controls:
        assert control.id in text, control.id
    dlp = next(e.item for c in report.controls for e in c.evidence if e.key == "pii_redacted")
    assert dlp is not None
    assert "EMAIL_ADDRESS" in text
    assert f"{dlp.total} findings" in text
    assert re.search(r"Total 1 cut\s", text)  # the one retention cut, singular
    assert dlp.examples[0] in text
    assert "not a certification" in " ".join(text.split())


def test_the_first_page_shows_the_charts(
    reports: dict[str, ComplianceReport], tmp_path: Path
) -> None:
    """The bars' colours are on the first page: the charts were drawn, not only their titles."""
    require_modules("reportlab", extra="reports")
    from PIL import Image

    paths, _ = pages(to_pdf(reports["soc2"]), tmp_path)
    with Image.open(paths[0]) as image:
        colours = {c for _, c in image.convert("RGB").getcolors(1 << 20) or []}
    for hex_colour in ("#0969da", "#bf8700", "#8250df"):
        rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
        assert rgb in colours, hex_colour


def test_the_html_has_every_control_its_evidence_and_the_charts(
    reports: dict[str, ComplianceReport],
) -> None:
    require_modules("jinja2", extra="reports")
    from markupsafe import escape

    for report in reports.values():
        html = to_html(report)
        for control in report.controls:
            assert f"<h2>{control.id} {control.title}</h2>" in html
            for evidence in control.evidence:
                assert str(escape(evidence.title)) in html
                if evidence.item is not None:
                    for example in evidence.item.examples:
                        assert f"<code>{example}</code>" in html
        assert html.count("<svg") == 3
        days = len(bars(report))
        assert html.count("<rect") == 3 * days
        assert "Requests" in html
        assert "DLP events" in html
    soc2 = to_html(reports["soc2"])
    assert '<td>AWS_ACCESS_KEY</td><td class="n">1</td>' in soc2


def _report(days: list[Day], start: datetime, end: datetime, tenant: str) -> ComplianceReport:
    item = Item(total=0, unit="requests", counts={}, examples=[])
    keys = {k for f in FRAMEWORKS.values() for c in f.controls for k in c.items} - {"integrity"}
    evidence = Evidence(
        start=start, end=end, tenant=tenant, all_tenants=False, generated_at=end,
        requests=sum(d.requests for d in days), items=dict.fromkeys(keys, item), findings=[],
        days=days, integrity=Integrity(intact=True, rows=0, chains=1),
    )  # fmt: skip
    return build(FRAMEWORKS["soc2"], evidence)


def test_a_tenant_name_is_escaped_in_the_html() -> None:
    require_modules("jinja2", extra="reports")
    start = datetime(2026, 3, 1, tzinfo=UTC)
    html = to_html(_report([], start, start + timedelta(days=1), "<script>x</script>"))
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;" in html


def test_bars_fill_empty_days_and_merge_a_long_period() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    days = [Day(day="2026-01-02", requests=5, refusals=1, dlp_events=2)]
    week = bars(_report(days, start, start + timedelta(days=7), "t"))
    assert [b.requests for b in week] == [0, 5, 0, 0, 0, 0, 0]
    assert week[1].label == "2026-01-02"
    year = [
        Day(day=(start + timedelta(days=i)).date().isoformat(), requests=1, refusals=0,
            dlp_events=0)
        for i in range(365)
    ]  # fmt: skip
    merged = bars(_report(year, start, start + timedelta(days=365), "t"))
    assert len(merged) <= MAX_BARS
    assert sum(b.requests for b in merged) == 365
    assert merged[0].label == "2026-01-01 to 2026-01-06"
    rects = geometry([1, 4, 2], 300, 100)
    assert [round(r.height) for r in rects] == [25, 100, 50]
    assert rects[1].y == 0  # the tallest reaches the top


def test_json_is_the_report(reports: dict[str, ComplianceReport]) -> None:
    data = orjson.loads(to_json(reports["hipaa"]))
    assert data == reports["hipaa"].model_dump(mode="json")
    assert data["framework"] == "hipaa"


@pytest.mark.parametrize(("module", "render"), [("reportlab", to_pdf), ("jinja2", to_html)])
def test_without_the_extra_the_error_says_how_to_install_it(
    reports: dict[str, ComplianceReport], monkeypatch: pytest.MonkeyPatch, module: str,
    render: object,
) -> None:  # fmt: skip
    for name in [m for m in sys.modules if m == module or m.startswith(f"{module}.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, module, None)
    assert callable(render)
    with pytest.raises(RenderUnavailable, match=r"llm-gateway\[reports\]"):
        render(reports["soc2"])
