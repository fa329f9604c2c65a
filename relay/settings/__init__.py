"""The configuration of zaia-relay, as validated pydantic models.

`relay.settings.loader.load_settings(path)` reads the YAML file (with `${VAR}`
interpolation, `RELAY_*__*` environment overrides and `*_file` secrets) and returns a
`Settings`, or raises `ConfigError` listing every problem as `path.to.field: message`.

Invariants: a `Settings` value is frozen and fully cross-checked (see `_root`); every
secret is a `SecretStr`, so printing a model never shows one.
"""

from relay.settings._base import PositiveDuration, RateLimit, Section, parse_rate_limit
from relay.settings._delivery import DeliverySettings
from relay.settings._intervals import Matchers, TimeIntervalSettings, parse_matcher_list
from relay.settings._root import Settings, reference_problems, secrets_of
from relay.settings._routes import DEFAULT_GROUP_WAIT, RouteSettings, route_label
from relay.settings._rules import (
    CountThreshold,
    DurationThreshold,
    GroupKey,
    OriginType,
    RatioThreshold,
    RuleSettings,
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
from relay.settings._silences import (
    MatcherProblems,
    ReadMatchers,
    SilenceMatchers,
    SilenceSettings,
    read_matchers,
    silence_matcher_problems,
)
from relay.settings._sink_email import EmailSinkSettings, SmtpSettings
from relay.settings._sink_pagerduty import PagerDutySinkSettings
from relay.settings._sink_teams import TeamsSinkSettings
from relay.settings._sinks import (
    SINK_TYPES,
    AlertmanagerSinkSettings,
    BasicAuthSettings,
    ConsoleSinkSettings,
    SinkSettings,
    SlackSinkSettings,
    WebhookSinkSettings,
    delivery_targets,
)
from relay.settings._warnings import config_warnings

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_GROUP_WAIT",
    "DEFAULT_LINK_TEMPLATE",
    "SINK_TYPES",
    "AlertmanagerSinkSettings",
    "AlertsSettings",
    "BasicAuthSettings",
    "ConsoleSinkSettings",
    "CountThreshold",
    "DeliverySettings",
    "DurationThreshold",
    "EmailSinkSettings",
    "GroupKey",
    "LogSettings",
    "MatcherProblems",
    "Matchers",
    "OriginType",
    "PagerDutySinkSettings",
    "PositiveDuration",
    "RateLimit",
    "RatioThreshold",
    "ReadMatchers",
    "RouteSettings",
    "RuleSettings",
    "Section",
    "ServerSettings",
    "Settings",
    "SilenceMatchers",
    "SilenceSettings",
    "SinkSettings",
    "SlackSinkSettings",
    "SmtpSettings",
    "SourceSettings",
    "StoreSettings",
    "TeamsSinkSettings",
    "Threshold",
    "TimeIntervalSettings",
    "WebhookSinkSettings",
    "WhenSettings",
    "config_warnings",
    "delivery_targets",
    "parse_matcher_list",
    "parse_rate_limit",
    "read_matchers",
    "reference_problems",
    "route_label",
    "secrets_of",
    "silence_matcher_problems",
]
