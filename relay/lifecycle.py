"""`async with` for the relay's long-lived objects (servers, clients, stores).

Invariants:
- Leaving the block runs `_exit()` however the block ended (returned, raised, was
  cancelled), and never swallows the block's exception.
- Entering runs `_enter()`. Python does not exit a context it failed to enter, so a
  failing `_enter()` releases whatever it took before it raises.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class AsyncContext(ABC):
    """A mixin: `async with obj:` runs `obj._enter()`, then `obj._exit()` on the way out.

    A subclass implements `_exit()` (release what it holds: idempotent), and `_enter()`
    when entering has work of its own (the default does nothing: the constructor
    already did it).
    """

    async def _enter(self) -> None:
        return None

    @abstractmethod
    async def _exit(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self._enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._exit()


__all__ = ["AsyncContext"]
