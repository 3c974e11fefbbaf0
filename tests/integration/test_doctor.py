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


def test_malformed_url_exits_3():
    result = runner.invoke(app, ["--url", "http://example:1/0", "doctor"])
    assert result.exit_code == ExitCode.BAD_INPUT
    assert "scheme" in result.stderr.lower()


def test_off_a_terminal_output_has_no_colour_codes(redis_url):
    result = runner.invoke(app, ["--url", redis_url, "doctor"])
    assert result.exit_code == 0
    assert "\x1b[" not in result.stdout
    assert "Permissions of this user" in result.stdout
