"""One wire layer: redis-py is imported, and connections are touched, only by the store
(store.py and its store_*.py helpers), the library's own connection module
(cachectl/library/) and the development server (devserver.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import cachectl

PACKAGE = Path(cachectl.__file__).resolve().parent
ALLOWED = {
    "store.py",
    "store_wire.py",
    "store_errors.py",
    "store_policy.py",
    "store_cluster.py",
    "store_sentinel.py",
    "devserver.py",
}
# What reaches below the Store: its client, a pool's connections, a raw connection's I/O.
CONNECTION_ATTRIBUTES = {
    "connection_pool",
    "get_connection",
    "send_command",
    "send_packed_command",
    "read_response",
}


def wire_uses(package: Path) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package)
        if relative.parts[0] == "library" or str(relative) in ALLOWED:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            elif isinstance(node, ast.Attribute):
                client_of_store = node.attr == "client" and (
                    (isinstance(node.value, ast.Name) and node.value.id == "store")
                    or (isinstance(node.value, ast.Attribute) and node.value.attr == "store")
                )
                if node.attr in CONNECTION_ATTRIBUTES or client_of_store:
                    found.append(f"{relative}:{node.lineno}: .{node.attr}")
                continue
            else:
                continue
            found += [
                f"{relative}:{node.lineno}: import {n}"
                for n in names
                if n == "redis" or n.startswith("redis.")
            ]
    return found


def test_only_the_store_imports_redis_or_touches_a_connection():
    assert wire_uses(PACKAGE) == []
