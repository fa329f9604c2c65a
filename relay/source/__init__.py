"""The Zaia API client: paging, auth, retries and error mapping.

The public surface is what this module exports; `client`, `config`, `gate`, `pages` and
`retry` are the implementation. Errors raised are those of `relay.errors` (SourceError and its
subclasses).
"""

from relay.source.client import (
    Endpoint,
    OnRequest,
    RequestOutcome,
    ZaiaClient,
)
from relay.source.config import ClientConfig
from relay.source.gate import BudgetGate
from relay.source.pages import ExecutionPage, ItemProblem
from relay.source.retry import RetryPolicy

__all__ = [
    "BudgetGate",
    "ClientConfig",
    "Endpoint",
    "ExecutionPage",
    "ItemProblem",
    "OnRequest",
    "RequestOutcome",
    "RetryPolicy",
    "ZaiaClient",
]
