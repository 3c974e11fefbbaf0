"""Keeping secrets out of everything cachectl prints, logs or stores.

A URL is shown with its password masked everywhere; header values that carry credentials are
masked; and any text can be scrubbed of known secret values before it is shown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import overload

MASK = "****"

# Header names whose values are credentials. Compared case-insensitively.
SECRET_HEADER_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "x-auth-token",
        "x-access-token",
        "x-csrf-token",
        "x-amz-security-token",
    }
)
_SECRET_WORDS = re.compile(
    r"(token|secret|password|passwd|auth|key|session|credential)", re.IGNORECASE
)

# Linear on any text: the scheme is at most 32 characters and the password at most 1,024, so
# no long run of letters is rescanned from each of its positions (unbounded, one 200 KB word
# took minutes). The user part stops at the next `/` or `:`, so it is scanned once.
_URL_USERINFO = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]{0,31}://)(?P<user>[^:/@\s]*):(?P<pw>[^@\s]{0,1024})@",
    re.IGNORECASE,
)


@overload
def mask_url(url: str) -> str: ...
@overload
def mask_url(url: None) -> None: ...


def mask_url(url: str | None) -> str | None:
    """The URL as cachectl shows it: its password (and any `password=` query value) replaced by
    ****, and any credentials of a URL inside it too. When the password (or user name) of a
    redis:// URL holds a character that breaks the URL apart, all of its user part that could
    be is masked.

    Works on the text itself rather than re-assembling parsed parts, so the URL keeps its exact
    form (`unix:///path` stays `unix:///path`).
    """
    if not url:
        return url
    if userinfo_breaks_url(url):
        scheme, _, rest = url.partition("://")
        userinfo, _, host = rest.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        shown_user = f"{user}:" if colon and user and not any(c in user for c in "/?#") else ""
        return f"{scheme}://{shown_user}{MASK}@{host}"
    # mask_urls_in_text also catches a password urlsplit misreads
    return mask_urls_in_text(_mask_url_text(url))


def userinfo_breaks_url(url: str) -> bool:
    """An '@' after the first '/', '#' or '?' of a redis:// URL: a user part holding one of
    them, which URL parsers read as the end of the host part."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("redis", "rediss", "redis+sentinel", "rediss+sentinel"):
        return False
    end = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    return "@" not in rest[:end] and "@" in rest[end:]


def _mask_url_text(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _QUERY_SECRET.sub(rf"\g<1>{MASK}", url)
    authority_end = len(rest)
    for stop in "/?#":
        index = rest.find(stop)
        if index != -1:
            authority_end = min(authority_end, index)
    authority, tail = rest[:authority_end], rest[authority_end:]
    if "@" in authority:
        userinfo, _, hostport = authority.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.partition(":")[0] + ":" + MASK
        elif scheme.lower().startswith("redis"):
            userinfo = MASK  # redis://secret@host: a lone userinfo is the password
        authority = f"{userinfo}@{hostport}"
    return f"{scheme}://{authority}" + _QUERY_SECRET.sub(rf"\g<1>{MASK}", tail)


_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|pass|token|secret)=)[^&#]*")


def mask_urls_in_text(text: str) -> str:
    """Masks the password of every URL with credentials found in free text."""
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)


def is_secret_header(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_HEADER_NAMES or bool(_SECRET_WORDS.search(lowered))


def mask_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """A copy of the headers with every credential-carrying value masked."""
    return {k: (MASK if is_secret_header(k) else v) for k, v in (headers or {}).items()}


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every known secret value (at least 4 characters long) replaced by ****."""
    out = mask_urls_in_text(text)
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        out = out.replace(secret, MASK)
    return out
