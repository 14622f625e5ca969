"""The Grafana dashboard (deploy/grafana/) and the Prometheus rules and configuration
(deploy/prometheus/): every metric their PromQL names is one a real gateway exports
(a scrape after real requests), with labels it has, counters and histograms read
through ``rate``/``increase`` and gauges not; the dashboard's structure holds
together; ``promtool`` accepts the rules and the configuration, and the rules pass
their unit tests (deploy/prometheus/tests/), when it is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from llm_gateway.emulators import EmulatorServer
from llm_gateway.observability.metrics import PREFIX, Metrics
from tests.deploy.tools import DEPLOY, REPO
from tests.e2e.conftest import (
    PROVIDER_KEY,
    Gateway,
    directive,
    routing_yaml,
    start_gateway,
    stop_gateway,
)
from tests.e2e.dlp_support import API_KEY, SPEC_RULES

DASHBOARD = DEPLOY / "grafana" / "llm-gateway.json"
RULES = DEPLOY / "prometheus" / "llm-gateway-rules.yml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "llm-gateway-rules.test.yml"
METRICS_SOURCE = REPO / "src" / "llm_gateway" / "observability" / "metrics.py"

# Series Prometheus makes itself for every target, and the labels it adds to each.
SYNTHETIC = frozenset({"up"})
TARGET_LABELS = frozenset({"instance", "job"})

TOKEN = "scrape-" + "d" * 24
PER_MINUTE = 2
BREAKER = """
  circuit_breaker:
    enabled: true
    failure_rate_threshold: 50
    wait_duration_seconds: 600
"""

# --- PromQL, as far as naming metrics goes --------------------------------------------

AGGREGATIONS = frozenset({
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
})  # fmt: skip
FUNCTIONS = frozenset({
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp",
    "clamp_max", "clamp_min", "count_over_time", "day_of_month", "day_of_week",
    "day_of_year", "days_in_month", "delta", "deriv", "exp", "floor", "histogram_quantile",
    "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace",
    "last_over_time", "ln", "log10", "log2", "max_over_time", "min_over_time", "minute",
    "month", "predict_linear", "present_over_time", "quantile_over_time", "rate", "resets",
    "round", "scalar", "sgn", "sort", "sort_desc", "sqrt", "stddev_over_time",
    "stdvar_over_time", "sum_over_time", "time", "timestamp", "vector", "year", "start",
    "end",
})  # fmt: skip
LABEL_LISTS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = frozenset({"and", "or", "unless", "offset", "bool", "inf", "nan"})
COUNTING = frozenset({"rate", "irate", "increase"})
MATCHERS = frozenset({"=", "!=", "=~", "!~"})

TOKEN_PATTERN = re.compile(
    r"""(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
      |(?P<variable>\$(?:\{[^}]*\}|\w+))
      |(?P<number>(?:0x[0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(?:ms|[smhdwy])*)
      |(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
      |(?P<space>\s+)
      |(?P<punct>=~|!~|!=|==|<=|>=|[-+*/%^<>=(){}\[\],@:])""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Selector:
    """One metric a PromQL expression reads."""

    name: str
    labels: frozenset[str]  # the label names its matchers test
    ranged: bool  # a range vector: name{...}[5m]
    functions: tuple[str, ...]  # the calls around it, innermost first


@dataclass(frozen=True, slots=True)
class Parsed:
    selectors: tuple[Selector, ...]
    grouping: frozenset[str]  # labels named in by/without/on/ignoring/group_*


def tokens(expr: str) -> list[tuple[str, str]]:
    found, at = [], 0
    for match in TOKEN_PATTERN.finditer(expr):
        assert match.start() == at, f"cannot read {expr[at:]!r} in {expr!r}"
        at = match.end()
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            found.append((kind, match.group()))
    assert at == len(expr), f"cannot read {expr[at:]!r} in {expr!r}"
    return found


def _closing(toks: list[tuple[str, str]], start: int, opening: str, closing: str) -> int:
    """The index of the token closing the one opened at ``start``."""
    depth = 0
    for i in range(start, len(toks)):
        depth += {opening: 1, closing: -1}.get(toks[i][1], 0)
        if depth == 0:
            return i
    raise AssertionError(f"unbalanced {opening!r}")


def parse(expr: str) -> Parsed:  # noqa: C901 (one pass over the tokens)
    """The metrics ``expr`` names: identifiers that are not functions, aggregations,
    keywords, label names (in ``{}`` and label lists) or Grafana's ``$variables``."""
    toks = tokens(expr)
    selectors: list[Selector] = []
    grouping: set[str] = set()
    calls: list[str | None] = []  # what each open parenthesis belongs to
    pending: str | None = None
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        following = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "name":
            word = text.lower()
            if word in LABEL_LISTS:
                if following == "(":
                    end = _closing(toks, i + 1, "(", ")")
                    grouping |= {t for k, t in toks[i + 2 : end] if k == "name"}
                    i = end
            elif word in AGGREGATIONS:
                pending = word
            elif following == "(":
                assert text in FUNCTIONS, f"unknown function {text}() in {expr!r}"
                pending = text
            elif word not in KEYWORDS:
                end, labels = i, set()
                if following == "{":
                    end = _closing(toks, i + 1, "{", "}")
                    inside = toks[i + 2 : end]
                    labels = {
                        t
                        for n, (k, t) in enumerate(inside[:-1])
                        if k == "name" and inside[n + 1][1] in MATCHERS
                    }
                ranged = end + 1 < len(toks) and toks[end + 1][1] == "["
                around = tuple(c for c in reversed(calls) if c is not None)
                selectors.append(Selector(text, frozenset(labels), ranged, around))
                i = end
        elif text == "{":
            raise AssertionError(f"a selector without a metric name in {expr!r}")
        elif text == "[":
            i = _closing(toks, i, "[", "]")
        elif text == "(":
            calls.append(pending)
            pending = None
        elif text == ")":
            calls.pop()
        i += 1
    assert not calls, f"unbalanced parentheses in {expr!r}"
    return Parsed(tuple(selectors), frozenset(grouping))


def quantiles_keep_le(expr: str) -> bool:
    """Every ``histogram_quantile(q, ...)`` of ``expr`` aggregates by ``le`` inside."""
    toks = tokens(expr)
    for i, (_, text) in enumerate(toks):
        if text == "histogram_quantile":
            inside = toks[i + 1 : _closing(toks, i + 1, "(", ")")]
            lists = [
                {t for k, t in inside[n + 2 : _closing(inside, n + 1, "(", ")")] if k == "name"}
                for n, (_, word) in enumerate(inside)
                if word == "by" and n + 1 < len(inside) and inside[n + 1][1] == "("
            ]
            if not any("le" in names for names in lists):
                return False
    return True


def test_the_reader_finds_metrics_and_only_metrics() -> None:
    parsed = parse(
        'histogram_quantile(0.99, sum by (le, model) (rate(a_bucket{model=~"$model", '
        'le!="x"}[$__rate_interval]))) > 2 * on (model) group_left max(b) offset 5m '
        "and sum(increase(c_total[1h:5m])) by (job) / (d > 0) unless vector(0)"
    )
    assert [s.name for s in parsed.selectors] == ["a_bucket", "b", "c_total", "d"]
    a, b, c, d = parsed.selectors
    assert a.labels == {"model", "le"}
    assert a.ranged
    assert a.functions == ("rate", "sum", "histogram_quantile")
    assert (b.ranged, b.functions) == (False, ("max",))
    assert (c.ranged, c.functions) == (True, ("increase", "sum"))
    assert (d.ranged, d.functions) == (False, ())
    assert parsed.grouping == {"le", "model", "job"}
    assert quantiles_keep_le("histogram_quantile(0.5, sum by (le) (rate(x_bucket[5m])))")
    assert not quantiles_keep_le("histogram_quantile(0.5, sum by (model) (rate(x_bucket[5m])))")
    with pytest.raises(AssertionError, match="unknown function"):
        parse("ratee(x[5m])")
    with pytest.raises(AssertionError, match="without a metric name"):
        parse('{__name__="x"}')


# --- what the files hold ------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    document = json.loads(DASHBOARD.read_text())
    assert isinstance(document, dict)
    return document


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row's


def _expressions() -> dict[str, str]:
    """Every PromQL expression of the dashboard and the rules, by where it is."""
    found = {}
    dashboard = _dashboard()
    for panel in _panels(dashboard):
        for target in panel.get("targets", []):
            found[f"panel {panel['title']!r} {target['refId']}"] = target["expr"]
    for rule in _rules():
        found[f"rule {rule['alert']}"] = rule["expr"]
    return found


def _variable_queries() -> dict[str, tuple[str, str]]:
    """The dashboard's ``label_values(metric, label)`` variables."""
    found = {}
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else ""
            match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
            assert match, f"variable {variable['name']}: {query!r}"
            found[variable["name"]] = (match.group(1), match.group(2))
    return found


# --- what a gateway exports -----------------------------------------------------------


@dataclass(frozen=True)
class Exported:
    types: dict[str, str]  # series name -> its family's type
    labels: dict[str, frozenset[str]]  # series name -> its label names (le for buckets)
    sampled: frozenset[str]  # series with at least one sample in the scrape


SERIES_OF = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def _declared_labels() -> dict[str, frozenset[str]]:
    """The label names of the counters and histograms, as the code declares them (for the
    families no request of the scrape below fed)."""
    metrics = Metrics(tenant_label=True)
    found = {}
    for family in vars(metrics).values():
        metric = getattr(family, "metric", None)
        if metric is not None:
            found[metric._name] = frozenset(metric._labelnames)
    return found


def exported_by(text: str) -> Exported:
    """The series the scrape ``text`` names, as prometheus-client names them: a counter
    family ``x`` is ``x_total``, a histogram ``x_bucket``, ``x_sum`` and ``x_count``. A
    family without samples yet is still in the text (its HELP and TYPE lines)."""
    declared = _declared_labels()
    types: dict[str, str] = {}
    labels: dict[str, set[str]] = {}
    sampled: set[str] = set()
    for family in text_string_to_metric_families(text):
        if family.name in types:  # x_created, which the text format gives a TYPE of its own
            continue
        assert family.type in SERIES_OF, f"{family.name}: a {family.type}"
        for suffix in SERIES_OF[family.type]:
            types[family.name + suffix] = family.type
            bucket = {"le"} if suffix == "_bucket" else set()
            labels[family.name + suffix] = set(declared.get(family.name, ())) | bucket
        for sample in family.samples:
            sampled.add(sample.name)
            labels.setdefault(sample.name, set()).update(sample.labels)
    return Exported(types, {k: frozenset(v) for k, v in labels.items()}, frozenset(sampled))


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorServer]:
    server = EmulatorServer(api_key=PROVIDER_KEY).start_in_thread()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def exported(emulator: EmulatorServer, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """A gateway's ``GET /metrics`` after an answer, a stream, a DLP block, a policy denial,
    a rate-limit refusal and an upstream failure."""
    tmp = tmp_path_factory.mktemp("dashboards")
    (tmp / "config").mkdir()
    shutil.copy(SPEC_RULES, tmp / "config" / "dlp_rules.yaml")
    gw = start_gateway(
        tmp, emulator.base_url, f"sqlite:///{tmp}/data/gateway.db",
        {"METRICS_TOKEN": TOKEN, "METRICS_TENANT_LABEL": "true",
         "RATE_LIMIT_PER_USER": str(PER_MINUTE)},
        routing=routing_yaml(emulator.base_url) + BREAKER,
    )  # fmt: skip
    try:
        _traffic(gw)
        response = httpx.get(
            f"{gw.base_url}/metrics", headers={"authorization": f"Bearer {TOKEN}"}, timeout=10
        )
    finally:
        stop_gateway(gw)
    assert response.status_code == 200, response.text
    return exported_by(response.text)


def _status(gw: Gateway, token: str, model: str, text: str, *, stream: bool = False) -> int:
    client = gw.openai(token)
    messages: Any = [{"role": "user", "content": text}]
    try:
        if stream:
            for _ in client.chat.completions.create(model=model, messages=messages, stream=True):
                pass
        else:
            client.chat.completions.create(model=model, messages=messages)
    except openai.APIStatusError as exc:
        return exc.status_code
    return 200


def _traffic(gw: Gateway) -> None:
    def user() -> str:
        return gw.token(f"d-{uuid.uuid4().hex[:8]}", tenant="acme")

    spend = directive("mail jane.doe@example.com", usage={"input": 40, "output": 10})
    limited = user()
    codes = [
        _status(gw, user(), "gpt-emu", spend),
        _status(gw, user(), "gpt-emu", "hello", stream=True),
        _status(gw, user(), "gpt-emu", f"my key is {API_KEY}"),  # DLP: api_key blocks
        _status(gw, gw.token("d-free", tenant="acme", tier="free"), "gpt-emu", "hi"),  # policy
        _status(gw, user(), "claude-emu", directive("fail", status=503)),  # upstream
        *(_status(gw, limited, "ollama-emu", "hi") for _ in range(PER_MINUTE + 1)),
    ]
    assert codes[:4] == [200, 200, 400, 403], codes
    assert codes[4] >= 500, codes
    assert codes[-1] == 429, codes


# --- the checks ---------------------------------------------------------------------


def test_the_scrape_has_every_family_and_the_requests_fed_them(exported: Exported) -> None:
    for name in ("requests_total", "request_duration_seconds_bucket", "upstream_attempts_total",
                 "upstream_duration_seconds_bucket", "tokens_total", "cost_usd_total",
                 "dlp_findings_total", "policy_denials_total", "rate_limit_rejections_total",
                 "model_up", "circuit_breaker_state", "audit_backlog_rows"):  # fmt: skip
        assert f"{PREFIX}_{name}" in exported.sampled, name
    assert "tenant" in exported.labels[f"{PREFIX}_tokens_total"]
    # Fed by no request here (queues, confirmations, grounding), named all the same.
    for name in ("rate_limit_queue_wait_seconds_bucket", "confirmations_total",
                 "grounding_verdicts_total"):  # fmt: skip
        assert f"{PREFIX}_{name}" in exported.types, name


def test_every_metric_named_is_exported_with_the_labels_named(exported: Exported) -> None:
    problems = []
    for where, expr in _expressions().items():
        parsed = parse(expr)
        assert parsed.selectors, f"{where}: no metric in {expr!r}"
        known: set[str] = set(TARGET_LABELS)
        for s in parsed.selectors:
            if s.name in SYNTHETIC:
                continue
            if s.name not in exported.types:
                problems.append(f"{where}: {s.name} is not exported")
                continue
            have = exported.labels[s.name] | TARGET_LABELS
            known |= have
            if not s.labels <= have:
                problems.append(f"{where}: {s.name} has no label {sorted(s.labels - have)}")
        if not parsed.grouping <= known | {"le"}:
            problems.append(f"{where}: groups by {sorted(parsed.grouping - known)}")
    assert not problems, "\n".join(problems)


def test_counters_and_histograms_are_rated_and_gauges_are_not(exported: Exported) -> None:
    problems = []
    for where, expr in _expressions().items():
        for s in parse(expr).selectors:
            kind = exported.types.get(s.name, "gauge")  # up and the upcoming are gauges
            counting = s.ranged and bool(s.functions) and s.functions[0] in COUNTING
            if kind in ("counter", "histogram") and not counting:
                problems.append(f"{where}: {s.name} (a {kind}) outside rate/increase")
            if kind == "gauge" and s.functions[:1] and s.functions[0] in COUNTING:
                problems.append(f"{where}: {s.name} (a gauge) in {s.functions[0]}()")
            if s.name.endswith("_bucket") and "histogram_quantile" not in s.functions:
                problems.append(f"{where}: {s.name} outside histogram_quantile")
        if not quantiles_keep_le(expr):
            problems.append(f"{where}: a histogram_quantile whose sum drops le")
    assert not problems, "\n".join(problems)


def test_the_dashboards_variables_name_exported_labels(exported: Exported) -> None:
    variables = _variable_queries()
    assert {"endpoint", "model", "tenant"} <= set(variables)
    for name, (metric, label) in variables.items():
        assert metric in exported.types, (name, metric)
        assert label in exported.labels[metric], (name, metric, label)


# --- the dashboard's structure ------------------------------------------------------


def test_the_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "llm-gateway"
    assert dashboard["title"]
    assert isinstance(dashboard["schemaVersion"], int)
    assert dashboard["schemaVersion"] >= 39
    (source,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert (source["name"], source["query"]) == ("DS_PROMETHEUS", "prometheus")
    names = [v["name"] for v in dashboard["templating"]["list"]]
    assert len(names) == len(set(names))


def test_every_panel_has_an_id_a_place_a_datasource_and_queries() -> None:
    panels = list(_panels(_dashboard()))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    rows = [p for p in panels if p["type"] == "row"]
    assert len(rows) >= 8
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == panel["datasource"]
    # Panels do not overlap (Grafana would move them).
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        g = panel["gridPos"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine


def _family(series: str, exported: Exported) -> str:
    kind = exported.types.get(series, "gauge")
    for suffix in SERIES_OF.get(kind, ("",)):
        if suffix and series.endswith(suffix):
            return series.removesuffix(suffix)
    return series


def test_the_dashboard_shows_every_family_the_gateway_exports(exported: Exported) -> None:
    families = {_family(n, exported) for n in exported.types if not n.endswith("_created")}
    shown = {
        _family(s.name, exported)
        for panel in _panels(_dashboard())
        for target in panel.get("targets", [])
        for s in parse(target["expr"]).selectors
    }
    assert families <= shown, sorted(families - shown)


# --- the rules and the configuration ------------------------------------------------


def test_every_rule_alerts_with_a_duration_severity_and_annotations() -> None:
    document = yaml.safe_load(RULES.read_text())
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names))
    alerts = [rule["alert"] for rule in _rules()]
    assert len(alerts) == len(set(alerts))
    for rule in _rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["annotations"]["description"], rule["alert"]


def test_the_rules_cover_what_the_issue_asks() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in _rules()}
    assert {"LLMGatewayDown", "LLMGatewayHighErrorRatio", "LLMGatewayUpstreamFailures",
            "LLMGatewayCircuitOpen", "LLMGatewayModelDown", "LLMGatewayHighLatencyP99",
            "LLMGatewayDLPBlocksSpike", "LLMGatewayPolicyErrors",
            "LLMGatewayAuditBacklogGrowing", "LLMGatewayAuditSpoolFilling",
            "LLMGatewayConfirmationsExpiring"} <= set(exprs)  # fmt: skip
    assert re.search(r'up\{job="llm-gateway"\} == 0', exprs["LLMGatewayDown"])
    assert 'error_code="policy_error"' in exprs["LLMGatewayPolicyErrors"]
    assert "0.8" in exprs["LLMGatewayAuditSpoolFilling"]
    assert "histogram_quantile(0.99" in exprs["LLMGatewayHighLatencyP99"]


def test_prometheus_scrapes_the_gateway_with_a_bearer_token_and_loads_the_rules() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "llm-gateway"  # the rules' up{job="llm-gateway"}
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"  # METRICS_TOKEN's
    assert job["authorization"]["credentials_file"]
    assert config["rule_files"] == [f"/etc/prometheus/{RULES.name}"]


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (apt-get install prometheus): Python checks only")
    return found


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_configuration(tmp_path: Path) -> None:
    promtool = _promtool()
    # The rule file where Compose mounts it, here; the token file is Compose's (syntax only).
    config = PROMETHEUS.read_text().replace(f"/etc/prometheus/{RULES.name}", str(RULES))
    (tmp_path / "prometheus.yml").write_text(config)
    result = subprocess.run(
        [promtool, "check", "config", "--syntax-only", str(tmp_path / "prometheus.yml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _rule_tests() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULE_TESTS.read_text())
    assert document["rule_files"] == [f"../{RULES.name}"]
    tests: list[dict[str, Any]] = document["tests"]
    return tests


def test_every_alert_has_a_unit_test_that_fires_it() -> None:
    fired = {
        case["alertname"]
        for test in _rule_tests()
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == {rule["alert"] for rule in _rules()}


def test_the_unit_tests_feed_series_the_gateway_exports(exported: Exported) -> None:
    for test in _rule_tests():
        for series in test["input_series"]:
            (selector,) = parse(series["series"]).selectors
            if selector.name in SYNTHETIC:
                continue
            assert selector.name in exported.types, (test["name"], selector.name)
            have = exported.labels[selector.name] | TARGET_LABELS
            assert selector.labels <= have, (test["name"], selector.name)


def test_the_rules_pass_their_unit_tests() -> None:
    result = subprocess.run(
        [_promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
