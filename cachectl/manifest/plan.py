"""The plan of a warm run: the endpoints chosen, expanded lazily against a layout."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from cachectl.errors import UsageError
from cachectl.layout import Layout
from cachectl.manifest.model import Manifest, PlannedRequest
from cachectl.redact import scrub
from cachectl.yamlsrc import nearest

# ---- the plan ---------------------------------------------------------------------------------


class Plan:
    """What a warm run asks for: the endpoints of the manifests (those named, or all), expanded
    lazily against a layout."""

    def __init__(self, manifests: Sequence[Manifest], layout: Layout, only: Sequence[str] = ()):
        self.manifests = list(manifests)
        self.layout = layout
        every = [e for m in self.manifests for e in m.endpoints]
        names = sorted({e.name for e in every})
        unknown = [n for n in only if n not in names]
        if unknown:
            guess = nearest(unknown[0], names)
            raise UsageError(
                f"no endpoint named '{unknown[0]}' in the manifests"
                + (f" (did you mean '{guess}'?)" if guess else ""),
                hint=f"endpoints there: {', '.join(names)}",
            )
        self.endpoints = [e for e in every if not only or e.name in only]

    @property
    def files(self) -> list[str]:
        return [m.file for m in self.manifests]

    @property
    def total(self) -> int:
        return sum(e.count for e in self.endpoints)

    @property
    def secrets(self) -> list[str]:
        return [s for m in self.manifests for s in m.secrets]

    @property
    def endpoint_names(self) -> list[str]:
        return sorted({e.name for e in self.endpoints})

    def requests(self) -> Iterator[PlannedRequest]:
        for endpoint in self.endpoints:
            yield from endpoint.requests(self.layout)

    def summary(self) -> dict[str, Any]:
        """The plan in brief: per endpoint, where it is defined and how many entries it gives."""
        return {
            "manifests": self.files,
            "total": self.total,
            "endpoints": [
                {
                    "name": e.name,
                    "file": e.file,
                    "line": e.line,
                    "method": e.method,
                    "entries": e.count,
                    "ttl_seconds": e.ttl_ms / 1000,
                    "matrix": {name: source.describe() for name, source in e.matrix},
                }
                for e in self.endpoints
            ],
        }

    def scrub(self, text: str) -> str:
        """`text` with every secret of the manifests masked (for errors from the network)."""
        return scrub(text, self.secrets)

    def check_unique_keys(self) -> None:
        """A ManifestError naming both places when two requests of the plan write one key
        (checked once per plan: `warm --every` does not pay for it each round)."""
        if not self.__dict__.get("_keys_checked"):
            from cachectl.manifest.keys import check_unique_keys

            check_unique_keys(self)
            self._keys_checked = True

    def request_for_entry(
        self, key: str, endpoint: str, params: Mapping[str, Any]
    ) -> tuple[PlannedRequest | None, str | None]:
        """The request that refreshes an existing entry (read back from its key), or None and
        why not: the first definition of `endpoint` whose templates the params fill is used,
        and the key it gives must be the entry's own key."""
        candidates = [e for e in self.endpoints if e.name == endpoint]
        if not candidates:
            return None, "not_in_manifest"
        for definition in candidates:
            needed = definition.url.names.union(
                *(t.names for t in (*definition.tags, *definition.depends_on)),
                definition.fallback_url.names if definition.fallback_url else (),
            )
            if needed <= set(params):
                request = definition.request_for(dict(params), self.layout)
                return (request, None) if request.key == key else (None, "key_mismatch")
        return None, "params_do_not_fit"
