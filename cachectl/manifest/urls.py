"""URLs that can be sent, and secrets in a URL's query.

A manifest's URL text is sent as written (`yarl.URL(url, encoded=True)`): it counts as already
percent-encoded, and only the values filled in from params are encoded by the plan. So a space,
a control or non-ASCII character or a stray `%` in the text itself reaches the origin as it
is, which answers 400 to every request; a bad host or port fails every request too.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import SplitResult, quote, urlsplit

from cachectl.redact import MASK, is_secret_header, mask_url


def mask_query_secrets(url: str) -> str:
    """The URL with its userinfo password and every secret-looking query value as ****."""
    url = mask_url(url) or url
    head, sep, query = url.partition("?")
    if not sep:
        return url
    query, hash_sep, fragment = query.partition("#")
    pairs = []
    for pair in query.split("&"):
        name, eq, _ = pair.partition("=")
        pairs.append(f"{name}={MASK}" if eq and is_secret_header(name) else pair)
    return head + "?" + "&".join(pairs) + hash_sep + fragment


def _query_secrets(url: str) -> list[str]:
    query = url.partition("?")[2].partition("#")[0]
    return [
        value
        for name, eq, value in (pair.partition("=") for pair in query.split("&"))
        if eq and value and is_secret_header(name)
    ]


# A param's name is a credential's when redact's test for header and query names says so AND one
# of these is a whole word of it (`api_key`, `apiKey`, `accessToken`, `password`), not a part of


# ---- URLs that can be sent --------------------------------------------------------------------
#
# A manifest's URL text is sent as written (`yarl.URL(url, encoded=True)`): it counts as already
# percent-encoded, and only the values filled in from params are encoded by the plan. So a space,
# a control or non-ASCII character or a stray `%` in the text itself reaches the origin as it
# is, which answers 400 to every request; a bad host or port fails every request too.

_HOST_CHARS = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=%-]+")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_WORD_STOPS = "/?&=#"


def _unsent_char(c: str) -> bool:
    return c <= " " or c == "\x7f" or c > "\x7f"


def _describe_char(c: str) -> str:
    names = {" ": "a space", "\t": "a tab"}
    if c in names:
        return names[c]
    return f"'{c}'" if c.isprintable() else f"the character U+{ord(c):04X}"


def _url_problem(url: str, secrets: Sequence[str] = ()) -> str | None:
    """Why the absolute `url` (placeholders filled) cannot be sent as written, or None."""
    _, _, rest = url.partition("://")
    end = min((i for i in (rest.find(c) for c in "/?#") if i != -1), default=len(rest))
    return _authority_problem(rest[:end]) or _tail_problem(rest[end:], secrets)


def _authority_problem(authority: str) -> str | None:
    # The userinfo is left alone: aiohttp sends it as an Authorization header, encoded.
    hostport = authority.rpartition("@")[2]
    if hostport.startswith("["):
        host, bracket, port = hostport[1:].partition("]")
        port = port.removeprefix(":")
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            return "the host in brackets is not an IPv6 address (write it as [::1])"
        if not bracket:
            return "the host's '[' is not closed (write an IPv6 address as [::1])"
    else:
        host, _, port = hostport.partition(":")
        if not host:
            return "the URL has no host"
        if not _HOST_CHARS.fullmatch(host):
            bad = next(c for c in host if not _HOST_CHARS.fullmatch(c))
            if bad > "\x7f":
                try:
                    ascii_host = host.encode("idna").decode("ascii")
                except UnicodeError:
                    return f"the host holds {_describe_char(bad)}: a host is sent in ASCII"
                return (
                    f"the host holds {_describe_char(bad)}: a host is sent in ASCII, "
                    f"write it as {ascii_host}"
                )
            return f"the host cannot hold {_describe_char(bad)}"
    if port and (not port.isdigit() or not 1 <= int(port) <= 65535):
        return f"the port {port!r} is not a port number (1 to 65535)"
    return None


def _tail_problem(tail: str, secrets: Sequence[str] = ()) -> str | None:
    """The path and query (the fragment is never sent)."""
    tail = tail.partition("#")[0]
    at = next((i for i, c in enumerate(tail) if _unsent_char(c)), None)
    if at is not None:
        start = max(tail.rfind(s, 0, at) for s in _WORD_STOPS) + 1
        ends = [i for i in (tail.find(s, at) for s in _WORD_STOPS) if i != -1]
        end = min(ends, default=len(tail))
        word = tail[start:end]
        example = "".join(quote(c, safe="") if _unsent_char(c) else c for c in word)
        # The example shows the text around the character, unless that text is a credential.
        query_name = tail[:start].rpartition("&")[2].rpartition("?")[2].rstrip("=")
        shown = not any(s in word or word in s for s in secrets if len(s) >= 4) and not (
            "?" in tail[:start] and is_secret_header(query_name)
        )
        char = _describe_char(tail[at])
        what = f"{word} -> {example}" if shown else f"{char} is {quote(tail[at], safe='')}"
        return f"the URL holds {char}, which cannot be sent as it is: percent-encode it ({what})"
    bad = _BAD_ESCAPE.search(tail)
    if bad:
        return "a '%' in the URL does not start an escape like %2F: write %25 for a literal %"
    return None


def _split(url: str) -> SplitResult | None:
    """urlsplit, or None for a URL it refuses (`http://[::1/x`: an unclosed IPv6 host)."""
    try:
        return urlsplit(url)
    except ValueError:
        return None
