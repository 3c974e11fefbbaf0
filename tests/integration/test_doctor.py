"""`cachectl doctor` against real servers: single node, cluster, ACL users, TLS, failures."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.errors import ExitCode

runner = CliRunner()


def doctor_json(*root_args: str, env: dict | None = None):
    result = runner.invoke(app, [*root_args, "doctor", "--json"], env=env)
    return result, json.loads(result.stdout)


def test_doctor_reports_a_single_node(redis_url):
    result, envelope = doctor_json("--url", redis_url)
    assert result.exit_code == 0, result.output
    data = envelope["data"]
    assert envelope["ok"] is True
    assert data["reachable"] is True
    assert data["mode"] == "standalone"
    assert data["server_version"].startswith(("6.", "7.", "8."))
    assert data["latency_ms"]["min"] <= data["latency_ms"]["max"]
    assert data["acl_user"] == "default"
    assert all(all(cmds.values()) for cmds in data["permissions"].values())
    sources = {row["setting"]: row["source"] for row in data["settings"]}
    assert sources["url"] == "flag --url"


def test_doctor_warns_about_noeviction_without_maxmemory(redis_url, redis_server):
    client = redis_server.client()
    client.config_set("maxmemory", 0)
    client.config_set("maxmemory-policy", "noeviction")
    _, envelope = doctor_json("--url", redis_url)
    codes = {w["code"] for w in envelope["data"]["warnings"]}
    assert "no_maxmemory_noeviction" in codes


def test_doctor_warns_about_volatile_policy_with_tag_sets_without_ttl(redis_url, redis_server):
    client = redis_server.client()
    client.config_set("maxmemory", 100 * 1024 * 1024)
    client.config_set("maxmemory-policy", "volatile-lru")
    try:
        client.sadd("tag:user_1", "api_cache:user:id:1")
        _, envelope = doctor_json("--url", redis_url)
        codes = {w["code"] for w in envelope["data"]["warnings"]}
        assert "volatile_policy_tag_sets_without_ttl" in codes
        assert "no_maxmemory_noeviction" not in codes
    finally:
        client.config_set("maxmemory", 0)
        client.config_set("maxmemory-policy", "noeviction")


def test_doctor_counts_keys(redis_url, redis_server):
    redis_server.client().mset({f"api_cache:e:id:{i}": "1" for i in range(7)})
    _, envelope = doctor_json("--url", redis_url)
    assert envelope["data"]["keys_total"] == 7


@pytest.mark.cluster
def test_doctor_reports_every_cluster_primary(cluster_url):
    result, envelope = doctor_json("--url", cluster_url)
    assert result.exit_code == 0, result.output
    data = envelope["data"]
    assert data["mode"] == "cluster"
    assert len(data["nodes"]) == 3


def test_doctor_names_commands_the_acl_user_may_not_run(acl_redis, acl_url):
    result, envelope = doctor_json("--url", acl_redis.url_for("limited", "limited-pass"))
    assert result.exit_code == 0, result.output
    data = envelope["data"]
    assert data["acl_user"] == "limited"
    assert data["permissions"]["invalidate"]["UNLINK"] is False
    assert data["permissions"]["read"]["SCAN"] is True
    warning = next(w for w in data["warnings"] if w["code"] == "acl_denied")
    assert "UNLINK" in warning["message"]


def test_doctor_still_reports_when_info_is_denied(acl_redis, acl_url):
    result, envelope = doctor_json("--url", acl_redis.url_for("noinfo", "noinfo-pass"))
    assert result.exit_code == 0, result.output
    codes = {w["code"] for w in envelope["data"]["warnings"]}
    assert "info_denied" in codes
    assert envelope["data"]["permissions"]["read"]["INFO"] is False


def test_wrong_password_is_one_line_exit_4_and_never_shows_the_password(acl_redis):
    url = acl_redis.url_for("limited", "not-the-password-xyz")
    result = runner.invoke(app, ["--url", url, "--connect-timeout", "2", "doctor"])
    assert result.exit_code == ExitCode.REDIS
    assert "not-the-password-xyz" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1


def test_unreachable_server_exits_4_with_settings_in_json(make_redis):
    server = make_redis()
    url = server.url
    server.stop()
    result = runner.invoke(app, ["--url", url, "doctor", "--json"], env={"CACHECTL_RETRIES": "0"})
    assert result.exit_code == ExitCode.REDIS
    envelope = json.loads(result.stdout)
    assert envelope["ok"] is False
    assert envelope["error"]["code"] == "redis.unreachable"
    assert envelope["data"]["reachable"] is False
    assert any(row["setting"] == "url" for row in envelope["data"]["settings"])


@pytest.mark.tls
def test_doctor_over_tls_with_a_ca_file(tls_redis):
    result, envelope = doctor_json("--url", tls_redis.url, "--tls-ca-file", tls_redis.files.ca_file)
    assert result.exit_code == 0, result.output
    assert envelope["data"]["reachable"] is True


def test_bad_config_file_exits_3_naming_file_and_line(tmp_path, redis_url):
    config = tmp_path / "cachectl.yaml"
    config.write_text("profiles:\n  local:\n    url: redis://localhost:1/0\n    timout: 5\n")
    result = runner.invoke(app, ["--config", str(config), "doctor"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert f"{config}:4" in result.stderr
    assert "timeout" in result.stderr  # the nearest valid name
    assert "Traceback" not in result.output


def test_malformed_url_flag_is_a_usage_error_exit_2():
    result = runner.invoke(app, ["--url", "http://example:1/0", "doctor"])
    assert result.exit_code == ExitCode.USAGE
    assert "flag --url" in result.stderr and "scheme" in result.stderr.lower()


def test_malformed_url_in_the_environment_exits_3():
    result = runner.invoke(app, ["doctor"], env={"CACHECTL_URL": "http://example:1/0"})
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "env CACHECTL_URL" in result.stderr and "scheme" in result.stderr.lower()


def test_off_a_terminal_output_has_no_colour_codes(redis_url):
    result = runner.invoke(app, ["--url", redis_url, "doctor"])
    assert result.exit_code == 0
    assert "\x1b[" not in result.stdout
    assert "Permissions of this user" in result.stdout


# --- the permission table: every command each job sends, asked about without running it -------


def _acl_name(command: str) -> str:
    """The ACL's name of a probed command: "SCRIPT LOAD" -> "script|load"."""
    return command.lower().replace(" ", "|")


@pytest.fixture
def acl_user(acl_redis, acl_url):
    """Makes ACL users on `acl_redis` for one test (deleted afterwards); returns their URL."""
    made: list[str] = []
    admin = acl_redis.server.client()

    def make(name: str, *rules: str) -> str:
        admin.acl_setuser(name, reset=True)
        admin.execute_command("ACL", "SETUSER", name, "on", ">pw", *rules)
        made.append(name)
        return acl_redis.url_for(name, "pw")

    yield make
    for name in made:
        admin.execute_command("ACL", "DELUSER", name)
    admin.close()


def _permissions_of(url: str) -> dict:
    from cachectl.config import Settings
    from cachectl.ops.doctor import _permissions
    from cachectl.store import Store

    settings = Settings(url=url, cluster=False)
    with Store(settings) as store:
        return _permissions(settings, store)


def test_the_probes_change_nothing(acl_redis, acl_url):
    admin = acl_redis.server.client()
    admin.set("api_cache:kept:no_params", "{}")
    before = sorted(admin.scan_iter("*"))
    result, envelope = doctor_json("--url", acl_url)
    assert result.exit_code == 0, result.output
    permissions = envelope["data"]["permissions"]
    assert all(ok is True for cmds in permissions.values() for ok in cmds.values()), permissions
    # SADD, HSET, SCRIPT LOAD... were queued in a MULTI and discarded: nothing ran.
    assert sorted(admin.scan_iter("*")) == before
    assert admin.script_exists("0" * 40, admin.script_load("return 1")) == [False, True]
    import hashlib

    probe_script = hashlib.sha1(b"return 0").hexdigest()  # what SCRIPT LOAD and EVAL probe with
    assert admin.script_exists(probe_script) == [False]


def test_every_job_lists_what_its_code_sends():
    from cachectl.ops.doctor import PERMISSION_PROBES

    by_job: dict[str, set[str]] = {}
    for probe in PERMISSION_PROBES:
        by_job.setdefault(probe.operation, set()).add(probe.command)
    assert {"SCAN", "EVAL", "TYPE", "PTTL", "MEMORY USAGE", "SSCAN", "SMISMEMBER"} <= by_job["read"]
    assert {
        "SET",
        "SADD",
        "PEXPIRE",
        "ZADD",
        "MULTI",
        "EXEC",
        "UNLINK",
        "ZREM",
        "EVALSHA",
        "SCRIPT LOAD",
    } <= by_job["warm"]
    assert {"RENAMENX", "SSCAN", "UNLINK", "ZREM", "SREM", "EXISTS", "ZMSCORE"} <= by_job[
        "invalidate"
    ]
    assert {"SREM", "ZREM", "SADD", "ZADD", "TIME", "ZSCAN", "INFO"} <= by_job["prune"]
    assert {"INFO", "HGETALL", "ZREVRANGEBYSCORE"} <= by_job["stats"]
    assert {"ZRANGEBYSCORE", "HMGET", "EVALSHA", "HSET", "HDEL", "ZREMRANGEBYSCORE"} <= by_job[
        "history"
    ]


def test_each_probe_asks_about_its_own_command(acl_user):
    """Denying one command makes exactly the probes of that command say no: a probe that sent
    something else (say SMOVE for SADD) would still say yes."""
    from cachectl.ops.doctor import PERMISSION_PROBES

    for command in sorted({p.command for p in PERMISSION_PROBES}):
        url = acl_user("one_denied", "~*", "&*", "+@all", f"-{_acl_name(command)}")
        permissions = _permissions_of(url)
        for probe in PERMISSION_PROBES:
            got = permissions[probe.operation][probe.command]
            if probe.command == command:
                assert got is False, (command, probe.operation)
            elif command == "MULTI" and not probe.harmless:
                assert got is None, (command, probe.operation, probe.command)
            elif command == "MULTI":
                # Without MULTI the harmless probes are sent for real: still each its own answer.
                assert got is True, (command, probe.operation, probe.command)
            else:
                assert got is True, (command, probe.operation, probe.command)


def test_key_patterns_of_the_acl_are_checked_against_the_cache_namespace(acl_user):
    url = acl_user("entries_only", "~api_cache:*", "+@all")
    permissions = _permissions_of(url)
    assert permissions["read"]["TYPE"] is True  # an entry key
    assert permissions["read"]["SSCAN"] is False  # a tag set
    assert permissions["invalidate"]["RENAMENX"] is False
    assert permissions["warm"]["ZADD"] is False  # the entries log


def test_a_user_without_multi_gets_real_but_harmless_probes(acl_redis, acl_url):
    admin = acl_redis.server.client()
    before = sorted(admin.scan_iter("*"))
    result, envelope = doctor_json("--url", acl_redis.url_for("reader", "reader-pass"))
    assert result.exit_code == 0, result.output
    data = envelope["data"]
    assert data["permissions"]["warm"]["MULTI"] is False
    assert data["permissions"]["read"]["SCAN"] is True
    assert data["permissions"]["warm"]["SET"] is False  # asked for real: SET XX on no key
    assert data["permissions"]["warm"]["SADD"] is None  # no harmless way to ask
    codes = {w["code"] for w in data["warnings"]}
    assert {"acl_denied", "acl_unknown"} <= codes
    # ACL WHOAMI is refused to this user: its name comes from the URL instead.
    assert data["acl_user"] == "reader"
    assert any("'reader' may not run" in w["message"] for w in data["warnings"])
    assert sorted(admin.scan_iter("*")) == before


def test_a_command_with_a_fallback_is_a_note_not_a_warning(acl_user):
    url = acl_user("no_scripts", "~*", "&*", "+@all", "-eval")
    result, envelope = doctor_json("--url", url)
    assert result.exit_code == 0, result.output
    data = envelope["data"]
    assert data["permissions"]["read"]["EVAL"] is False
    warnings = {w["code"]: w for w in data["warnings"]}
    assert "acl_denied" not in warnings
    note = warnings["acl_denied_optional"]
    assert note["level"] == "info" and "EVAL (read: the sized SCAN" in note["message"]


def test_a_denied_command_names_the_jobs_that_need_it(acl_redis, acl_url):
    _, envelope = doctor_json("--url", acl_redis.url_for("limited", "limited-pass"))
    warning = next(w for w in envelope["data"]["warnings"] if w["code"] == "acl_denied")
    assert "UNLINK (warm, invalidate)" in warning["message"]


def test_a_job_needs_a_command_it_also_records_with(acl_user):
    # warm writes the entries log with ZADD (needed) and records its run with ZADD (optional).
    url = acl_user("no_zadd", "~*", "&*", "+@all", "-zadd")
    _, envelope = doctor_json("--url", url)
    warning = next(w for w in envelope["data"]["warnings"] if w["code"] == "acl_denied")
    assert "ZADD (warm, prune" in warning["message"]


def test_people_see_what_could_not_be_checked(acl_redis, acl_url):
    result = runner.invoke(app, ["--url", acl_redis.url_for("reader", "reader-pass"), "doctor"])
    assert result.exit_code == 0, result.output
    assert "not checked (no MULTI)" in result.stdout
