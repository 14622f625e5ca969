"""Settings from environment variables, with the product specification's names.

One frozen section per service (``settings.http``, ``settings.auth``,
``settings.storage``, ``settings.state``, ``settings.limits``, ``settings.providers``,
``settings.routing``, ``settings.policy``, ``settings.dlp``, ``settings.log``,
``settings.metrics``, ``settings.tracing``), each variable declared once, as its
section's field (:mod:`.declare`). :mod:`.loader` reads them and says how to add a section;
:mod:`.reference` generates the README's table.

This is a low layer: it imports nothing of the gateway's but the DLP package's
enums (``dlp.findings``, which imports nothing).
"""

from llm_gateway.settings.auth import JWT_ALGORITHMS, AuthSettings
from llm_gateway.settings.declare import AutoOnOff, Section, Var
from llm_gateway.settings.dlp import DlpBackend, DlpSettings
from llm_gateway.settings.files import FilesSettings
from llm_gateway.settings.limits import LimitSettings
from llm_gateway.settings.loader import (
    Settings,
    SettingsError,
    load_settings,
    settings_variables,
)
from llm_gateway.settings.metrics import MetricsSettings
from llm_gateway.settings.policy import PolicySettings
from llm_gateway.settings.providers import ProviderSettings
from llm_gateway.settings.routing import RoutingSettings
from llm_gateway.settings.server import HttpSettings, LogFormat, LogLevel, LogSettings
from llm_gateway.settings.storage import (
    StateSettings,
    StorageSettings,
    async_driver_url,
)
from llm_gateway.settings.tracing import TraceExporter, TracingSettings
from llm_gateway.state.factory import StateBackend

__all__ = [
    "JWT_ALGORITHMS",
    "AuthSettings",
    "AutoOnOff",
    "DlpBackend",
    "DlpSettings",
    "FilesSettings",
    "HttpSettings",
    "LimitSettings",
    "LogFormat",
    "LogLevel",
    "LogSettings",
    "MetricsSettings",
    "PolicySettings",
    "ProviderSettings",
    "RoutingSettings",
    "Section",
    "Settings",
    "SettingsError",
    "StateBackend",
    "StateSettings",
    "StorageSettings",
    "TraceExporter",
    "TracingSettings",
    "Var",
    "async_driver_url",
    "load_settings",
    "settings_variables",
]
