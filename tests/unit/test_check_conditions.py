"""`cachectl check`'s pure parts: a memory share's base and what it says when it has none, and
the webhook request made from a URL with credentials."""

from __future__ import annotations

import base64

from cachectl.errors import RedisPermissionError
from cachectl.ops.check import (
    MemoryLimit,
    _memory_condition,
    _window_memory_share,
    webhook_request,
    webhook_target,
)

EIGHTY = MemoryLimit(percent=80)
HINT = "set maxmemory on the server, or give --max-memory as a size"


def test_a_live_share_with_no_base_says_what_would_give_it_one():
    condition = _memory_condition(EIGHTY, 1000, None, None)
    assert condition.verdict == "no data" and HINT in condition.detail


def test_a_window_share_prefers_the_recorded_share_of_maxmemory():
    condition = _window_memory_share(EIGHTY, [0.5, 0.85], [100, 200], lambda: 1 / 0, "nothing")
    assert condition.measured == 85 and condition.verdict == "fail"


def test_a_window_share_without_maxmemory_is_of_the_machines_memory():
    condition = _window_memory_share(EIGHTY, [], [100, 700], lambda: 1000, "nothing")
    assert condition.measured == 70 and condition.ok
    assert "700 of 1,000 bytes (the machine's memory (no maxmemory set))" in condition.detail


def test_a_window_share_with_no_base_to_read_is_no_data_that_says_why_and_what_to_do():
    def refused():
        raise RedisPermissionError("the ACL user 'x' may not run INFO", command="INFO")

    for read, why in ((refused, "may not run INFO"), (lambda: None, "not known")):
        condition = _window_memory_share(EIGHTY, [], [100], read, "nothing")
        assert condition.verdict == "no data"
        assert why in condition.detail and HINT in condition.detail
    assert _window_memory_share(EIGHTY, [], [], lambda: 1000, "nothing").detail == "nothing"


def test_credentials_leave_the_url_for_a_basic_auth_header():
    url, headers = webhook_request("https://a%20b:p%40ss%3Aw@hooks.example.com:8443/T/x?y=1")
    assert url == "https://hooks.example.com:8443/T/x?y=1"
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"a b:p@ss:w").decode()
    assert (
        webhook_target("https://a:p@hooks.example.com:8443/T/x") == "https://hooks.example.com:8443"
    )


def test_a_user_without_a_password_is_sent_with_an_empty_one_and_no_userinfo_sends_none():
    _, headers = webhook_request("http://token@h/x")
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"token:").decode()
    url, headers = webhook_request("http://h:81/x")
    assert url == "http://h:81/x" and "Authorization" not in headers
