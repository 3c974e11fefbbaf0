"""Redis Sentinel settings without a server: the `redis+sentinel://` URL form, the `sentinel:`
profile settings, their errors, and secrets kept out of every message."""

from __future__ import annotations

import textwrap

import pytest

from cachectl.config import (
    SentinelTarget,
    Settings,
    load_settings,
    parse_sentinel_url,
    url_problem,
)
from cachectl.errors import ConfigError
from cachectl.redact import mask_url
from cachectl.store import Store


@pytest.fixture
def load(tmp_path):
    def load(env=None, config=None, **kw):
        path = None
        if config is not None:
            path = tmp_path / "cachectl.yaml"
            path.write_text(textwrap.dedent(config))
        return load_settings(
            env={"HOME": str(tmp_path), **(env or {})},
            cwd=tmp_path,
            config_path=str(path) if path else None,
            **kw,
        )

    return load


def test_the_url_names_the_sentinels_the_service_and_the_database():
    target = parse_sentinel_url("redis+sentinel://bob:p%40ss@h1:26380,h2,[::1]:1/svc/3")
    assert target == SentinelTarget(
        (("h1", 26380), ("h2", 26379), ("::1", 1)), "svc", 3, "bob", "p@ss"
    )
    assert parse_sentinel_url("redis+sentinel://h1/svc").db == 0
    assert parse_sentinel_url("rediss+sentinel://secret@h1/svc").password == "secret"


@pytest.mark.parametrize(
    "url, words",
    [
        ("redis+sentinel://h1:26379", "no service name"),
        ("redis+sentinel://h1:26379/svc/x", "the database 'x' is not a number"),
        ("redis+sentinel://h1:99999/svc", "not a number in 1-65535"),
        ("redis+sentinel://h1,/svc", "an empty sentinel address"),
        ("redis+sentinel://h1/svc/0/more", "expected /SERVICE/DB"),
    ],
)
def test_a_bad_sentinel_url_is_said_in_one_line(url, words):
    problem = url_problem(url)
    assert problem is not None and words in problem and "\n" not in problem


def test_a_password_holding_a_slash_is_never_quoted():
    url = "redis+sentinel://u:pa/ss:x@h1:abc/svc"
    problem = url_problem(url)
    assert problem is not None and "pa/ss" not in problem and "ss:x" not in problem
    assert mask_url(url) == "redis+sentinel://u:****@h1:abc/svc"


def test_the_url_is_masked_in_output():
    url = "redis+sentinel://u:top-s3cret@h1:26379,h2:26379/svc/0"
    assert mask_url(url) == "redis+sentinel://u:****@h1:26379,h2:26379/svc/0"
    assert "top-s3cret" not in repr(Settings(url=url))


def test_profile_settings_name_the_sentinels(load):
    settings = load(
        config="""\
        url: redis://unused/4
        profiles:
          prod:
            sentinel:
              hosts: [10.0.0.1:26379, 10.0.0.2]
              service: cache
              password: ${SENTINEL_PW}
        """,
        env={"SENTINEL_PW": "sent-s3cret"},
        profile="prod",
    )
    assert settings.sentinel.hosts == ("10.0.0.1:26379", "10.0.0.2")
    assert settings.sentinel.password == "sent-s3cret"
    assert settings.sentinel_target() == SentinelTarget(
        (("10.0.0.1", 26379), ("10.0.0.2", 26379)), "cache", 4
    )
    shown = {name: value for name, value, _ in settings.describe()}
    assert shown["sentinel.password"] == "****"
    assert shown["sentinel.hosts"] == "10.0.0.1:26379, 10.0.0.2"
    assert "sent-s3cret" not in repr(settings)


def test_the_environment_names_the_sentinels(load):
    settings = load(
        env={
            "CACHECTL_SENTINEL_HOSTS": "a:1,b:2",
            "CACHECTL_SENTINEL_SERVICE": "svc",
            "CACHECTL_SENTINEL_PASSWORD": "env-s3cret",
        }
    )
    assert settings.sentinel.hosts == ("a:1", "b:2")
    assert settings.sources["sentinel.password"] == "env CACHECTL_SENTINEL_PASSWORD"


def test_bad_sentinel_settings_are_config_errors_that_hide_the_password(load):
    with pytest.raises(ConfigError) as caught:
        load(config="sentinel: {hosts: 'h1:x', password: 12345678}\n")
    text = str(caught.value.details)
    assert "not a number in 1-65535" in text and "put it in quotes" in text
    assert "12345678" not in text
    with pytest.raises(ConfigError, match="it belongs under sentinel:"):
        load(config="service: cache\n")


def test_hosts_without_a_service_or_with_cluster_mode_cannot_work():
    with pytest.raises(ConfigError, match=r"sentinel\.service is not"):
        Store(Settings(sentinel=Settings().sentinel.__class__(hosts=("h:1",)))).connection_kwargs()
    with pytest.raises(ConfigError, match="not a Redis Cluster"):
        Store(Settings(url="redis+sentinel://h/svc", cluster=True)).connection_kwargs()


def test_the_store_gives_the_sentinels_their_own_password_and_the_servers_theirs():
    settings = Settings(
        url="rediss+sentinel://u:srv-pw@h1:1,h2:2/svc/5",
        sentinel=Settings().sentinel.__class__(password="sent-pw"),
    )
    plan = Store(settings).sentinel_plan()
    assert plan is not None
    assert plan.sentinels == [("h1", 1), ("h2", 2)] and plan.service == "svc"
    assert (plan.to_servers["username"], plan.to_servers["password"]) == ("u", "srv-pw")
    assert plan.to_servers["db"] == 5 and plan.to_servers["ssl"] is True
    assert "host" not in plan.to_servers
    assert plan.to_sentinels["password"] == "sent-pw" and plan.to_sentinels["ssl"] is True
    assert "db" not in plan.to_sentinels
