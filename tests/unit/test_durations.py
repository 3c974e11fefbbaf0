import pytest

from cachectl.durations import parse_duration


@pytest.mark.parametrize(
    "text, seconds",
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("2.5", 2.5),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("10m", 600.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("1m30s500ms", 90.5),
        ("1.5h", 5400.0),
        ("-5m", -300.0),
    ],
)
def test_durations_read_as_people_write_them(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "m", "10x", "ten minutes", "10m-", "1h30", "inf", "nan", True, None, [1]]
)
def test_anything_else_is_refused_with_examples(text):
    with pytest.raises(ValueError, match="expected a duration such as"):
        parse_duration(text)
