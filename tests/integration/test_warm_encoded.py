"""`warm` asks for gzip or deflate and unpacks the answer itself, within the response size
limit: a compressed answer is stored as the same text as a plain one, and a decompression bomb
(a few MB packing a GiB) fails as `too_large` once the limit is unpacked, whatever aiohttp's
version, holding no more than the limit."""

from __future__ import annotations

import resource

import pytest
from redis import Redis

from tests.integration.test_warm import manifest, run
from tests.origin import _compressed_json_string

MiB = 1024 * 1024


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "rawdeflate"])
def test_a_compressed_answer_is_stored_as_the_same_text(tmp_path, origin, redis_url, encoding):
    path = manifest(tmp_path, origin, f"- {{name: e, url: /encoded/{encoding}/300000}}\n")
    result = run(redis_url, path)
    assert result.stored == 1 and not result.failed
    stored = Redis.from_url(redis_url).get("api_cache:e:no_params")
    assert stored == b'"' + b"x" * 299998 + b'"'
    _, _, headers, _ = origin.requests[-1]
    assert headers["Accept-Encoding"] == "gzip, deflate"


def test_an_encoding_not_asked_for_is_a_bad_answer(tmp_path, origin, redis_url):
    path = manifest(tmp_path, origin, "- {name: e, url: /encoded/br/100, retries: 0}\n")
    result = run(redis_url, path)
    assert dict(result.failed) == {"bad_answer": 1}


def test_a_decompression_bomb_fails_as_too_large_holding_no_more_than_the_limit(
    tmp_path, origin, redis_url
):
    path = manifest(
        tmp_path,
        origin,
        f"- {{name: bomb, url: '/encoded/gzip/{1024 * MiB}/{{i}}', retries: 0,"
        " matrix: {i: {range: [1, 8]}}}\n",
    )
    _compressed_json_string("gzip", 1024 * MiB)  # packed once, before the clock of the run
    before = rss_mb()
    result = run(redis_url, path, concurrency=8)
    assert dict(result.failed) == {"too_large": 8}, result
    # Each stops once 8 MiB are unpacked: 8 x 1 GiB unpacked would be gigabytes.
    assert rss_mb() - before < 150


def test_unpacking_stops_at_the_limit_and_refuses_broken_or_cut_gzip():
    import gzip

    from cachectl.ops.warm_http import _BadEncoding, _Unpacker

    packed = gzip.compress(b"x" * (10 * MiB))
    unpack = _Unpacker.of("gzip")
    assert sum(map(len, unpack.feed(packed, 1000 + 1))) == 1001  # no more than asked
    whole = _Unpacker.of("gzip")
    assert b"".join(whole.feed(packed, 20 * MiB)) == b"x" * (10 * MiB)
    whole.finish()
    cut = _Unpacker.of("gzip")
    cut.feed(packed[: len(packed) // 2], 20 * MiB)
    with pytest.raises(_BadEncoding, match="cut short"):
        cut.finish()
    with pytest.raises(_BadEncoding, match="broken"):
        _Unpacker.of("gzip").feed(b"\x1f\x8b not gzip at all", 100)
    with pytest.raises(_BadEncoding, match="not asked for"):
        _Unpacker.of("zstd")
