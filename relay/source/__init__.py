"""The Zaia API client: paging, auth, retries and error mapping.

The public surface is what this module exports; `client`, `pages` and `retry` are
the implementation. Errors raised are those of `relay.errors` (SourceError and its
subclasses, re-exported here for convenience).
"""

from relay.domain.delivery import parse_retry_after
from relay.errors import SourceInvalidResponse, SourceRateLimited
from relay.source.client import (
    ClientConfig,
    Endpoint,
    OnRequest,
    RequestOutcome,
    ZaiaClient,
)
from relay.source.pages import ExecutionPage, ItemProblem
from relay.source.retry import RetryPolicy

__all__ = [
    "ClientConfig",
    "Endpoint",
    "ExecutionPage",
    "ItemProblem",
    "OnRequest",
    "RequestOutcome",
    "RetryPolicy",
    "SourceInvalidResponse",
    "SourceRateLimited",
    "ZaiaClient",
    "parse_retry_after",
]
