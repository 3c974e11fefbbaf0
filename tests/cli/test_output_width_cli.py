"""Off a terminal (CI logs, pipes) every table-printing command's output is sized to its
content: no trailing blanks, and no line (a table's rules included) wider than the widest line
that holds data."""

from __future__ import annotations

import json

import pytest
import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.layout import Layout

LAYOUT = Layout()
runner = CliRunner()


@pytest.fixture
def url(redis_url):
    with redis.Redis.from_url(redis_url) as client:
        for i in range(3):
            key = LAYOUT.entry("users", {"id": i})
            client.set(key, json.dumps({"id": i}), ex=900)
            client.sadd(LAYOUT.tag("all"), key)
    return redis_url


COMMANDS = [
    ["keys"],
    ["keys", "--fields", "ttl,size,params"],
    ["stats"],
    ["memory"],
    ["tags"],
    ["doctor"],
    ["inspect", LAYOUT.entry("users", {"id": 1})],
    ["check", "--max-memory", "90%"],
    ["tags", "show", "all"],
    ["invalidate", "--tag", "all", "--dry-run"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_off_a_terminal_output_is_as_wide_as_its_content(url, args):
    result = runner.invoke(app, ["--url", url, *args])
    assert result.exit_code in (0, 1, 3), result.output
    lines = result.stdout.splitlines()
    assert lines, result.output
    trailing = [line for line in lines if line != line.rstrip()]
    assert trailing == [], "\n".join(repr(line) for line in trailing)
    data_lines = [line for line in lines if any(ch.isalnum() for ch in line)]
    assert max(map(len, lines)) <= max(map(len, data_lines))


def test_off_a_terminal_the_key_column_is_as_wide_as_the_longest_key(url):
    long_key = LAYOUT.entry("users", {"id": 1})
    result = runner.invoke(app, ["--url", url, "keys", "--fields", "ttl"])
    assert result.exit_code == 0, result.output
    _header, rule, *rows = result.stdout.splitlines()
    assert len(rule) == max(len(line) for line in rows)
    # The key, one gap, the ttl column ("ttl" or "15m"): nothing padded to a screen width.
    assert len(rule) <= len(long_key) + 3 + len("no expiry")


def test_one_entry_is_one_entry(redis_url):
    with redis.Redis.from_url(redis_url) as client:
        client.set(LAYOUT.entry("users", {"id": 1}), "{}")
    result = runner.invoke(app, ["--url", redis_url, "memory"])
    assert result.exit_code == 0, result.output
    assert "in the cache: 1 entry (" in result.stdout
    assert "1 entries" not in result.stdout


def test_a_recorded_run_carries_its_selection_for_the_dashboard(url):
    from cachectl.config import Settings
    from cachectl.render.dashboard import run_in_words
    from cachectl.runlog import recent_runs
    from cachectl.store import Store
    from cachectl.timeseries import TimeSeries

    result = runner.invoke(app, ["--url", url, "invalidate", "--tag", "all", "--yes"])
    assert result.exit_code == 0, result.output
    with Store(Settings(url=url)) as store:
        (run,) = recent_runs(TimeSeries(store, LAYOUT))
    assert run_in_words(run).startswith("invalidate tag all: 3 deleted, ")
