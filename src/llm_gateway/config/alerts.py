"""``config/alerts.yaml`` (optional): which events are sent to which webhooks, and how often.

An addition of ours; without the file no alert is sent::

    alerts:
      dedup_seconds: 300               # one alert per event kind and key in this window
      confirmation_stale_seconds: 600  # a confirmation pending longer raises confirmation_stale
      destinations:
        security-slack:
          format: slack                # a Slack incoming webhook
          url: "${SLACK_WEBHOOK_URL}"
          events: [dlp_block, policy_error]
        oncall:
          format: pagerduty            # PagerDuty's Events API v2
          url: "https://events.pagerduty.com/v2/enqueue"
          routing_key: "${PD_ROUTING_KEY}"
          events: [breaker_open, audit_spool, confirmation_stale]

Webhook URLs and routing keys are secrets: written as ``${VAR}``, they come from
the environment, and no error or log line ever shows them (a destination is
named by its key in the file). A destination whose variables are not set is
disabled with a start-up warning, as a model without its API key is, rather
than stopping the gateway.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from llm_gateway.config.loader import ConfigError, load_yaml, validate
from llm_gateway.observability.alerts.settings import AlertSettings, EventKind
from llm_gateway.observability.alerts.settings import Destination as Webhook

__all__ = ["AlertsFile", "Destination", "load_alerts"]

#: Fields whose values no error message may show.
SECRET_FIELDS = frozenset({"url", "routing_key"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Destination(_Strict):
    format: Literal["slack", "pagerduty"]
    url: Annotated[str, Field(max_length=2048, repr=False)]
    routing_key: Annotated[str | None, Field(max_length=256, repr=False)] = None  # pagerduty
    events: Annotated[list[EventKind], Field(min_length=1)]
    max_per_minute: Annotated[int, Field(ge=1, le=600)] = 20  # more are dropped and counted
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0  # one attempt's
    max_attempts: Annotated[int, Field(ge=1, le=10)] = 3

    @field_validator("url")
    @classmethod
    def _http(cls, url: str) -> str:
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return url

    @model_validator(mode="after")
    def _routing_key(self) -> Destination:
        if self.format == "pagerduty" and self.routing_key is None:
            raise ValueError("a pagerduty destination needs its routing_key")
        if self.format == "slack" and self.routing_key is not None:
            raise ValueError("routing_key is for pagerduty destinations only")
        return self

    def resolved(self, name: str) -> Webhook:
        return Webhook(
            name=name, format=self.format, url=self.url, events=frozenset(self.events),
            routing_key=self.routing_key, max_per_minute=self.max_per_minute,
            timeout_s=self.timeout_seconds, max_attempts=self.max_attempts,
        )  # fmt: skip


class Alerts(_Strict):
    dedup_seconds: Annotated[float, Field(ge=0, le=86_400)] = 300
    queue_size: Annotated[int, Field(ge=1, le=100_000)] = 1000  # per destination
    check_seconds: Annotated[float, Field(gt=0, le=3600)] = 60  # how often gauges are read
    confirmation_stale_seconds: Annotated[float, Field(gt=0, le=7 * 86_400)] = 600
    source: Annotated[str, Field(min_length=1, max_length=255)] | None = None  # the hostname
    group: Annotated[str, Field(min_length=1, max_length=255)] = "llm-gateway"  # PagerDuty's
    destinations: dict[Annotated[str, Field(min_length=1, max_length=100)], Destination] = {}


class AlertsFile(_Strict):
    alerts: Alerts = Alerts()


def load_alerts(path: Path) -> AlertSettings:
    """``alerts.yaml`` validated and resolved (no file: no destination); a destination whose
    variables are unset is listed as disabled. Raises ConfigError naming file and line."""
    if not path.exists():
        return AlertSettings()
    loaded = load_yaml(path)
    alerts = validate(AlertsFile, loaded, hide=SECRET_FIELDS).alerts
    disabled: dict[str, str] = {}
    problems = []
    for name, destination in alerts.destinations.items():
        loc = ("alerts", "destinations", name)
        unset = sorted({v for p, names in loaded.unset.items() if p[:3] == loc for v in names})
        if unset:
            disabled[name] = f"{', '.join(unset)} not set"
        elif not destination.url:
            problems.append(f"{loaded.where((*loc, 'url'))}: {'.'.join(loc)}.url: is empty")
        elif destination.routing_key == "":
            where = loaded.where((*loc, "routing_key"))
            problems.append(f"{where}: {'.'.join(loc)}.routing_key: is empty")
    if problems:
        raise ConfigError(path, problems)
    return AlertSettings(
        destinations=tuple(
            d.resolved(name) for name, d in alerts.destinations.items() if name not in disabled
        ),
        disabled=disabled, dedup_s=alerts.dedup_seconds, queue_size=alerts.queue_size,
        check_s=alerts.check_seconds, confirmation_stale_s=alerts.confirmation_stale_seconds,
        source=alerts.source, group=alerts.group,
    )  # fmt: skip
