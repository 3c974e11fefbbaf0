"""One escaping for keys, printed and read back the same way by every command: `show_bytes`
prints a key, `unshow_bytes` reads what was printed (or typed) back to its bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachectl.errors import ExitCode, UsageError
from cachectl.keytext import show_bytes, unshow_bytes
from cachectl.layout import Layout
from cachectl.ops.selection import SelectionSpec, resolve_selection
from cachectl.render.invalidate import show_key


@pytest.mark.parametrize("byte", range(256))
def test_every_byte_reads_back_alone_and_between_text(byte):
    for raw in (bytes([byte]), b"api_cache:e:" + bytes([byte]) + b"x", bytes([byte]) * 3):
        shown = show_bytes(raw)
        assert unshow_bytes(shown) == raw
        assert shown.isprintable(), shown  # no control character reaches a terminal


@given(st.binary(max_size=60))
@settings(deadline=None, max_examples=500)
def test_any_bytes_read_back(raw):
    assert unshow_bytes(show_bytes(raw)) == raw


@given(st.text(max_size=30))
@settings(deadline=None, max_examples=300)
def test_any_text_key_reads_back(text):
    raw = text.encode("utf-8", "surrogatepass")
    assert unshow_bytes(show_bytes(raw)) == raw


def test_short_and_hex_escapes_read_alike():
    assert unshow_bytes("a\\nb") == unshow_bytes("a\\x0ab") == unshow_bytes("a\\x0Ab") == b"a\nb"
    assert unshow_bytes("\\t\\r") == unshow_bytes("\\x09\\x0d") == b"\t\r"
    assert unshow_bytes("caf\\u00e9") == unshow_bytes("caf\\xc3\\xa9") == "café".encode()


def test_a_literal_backslash_is_printed_doubled():
    assert show_bytes(b"a\\b") == "a\\\\b"
    assert unshow_bytes("a\\\\b") == b"a\\b"
    # A JSON-encoded param holding a quote: the key's own backslash is doubled too.
    assert show_bytes(b'api_cache:s:q:"a\\"b"') == 'api_cache:s:q:"a\\\\"b"'
    assert unshow_bytes(show_bytes(b"\\\\x41")) == b"\\\\x41"


def test_printable_utf8_is_shown_as_it_is():
    assert show_bytes("api_cache:café:q:日本".encode()) == "api_cache:café:q:日本"
    assert unshow_bytes("api_cache:café:q:日本") == "api_cache:café:q:日本".encode()


@pytest.mark.parametrize(
    "typed",
    ["a\\yb", "trailing\\", "\\x4", "\\xzz", "\\u12", "\\ud800", "\\q"],
)
def test_a_backslash_that_starts_no_escape_is_refused(typed):
    with pytest.raises(UsageError) as caught:
        unshow_bytes(typed)
    assert caught.value.exit_code == ExitCode.USAGE
    assert "\\\\" in caught.value.message  # says how to write a literal backslash


def test_invalidate_prints_keys_as_keys_does():
    raw = b"api_cache:x:\xff\x1b[31m\nq\\z"
    assert show_key(raw) == show_bytes(raw) == "api_cache:x:\\xff\\x1b[31m\\nq\\\\z"


def test_invalidate_key_reads_the_printed_form_back_to_the_bytes():
    layout = Layout()
    selection = resolve_selection(layout, SelectionSpec(keys=("api_cache:bin:\\xff\\x00",)))
    (source,) = selection.sources
    assert source.keys == (b"api_cache:bin:\xff\x00",)
    assert source.label == "key api_cache:bin:\\xff\\x00"


def test_invalidate_key_with_a_bad_escape_is_a_usage_error():
    with pytest.raises(UsageError):
        resolve_selection(Layout(), SelectionSpec(keys=("api_cache:e:\\q",)))


# --- globs typed with the printed escapes --------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "glob"),
    [
        ("api_cache:users:*", b"api_cache:users:*"),
        ("api_cache:bin:\\xff*", b"api_cache:bin:\xff*"),
        ("api_cache:bin:\\xff\\x00", b"api_cache:bin:\xff\x00"),
        ("api_cache:a\\nb", b"api_cache:a\nb"),
        ("api_cache:a\\x0ab", b"api_cache:a\nb"),
        ("api_cache:caf\\u00e9", "api_cache:café".encode()),
        ("api_cache:\\x2a", b"api_cache:\\*"),  # an escaped glob character stands for itself
        ("api_cache:\\*", b"api_cache:\\*"),  # the glob's own escapes stay
        ("api_cache:a\\\\b", b"api_cache:a\\\\b"),  # a literal backslash, as keys prints it
        ("api_cache:\\[x]", b"api_cache:\\[x]"),
    ],
)
def test_a_glob_reads_the_escapes_keys_are_printed_with(typed, glob):
    from cachectl.keytext import glob_from_shown

    assert glob_from_shown(typed).encode("utf-8", "surrogateescape") == glob


@given(st.binary(min_size=1, max_size=24))
def test_a_printed_key_used_as_a_glob_matches_exactly_that_key(raw):
    from cachectl.keytext import glob_from_shown
    from cachectl.layout_parse import glob_to_regex

    # What `keys` prints, with the glob's own characters escaped as a user would to match it.
    printed = show_bytes(raw)
    typed = "".join("\\" + c if c in "*?[]" else c for c in printed)
    regex = glob_to_regex(glob_from_shown(typed).encode("utf-8", "surrogateescape"))
    assert regex.fullmatch(raw)
