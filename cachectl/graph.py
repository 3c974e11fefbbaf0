"""The dependency graph `invalidate --depends-on` follows: which resources depend on which.

A YAML mapping from a resource id to the ids that depend on it, so that invalidating one
invalidates everything it reaches:

    user_123: [profile_data, preferences]
    profile_data: [dashboard]

Cycles are fine (every resource is visited once). Ids are text; YAML numbers are read as the
text JavaScript would write for them (`123` is `"123"`), since resource ids end up in
`depends_on:{id}` key names.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from cachectl.errors import BadInputError
from cachectl.layout import js_string
from cachectl.yamlsrc import Problem, Problems, kind_of, load_yaml


@dataclass(frozen=True)
class DependencyGraph:
    """resource id -> the ids that depend on it (each once, in file order)."""

    edges: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    file: str | None = None

    def reach(self, roots: Iterable[str]) -> list[str]:
        """The roots and every id reachable from them, each once, breadth first."""
        order: list[str] = []
        seen: set[str] = set()
        queue = deque(roots)
        while queue:
            resource = queue.popleft()
            if resource in seen:
                continue
            seen.add(resource)
            order.append(resource)
            queue.extend(self.edges.get(resource, ()))
        return order


def load_graph(path: str | os.PathLike) -> DependencyGraph:
    """Reads a dependency graph file; every problem in it is reported at once, with its
    FILE:LINE:COL, as a BadInputError (exit 3)."""
    doc = load_yaml(path, kind=BadInputError)
    problems = Problems(doc, kind=BadInputError)
    problems.extend(doc.problems)
    if doc.data is None:
        problems.add((), "the file is empty: expected a mapping like `user_123: [profile_data]`")
    top = problems.mapping((), "a mapping of resource id to the ids that depend on it")
    edges: dict[str, tuple[str, ...]] = {}
    for key, value in top.items():
        resource = _resource_id(key)
        if resource is None:
            # Not problems.add: its path would print a boolean key as "[True]".
            problems.extend([Problem(doc.mark((key,), key=True), (), _not_an_id(key))])
            continue
        if value is None:
            dependents: list = []
        elif isinstance(value, list):
            dependents = value
        elif _resource_id(value) is not None:
            dependents = [value]
        else:
            problems.add((key,), f"expected a list of resource ids, got {kind_of(value)}")
            continue
        ids: dict[str, None] = {}  # a dict: each id once, in file order, found in O(1)
        for index, item in enumerate(dependents):
            dependent = _resource_id(item)
            if dependent is None:
                problems.add((key, index), _not_an_id(item))
            else:
                ids.setdefault(dependent)
        edges[resource] = tuple(ids)
    problems.raise_if_any(f"dependency graph {doc.file}")
    return DependencyGraph(edges, doc.file)


def _resource_id(value: object) -> str | None:
    # A bare `yes:` or `on:` is a YAML boolean: almost surely meant as text, so it is refused
    # (with the hint to quote it) rather than silently read as "true".
    if isinstance(value, str) and value:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return js_string(value)
    return None


def _not_an_id(value: object) -> str:
    quote = " (put it in quotes)" if isinstance(value, bool) else ""
    return f"a resource id must be text or a number, not {kind_of(value)}{quote}"
