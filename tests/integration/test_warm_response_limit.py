"""`warm` never holds an answer larger than the response size limit: a bigger answer is a failed
request with the reason `too_large`, read no further than the limit (Content-Length checked up
front, a chunked answer counted while it streams), never retried and never cached."""

from __future__ import annotations

import json
import resource

from tests.integration.test_warm import manifest, run

MiB = 1024 * 1024


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_an_answer_over_the_default_limit_fails_as_too_large_and_is_not_cached(
    tmp_path, origin, redis_url, redis_server
):
    path = manifest(
        tmp_path,
        origin,
        f"""\
        - {{name: big, url: /big/{50 * MiB}, retries: 2}}
        - {{name: chunked, url: /bigchunked/{50 * MiB}, retries: 2}}
        - {{name: fine, url: /big/{MiB}}}
        """,
    )
    before = rss_mb()
    result = run(redis_url, path, report_path=str(tmp_path / "report.json"))
    assert result.stored == 1
    assert dict(result.failed) == {"too_large": 2}
    assert origin.hits(f"/big/{50 * MiB}") == 1  # the answer will not shrink: not retried
    assert origin.hits(f"/bigchunked/{50 * MiB}") == 1
    # Read no further than the limit (8 MiB): the origin could not write the rest.
    assert origin.sent["bigchunked"] < 30 * MiB
    assert origin.sent["big"] < 30 * MiB
    assert rss_mb() - before < 100
    with redis_server.client() as conn:
        assert conn.keys("api_cache:*") == [b"api_cache:fine:no_params"]
    report = json.loads((tmp_path / "report.json").read_text())
    by_endpoint = {r["endpoint"]: r for r in report["requests"]}
    assert by_endpoint["big"]["reason"] == "too_large"
    assert "8 MiB" in by_endpoint["big"]["error"]
    assert by_endpoint["chunked"]["reason"] == "too_large"


def test_fifty_answers_streaming_at_once_hold_a_bounded_share_not_fifty_limits(
    tmp_path, origin, redis_url
):
    path = manifest(
        tmp_path,
        origin,
        f"- {{name: chunked, url: '/bigchunked/{50 * MiB}/{{i}}', retries: 0,"
        " matrix: {i: {range: [1, 50]}}}\n",
    )
    before = rss_mb()
    result = run(redis_url, path, concurrency=50)
    assert dict(result.failed) == {"too_large": 50}
    # 50 x 8 MiB would be 400 MiB; the shared budget keeps it near 64 MiB plus one limit.
    assert rss_mb() - before < 150


def test_the_limit_is_set_per_manifest_per_endpoint_and_by_the_run(
    tmp_path, origin, redis_url, redis_server
):
    path = manifest(
        tmp_path,
        origin,
        """\
        - {name: small, url: /big/3000}
        - {name: roomy, url: /big/3000, max_response_bytes: 4KiB}
        - {name: chunked, url: /bigchunked/3000}
        """,
        defaults="max_response_bytes: 2KiB\n",
    )
    result = run(redis_url, path)
    assert dict(result.failed) == {"too_large": 2} and result.stored == 1
    result = run(redis_url, path, max_response_bytes=1000)  # --max-response-bytes over all
    assert dict(result.failed) == {"too_large": 3}
    result = run(redis_url, path, max_response_bytes=5000)
    assert result.stored == 3 and not result.failed


def test_hostile_access_log_members_are_ignored_in_bounded_time_and_memory(
    tmp_path, origin, redis_url, redis_server
):
    """The access log is read from Redis, where any client may write: a member of thousands of
    colons (once read back by trying every split) or of megabytes is left alone and counted."""
    from cachectl.layout import Layout

    path = manifest(tmp_path, origin, '- {name: items, url: "/items/{id}", matrix: {id: [1]}}\n')
    layout = Layout()
    with redis_server.client() as conn:
        conn.zadd(
            "cache_access",
            {
                "api_cache:" + ":" * 40_000: 5000,  # no endpoint of the manifest: every split
                "api_cache:items:" + "x" * (2 * MiB): 4000,
                layout.entry("items", {"id": 7}): 1000,
            },
        )
    before = rss_mb()
    result = run(redis_url, path, from_access_log_top=5)
    assert result.access_log.selected == 1 and result.stored == 1
    assert dict(result.access_log.ignored) == {"other_endpoint": 1, "too_long": 1}
    assert rss_mb() - before < 100
