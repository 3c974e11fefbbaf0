"""`@cached`: cache a function's answers, keyed by its endpoint name and its arguments."""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterable
from typing import Any

from cachectl.errors import UsageError
from cachectl.library.core import as_strategy, ttl_to_ms

_default_cache: Any = None
_default_async_cache: Any = None
_default_lock = threading.Lock()


def set_default_cache(cache: Any) -> None:
    """The cache `@cached` uses when given none: an APICache for plain functions, an
    AsyncAPICache for coroutine functions."""
    from cachectl.library.aio import AsyncAPICache
    from cachectl.library.client import APICache

    global _default_cache, _default_async_cache
    if isinstance(cache, AsyncAPICache):
        _default_async_cache = cache
    elif isinstance(cache, APICache):
        _default_cache = cache
    else:
        raise UsageError(f"the default cache must be an APICache, not {type(cache).__name__}")


def default_cache() -> Any:
    """The default APICache; the first call makes one from cachectl's settings (CACHECTL_URL,
    cachectl.yaml) unless set_default_cache() gave one."""
    global _default_cache
    with _default_lock:
        if _default_cache is None:
            from cachectl.library.client import APICache

            _default_cache = APICache()
        return _default_cache


def _default_async() -> Any:
    if _default_async_cache is None:
        # An asyncio client belongs to one event loop, so none is made behind the caller's back.
        raise UsageError(
            "a cached coroutine function needs an AsyncAPICache",
            hint="pass cache=AsyncAPICache(...) to @cached, or call set_default_cache() with one",
        )
    return _default_async_cache


def call_params(
    signature: inspect.Signature, args: tuple, kwargs: dict, ignore: frozenset[str]
) -> dict[str, Any]:
    """The call's arguments by parameter name, defaults filled in: the entry's params.
    *args is kept as a list under its name; **kwargs are merged in."""
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    params: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if name in ignore:
            continue
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            params.update({k: v for k, v in value.items() if k not in ignore})
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            if value:
                params[name] = list(value)
        else:
            params[name] = value
    return params


def cached(
    endpoint: str | Callable | None = None,
    ttl: float | None = None,
    tags: Iterable = (),
    *,
    cache: Any = None,
    ignore: Iterable[str] = ("self", "cls"),
    **options: Any,
) -> Callable:
    """Caches a function's answers through `cache.cache_api_call`.

    endpoint: the entry's endpoint (default: the function's name). The params are the call's
    arguments by name, defaults included, except those in `ignore` (`self` and `cls`), so
    `get_user(123)` and `get_user(id=123)` share an entry. ttl, tags and the options
    (depends_on, cache_if, fallback, strategy, refresh) are cache_api_call's. Coroutine
    functions are cached through an AsyncAPICache. Without `cache`, the default cache is used
    (see set_default_cache). Also usable bare: `@cached`.
    """
    if callable(endpoint):
        return cached()(endpoint)
    if ttl is not None:
        ttl_to_ms(ttl)
    if options.get("strategy") is not None:
        as_strategy(options["strategy"])
    skipped = frozenset(ignore)

    def decorate(fn: Callable) -> Callable:
        name = endpoint or fn.__name__
        signature = inspect.signature(fn)
        if inspect.iscoroutinefunction(fn):
            _check_kind(cache, want_async=True)

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                params = call_params(signature, args, kwargs, skipped)
                target = cache or _default_async()
                return await target.cache_api_call(
                    name, params, lambda: fn(*args, **kwargs), ttl, tags, **options
                )

            return async_wrapper
        _check_kind(cache, want_async=False)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            params = call_params(signature, args, kwargs, skipped)
            target = cache or default_cache()
            return target.cache_api_call(
                name, params, lambda: fn(*args, **kwargs), ttl, tags, **options
            )

        return wrapper

    return decorate


def _check_kind(cache: Any, *, want_async: bool) -> None:
    if cache is None:
        return
    from cachectl.library.aio import AsyncAPICache
    from cachectl.library.client import APICache

    if want_async and not isinstance(cache, AsyncAPICache):
        raise UsageError("a cached coroutine function needs an AsyncAPICache as its cache")
    if not want_async and not isinstance(cache, APICache):
        raise UsageError("a cached plain function needs an APICache as its cache")
