"""The secret values of a configuration, for `relay.scrub.SecretScrubber` to keep out of text.

Two walks, one rule: `model_secrets` reads validated settings (every `SecretStr`,
wherever it sits; `relay.settings._root.secrets_of` adds the database password inside
the store URL); `raw_secrets_of` reads the raw tree of a file that failed validation,
where no field is typed yet, by the names of the keys that hold secrets. Both end in
`distinct_secrets`, which adds the values a secret is also known by (`_also_known_as`)
and lists each value once.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

from relay.settings._base import SECRET_FIELD_NAMES

# A webhook signing secret is `whsec_` + base64; the key without its prefix is the secret.
_SIGNING_PREFIX = "whsec_"
# In a raw tree every value under these keys is a secret (header values are credentials).
_RAW_SECRET_PARENTS = frozenset({"headers"})


def raw_secrets_of(tree: Any) -> list[str]:
    """The values under secret-holding keys of a raw configuration tree."""
    return distinct_secrets(_raw_secrets(tree, secret=False))


def model_secrets(value: Any) -> Iterator[str]:
    """Every `SecretStr` value in `value`: a settings model, however nested."""
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from model_secrets(getattr(value, name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from model_secrets(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from model_secrets(item)


def _raw_secrets(value: Any, *, secret: bool) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            inside = secret or key in SECRET_FIELD_NAMES or key in _RAW_SECRET_PARENTS
            yield from _raw_secrets(item, secret=inside)
    elif isinstance(value, list):
        for item in value:
            yield from _raw_secrets(item, secret=secret)
    elif secret and isinstance(value, str):
        yield value


def _also_known_as(secret: str) -> list[str]:
    if secret.startswith(_SIGNING_PREFIX):
        return [secret.removeprefix(_SIGNING_PREFIX)]
    return []


def distinct_secrets(values: Iterable[str | None]) -> list[str]:
    """Each non-empty value once, with the values it is also known by, sorted."""
    found: set[str] = set()
    for value in values:
        if value:
            found.add(value)
            found.update(_also_known_as(value))
    return sorted(value for value in found if value)


__all__ = ["distinct_secrets", "model_secrets", "raw_secrets_of"]
