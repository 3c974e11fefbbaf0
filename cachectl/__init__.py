"""cachectl: run an API-response cache that lives in Redis.

Importing this package loads no CLI code and no Redis client: the library's names
(`from cachectl import APICache, AsyncAPICache, cached`) are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LIBRARY_NAMES = (
    "MISS",
    "APICache",
    "AsyncAPICache",
    "EarlyRefresh",
    "StaleWhileRevalidate",
    "StampedeOptions",
    "Strategy",
    "cached",
    "set_default_cache",
)

__all__ = [  # noqa: RUF022 -- the version first, then the library's names as above
    "__version__",
    "MISS",
    "APICache",
    "AsyncAPICache",
    "EarlyRefresh",
    "StaleWhileRevalidate",
    "StampedeOptions",
    "Strategy",
    "cached",
    "set_default_cache",
]


def __getattr__(name: str) -> Any:
    if name in _LIBRARY_NAMES:
        value = getattr(importlib.import_module("cachectl.library"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'cachectl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
