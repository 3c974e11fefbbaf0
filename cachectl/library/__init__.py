"""The Python library applications cache their API calls with, in the keyspace cachectl runs.

    from cachectl import APICache
    cache = APICache("redis://localhost:6379/0")
    user = cache.cache_api_call("user_profile", {"id": 123}, lambda: fetch_user(123), ttl=60)

See APICache for the options; AsyncAPICache is its asyncio twin.
"""

from cachectl.library.aio import AsyncAPICache
from cachectl.library.client import APICache
from cachectl.library.core import MISS
from cachectl.library.decorator import cached, set_default_cache
from cachectl.library.stampede import StampedeOptions
from cachectl.library.strategies import EarlyRefresh, StaleWhileRevalidate, Strategy

__all__ = [
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
