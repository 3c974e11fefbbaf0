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


def _evictions_without_a_rate(allow_lifetime: bool):
    from cachectl.ops.check import Thresholds, evaluate_report
    from cachectl.ops.stats import NodeSample, Sample, compute_report

    # One read of the counters: no rate over a sample (as after a restart between the two).
    node = NodeSample("n:1", "run", {"evicted_keys": 600}, {"uptime_in_seconds": 60.0})
    report = compute_report(None, Sample(taken_at=1_000.0, nodes=[node]))
    thresholds = Thresholds(max_evictions_per_s=5, allow_lifetime=allow_lifetime)
    (condition,) = evaluate_report(thresholds, report)
    return condition


def test_evictions_with_no_rate_in_the_sample_are_no_data_naming_the_stand_in():
    condition = _evictions_without_a_rate(allow_lifetime=False)
    assert condition.verdict == "no data" and not condition.lifetime
    assert "--allow-lifetime" in condition.detail


def test_evictions_over_the_uptime_stand_in_when_allowed_and_say_so():
    condition = _evictions_without_a_rate(allow_lifetime=True)
    assert (condition.measured, condition.verdict, condition.lifetime) == (10.0, "fail", True)
    assert "uptime" in condition.detail and condition.to_dict()["lifetime"] is True
