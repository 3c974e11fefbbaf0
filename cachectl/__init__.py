"""cachectl: run an API-response cache that lives in Redis.

Importing this package loads no CLI code and no Redis client: the library's names
(`from cachectl import APICache, AsyncAPICache, cached`) are loaded on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# The one place the version is written: pyproject.toml reads it (setuptools' dynamic version)
# and `cachectl --version` prints it without reading any package metadata.
__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers see; at run time __getattr__ imports them on first use
    from cachectl.library import (
        MISS,
        APICache,
        AsyncAPICache,
        EarlyRefresh,
        StaleWhileRevalidate,
        StampedeOptions,
        Strategy,
        cached,
        set_default_cache,
    )

# The one list of the public names: the version, then the library's names (a test holds it
# equal to cachectl.library.__all__ and to the TYPE_CHECKING import above).
__all__ = [  # noqa: RUF022 -- the version first
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
_LIBRARY_NAMES = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:
    if name in _LIBRARY_NAMES:
        value = getattr(importlib.import_module("cachectl.library"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'cachectl' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
