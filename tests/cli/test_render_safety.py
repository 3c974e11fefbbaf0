"""People's output shows data exactly as it is: rich reads neither markup (`[bold]`) nor emoji
codes (`:email:`) in a key, an endpoint, a tag, a URL, a setting or a series name.

Many everyday endpoint names are emoji codes (books, email, new, ok, id, key, package, ...), so
an entry key such as `api_cache:books:id:1` would show as `api_cache📚id:1`, and a param value
`[bold]x` as `x`: a key copied from the table into redis-cli would be a wrong key. Off a
terminal (as here) rich still applies both, so these tests see what a terminal would.

`keys`, `tags`, `tags show`, `inspect`, `memory` and `invalidate --dry-run` already drew their
data as rich Text (or as plain lines): their tests hold that; the others failed before the
render modules did the same and the consoles were made with `emoji=False`.
"""

from __future__ import annotations

import json
import time

import pytest
import redis
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.layout import Layout
from tests.integration.test_stats import App

LAYOUT = Layout()
runner = CliRunner()

BOOKS = LAYOUT.entry("books", {"id": 1})  # api_cache:books:id:1
EMAIL = LAYOUT.entry("email", {"q": "[bold]x"})  # api_cache:email:q:"[bold]x"
NEWS = LAYOUT.entry("[bold]news", {"id": 2})  # an endpoint name that looks like markup
TAG = "inbox:email:[bold]x"
ODD = ("📚", "✉", "📧")  # what rich makes of :books: and :email:


def invoke(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env)


def assert_plain(text: str) -> None:
    for emoji in ODD:
        assert emoji not in text, text


@pytest.fixture
def url(redis_url):
    with redis.Redis.from_url(redis_url) as client:
        pipe = client.pipeline(transaction=False)
        for key in (BOOKS, EMAIL, NEWS):
            pipe.set(key, json.dumps({"title": "[bold]x :email: y"}), ex=900)
            pipe.sadd(LAYOUT.tag(TAG), key)
        pipe.set(LAYOUT.entry("new", None), "{}")  # no TTL: memory lists it as an example
        pipe.execute()
    return redis_url


def test_manifest_expand_shows_keys_exactly(tmp_path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\n"
        "defaults: {base_url: 'http://127.0.0.1:9', ttl: 10m}\n"
        "endpoints:\n"
        "  - {name: books, url: '/books/{id}', params: {id: 1}, tags: ['inbox:email:[bold]x']}\n"
        "  - {name: email, url: /email, params: {q: '[bold]x'}}\n"
        "  - {name: new, url: /new}\n"
    )
    result = invoke("manifest", "expand", str(manifest))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert_plain(out)
    assert "🆕" not in out
    assert "api_cache:books:id:1" in out
    assert 'api_cache:email:q:"[bold]x"' in out
    assert "api_cache:new:no_params" in out
    assert "tag:inbox:email:[bold]x" in out
    assert "/email?q=%5Bbold%5Dx" in out  # the URL is as it is sent, too


def test_manifest_validate_names_the_file_exactly(tmp_path):
    folder = tmp_path / "[bold]cfg:email:"
    folder.mkdir()
    manifest = folder / "m.yaml"
    manifest.write_text(
        "version: 1\nendpoints:\n  - {name: a, url: 'http://127.0.0.1:9/a', ttl: 60}\n"
    )
    result = invoke("manifest", "validate", str(manifest))
    assert result.exit_code == 0, result.output
    assert_plain(result.stdout)
    assert f"ok {manifest}:" in result.stdout


def test_keys_shows_keys_endpoints_and_params_exactly(url):
    result = invoke("--url", url, "keys", "--fields", "endpoint,params")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert_plain(out)
    assert BOOKS in out and EMAIL in out and NEWS in out
    assert "[bold]news" in out and '{"q":"[bold]x"}' in out


def test_tags_and_tags_show_show_names_and_members_exactly(url):
    listing = invoke("--url", url, "tags")
    assert listing.exit_code == 0, listing.output
    assert_plain(listing.stdout)
    assert TAG in listing.stdout

    members = invoke("--url", url, "tags", "show", TAG)
    assert members.exit_code == 0, members.output
    assert_plain(members.stdout)
    assert LAYOUT.tag(TAG) in members.stdout
    assert BOOKS in members.stdout and EMAIL in members.stdout and NEWS in members.stdout


def test_inspect_shows_key_endpoint_params_tags_and_value_exactly(url):
    result = invoke("--url", url, "inspect", EMAIL, "--tags")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert_plain(out)
    assert EMAIL in out
    assert '{"q": "[bold]x"}' in out or '{"q":"[bold]x"}' in out
    assert TAG in out
    assert "[bold]x :email: y" in out


def test_memory_shows_largest_entries_and_endpoints_exactly(url):
    result = invoke("--url", url, "memory")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert_plain(out)
    assert "🆕" not in out
    assert EMAIL in out and BOOKS in out  # the largest entries
    assert "[bold]news" in out  # the per-endpoint table
    assert LAYOUT.entry("new", None) in out  # an entry without a TTL


def test_memory_by_key_prefix_shows_prefixes_exactly(url):
    result = invoke("--url", url, "memory", "--depth", "2")
    assert result.exit_code == 0, result.output
    assert_plain(result.stdout)
    assert "api_cache:email" in result.stdout and "api_cache:[bold]news" in result.stdout


def test_stats_shows_endpoints_and_slowest_keys_exactly(redis_url):
    with redis.Redis.from_url(redis_url) as client:
        app_ = App(client)
        app_.request("[bold]news", {"id": 2}, 40.0)
        app_.request("email", {"q": "[bold]x"}, 90.0)
    result = invoke("--url", redis_url, "stats", "--sample", "0")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert_plain(out)
    assert "[bold]news" in out  # endpoints by traffic
    assert EMAIL in out  # the slowest requests


def test_check_for_an_endpoint_names_it_exactly(redis_url):
    with redis.Redis.from_url(redis_url) as client:
        App(client).request("[bold]news", {"id": 2}, 40.0)
    result = invoke(
        "--url",
        redis_url,
        "check",
        "--sample",
        "0.1s",
        "--endpoint",
        "[bold]news",
        "--min-hit-rate",
        "10",
    )
    assert "[bold]news" in result.stdout, result.output


def test_invalidate_dry_run_lists_keys_exactly(url):
    result = invoke("--url", url, "invalidate", "--tag", TAG, "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert_plain(out)
    assert BOOKS in out and EMAIL in out and NEWS in out
    assert TAG in out


def test_doctor_shows_settings_exactly(redis_url, tmp_path):
    result = invoke("--url", redis_url, "doctor", env={"CACHECTL_PREFIX": "[bold]shop:email:x"})
    assert result.exit_code == 0, result.output
    assert_plain(result.stdout)
    assert "[bold]shop:email:x" in result.stdout


def test_doctor_unreachable_still_shows_settings_exactly():
    result = invoke(
        "--url",
        "redis://127.0.0.1:1/0",
        "doctor",
        env={"CACHECTL_PREFIX": "[bold]shop:email:x", "CACHECTL_RETRIES": "0"},
    )
    assert "[bold]shop:email:x" in result.stdout, result.output
    assert_plain(result.stdout)


def test_history_shows_series_names_and_tags_exactly(redis_url):
    name = "hits:email:[bold]x"
    now = int(time.time() * 1000)
    with redis.Redis.from_url(redis_url) as client:
        for i in range(3):
            at = now - (3 - i) * 1000
            member = json.dumps(
                {"value": float(i), "timestamp": at, "tags": json.dumps({"q": "[bold]x"})}
            )
            client.zadd(LAYOUT.metric(name), {member: at})
        client.hset(LAYOUT.meta(name), mapping={"lastUpdate": str(now)})
    listing = invoke("--url", redis_url, "history", "list")
    assert listing.exit_code == 0, listing.output
    assert_plain(listing.stdout)
    assert name in listing.stdout

    shown = invoke("--url", redis_url, "history", "show", name, "--since", "1h")
    assert shown.exit_code == 0, shown.output
    assert_plain(shown.stdout)
    assert name in shown.stdout and '"[bold]x"' in shown.stdout


def test_warm_report_shows_endpoints_urls_and_files_exactly(tmp_path, origin, redis_url):
    folder = tmp_path / "[bold]cfg:email:"
    folder.mkdir()
    manifest = folder / "warm.yaml"
    manifest.write_text(
        "version: 1\n"
        f"defaults: {{base_url: '{origin.url}', ttl: 10m, retries: 0}}\n"
        "endpoints:\n"
        "  - {name: books, url: '/items/{id}', params: {id: 1}}\n"
        "  - {name: '[bold]news', url: '/status/500/{q}', params: {q: ':email:'}}\n"
    )
    result = invoke("--url", redis_url, "warm", str(manifest))
    assert result.exit_code == 6, result.output  # a partial failure
    out = result.stdout
    assert_plain(out)
    assert f"Warm of {manifest}" in out
    assert "[bold]news" in out  # per endpoint and in the failures
    assert f"{origin.url}/status/500/%3Aemail%3A" in out


def test_the_live_dashboard_shows_endpoints_runs_and_series_exactly():
    import io

    from cachectl.ops.stats import DashboardState
    from cachectl.render.dashboard import render_dashboard
    from cachectl.render.output import Output
    from cachectl.runlog import RecentRun
    from tests.unit.test_dashboard import feed
    from tests.unit.test_stats_report import node, sample

    state = DashboardState(started_at=100, interval_seconds=1)
    state.runs = [RecentRun(101_000, "invalidate", 0.25, {"deleted": 3, "selection": f"tag {TAG}"})]
    state.stored = {"hits:email:[bold]x": [0.9, 0.5]}
    endpoints = [{"[bold]news": (0, 0)}, {"[bold]news": (9, 1)}]
    feed(
        state,
        *(
            sample(
                100 + i,
                [node()],
                hits=sum(h for h, _ in e.values()),
                misses=sum(m for _, m in e.values()),
                endpoints=e,
                times=[5.0],
            )
            for i, e in enumerate(endpoints)
        ),
    )
    stdout = io.StringIO()
    Output(stdout=stdout).print(render_dashboard(state))  # the console `stats --every` draws on
    text = stdout.getvalue()
    assert_plain(text)
    assert "[bold]news" in text
    assert f"invalidate tag {TAG}: 3 deleted" in text
    assert "hits:email:[bold]x" in text


def test_manifest_expand_names_the_sets_with_the_layouts_prefixes(tmp_path):
    config = tmp_path / "cachectl.yaml"
    config.write_text("layout:\n  tag_prefix: 'shop:tag'\n  dependency_prefix: 'shop:dep'\n")
    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "version: 1\n"
        "defaults: {base_url: 'http://127.0.0.1:9', ttl: 10m}\n"
        "endpoints:\n"
        "  - {name: books, url: /books, tags: [catalog], depends_on: [book_1]}\n"
    )
    result = invoke("--config", str(config), "manifest", "expand", str(manifest))
    assert result.exit_code == 0, result.output
    assert "shop:tag:catalog, shop:dep:book_1" in result.stdout
