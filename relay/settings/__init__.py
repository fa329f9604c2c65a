"""The configuration of zaia-relay, as validated pydantic models.

`load_settings(path)` reads the YAML file (with `${VAR}` interpolation, `RELAY_*__*`
environment overrides and `*_file` secrets) and returns a `Settings`, or raises
`ConfigError` listing every problem as `path.to.field: message`.

Invariants: a `Settings` value is frozen and fully cross-checked (see `_root`); every
secret is a `SecretStr`, so printing a model never shows one.
"""

from relay.config_loader import load_settings
from relay.settings._base import RateLimit, Section, parse_rate_limit
from relay.settings._root import Settings, reference_problems
from relay.settings._rules import (
    CountThreshold,
    DurationThreshold,
    FromStatus,
    GroupKey,
    OriginType,
    RatioThreshold,
    RuleSettings,
    Severity,
    SilenceMatchers,
    SilenceSettings,
    Threshold,
    WhenSettings,
)
from relay.settings._sections import (
    DEFAULT_BASE_URL,
    DEFAULT_LINK_TEMPLATE,
    AlertsSettings,
    LogSettings,
    ServerSettings,
    SourceSettings,
    StoreSettings,
)
from relay.settings._sinks import (
    SINK_TYPES,
    AlertmanagerSinkSettings,
    BasicAuthSettings,
    ConsoleSinkSettings,
    DeliverySettings,
    SinkSettings,
    SlackSinkSettings,
    WebhookSinkSettings,
)

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_LINK_TEMPLATE",
    "SINK_TYPES",
    "AlertmanagerSinkSettings",
    "AlertsSettings",
    "BasicAuthSettings",
    "ConsoleSinkSettings",
    "CountThreshold",
    "DeliverySettings",
    "DurationThreshold",
    "FromStatus",
    "GroupKey",
    "LogSettings",
    "OriginType",
    "RateLimit",
    "RatioThreshold",
    "RuleSettings",
    "Section",
    "ServerSettings",
    "Settings",
    "Severity",
    "SilenceMatchers",
    "SilenceSettings",
    "SinkSettings",
    "SlackSinkSettings",
    "SourceSettings",
    "StoreSettings",
    "Threshold",
    "WebhookSinkSettings",
    "WhenSettings",
    "load_settings",
    "parse_rate_limit",
    "reference_problems",
]
