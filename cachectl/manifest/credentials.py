"""Credentials that must not enter a key: params named like one, and the texts a value holds."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from cachectl.redact import is_secret_header

# a word: `keyword`, `author` or `monkey` are masked in a shown URL (harmless), but refusing them
# would refuse ordinary APIs.
_SECRET_PARAM_WORDS = frozenset({
    "token", "tokens", "secret", "secrets", "password", "passwords", "passwd", "auth",
    "authorization", "credential", "credentials", "key", "session", "sessionid", "apikey",
    "accesskey", "secretkey", "privatekey", "authkey", "appkey", "clientkey", "licensekey",
    "sessionkey", "subscriptionkey",
})  # fmt: skip
_SECRET_PARAM_ENDINGS = ("token", "tokens", "secret", "password", "passwd", "credentials")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def is_secret_param(name: str) -> bool:
    """Whether a param named `name` carries a credential (and so may not be a param: every
    param is part of the entry key)."""
    if not is_secret_header(name):
        return False
    words = re.split(r"[^a-z0-9]+", _CAMEL_BOUNDARY.sub("_", name).lower())
    return any(w in _SECRET_PARAM_WORDS or w.endswith(_SECRET_PARAM_ENDINGS) for w in words if w)


def _texts_in(value: Any) -> Iterator[str]:
    """Every string inside a JSON value (a key holds them all)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts_in(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _texts_in(item)
