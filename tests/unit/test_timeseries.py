"""The time-series member and chunk formats, on recorded points."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachectl.timeseries import (
    Point,
    chunk_header,
    decode_chunk,
    decode_member,
    encode_chunk,
    encode_member,
)


def test_member_is_written_as_json_stringify_writes_it():
    point = Point(1700000000123, 2.0, '{"host":"a"}')
    assert encode_member(point) == (
        '{"value":2,"timestamp":1700000000123,"tags":"{\\"host\\":\\"a\\"}"}'
    )
    assert encode_member(Point(1, 0.1)) == '{"value":0.1,"timestamp":1,"tags":"{}"}'


def test_member_reads_back_and_junk_is_refused():
    point = Point(1700000000123, 0.25, '{"job":"warm"}')
    assert decode_member(encode_member(point), 0) == point
    assert decode_member(b"not json", 5) is None
    assert decode_member(b'{"value":"high"}', 5) is None
    assert decode_member(b'{"value":true}', 5) is None
    # A member without a timestamp takes its score's; tags written as an object are read too.
    assert decode_member(b'{"value":3,"tags":{"a":1}}', 42) == Point(42, 3.0, '{"a":1}')


def test_a_regular_integer_series_packs_to_about_a_byte_a_point():
    points = [Point(1_700_000_000_000 + 10_000 * i, 1000 + i, "{}") for i in range(360)]
    value = encode_chunk(points)
    assert decode_chunk(value) == points
    assert len(value) < 360 * 3
    assert chunk_header(value).count == 360


def test_float_series_with_several_tags_round_trips_exactly():
    points = [
        Point(1000 + i * 7 + (i % 3), math.sin(i) * 1e6, f'{{"n":{i % 4}}}') for i in range(100)
    ]
    assert decode_chunk(encode_chunk(points)) == sorted(points, key=lambda p: p.timestamp_ms)


def test_a_chunk_that_does_not_read_is_refused():
    with pytest.raises(ValueError):
        decode_chunk("c1:3:0:0:AAAA")
    with pytest.raises(ValueError):
        decode_chunk("garbage")
    assert chunk_header("garbage") is None


finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**45),
            st.one_of(finite, st.integers(-(2**52), 2**52)),
            st.sampled_from(["{}", '{"a":1}', '{"é":"x"}']),
        ),
        max_size=50,
    )
)
def test_any_points_round_trip_through_a_chunk(raw):
    points = [Point(t, float(v), tags) for t, v, tags in raw]
    decoded = decode_chunk(encode_chunk(points))
    assert sorted(decoded, key=lambda p: (p.timestamp_ms, p.value, p.tags)) == sorted(
        points, key=lambda p: (p.timestamp_ms, p.value, p.tags)
    )
