"""Bad settings end to end: the exit code the README's table gives (2 for a bad flag value, 3
for a bad value from the environment or a file, naming it), one line on stderr, and no piece
of a password anywhere in stdout, stderr or --json."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from cachectl.cli.app import app
from cachectl.errors import ExitCode

runner = CliRunner()


def invoke(*args: str, env: dict | None = None):
    # No config file of the working directory or the user's: only what the test gives.
    return runner.invoke(app, list(args), env={"CACHECTL_CONFIG": None, **(env or {})})


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# -- exit codes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, named",
    [
        (["--connect-timeout", "-1"], "--connect-timeout must be greater than 0"),
        (["--timeout", "0"], "--timeout must be greater than 0"),
        (["--timeout", "soon"], "--timeout: expected a duration"),
        (["--url", "http://h:1/0"], "flag --url: "),
    ],
)
def test_a_bad_flag_value_exits_2_naming_the_flag(args, named):
    result = invoke(*args, "keys")
    assert result.exit_code == ExitCode.USAGE
    assert one_error_line(result).startswith(f"error: {named}")


def test_a_flag_value_typer_refuses_exits_2_as_well():
    assert invoke("--timeout", "abc", "keys").exit_code == ExitCode.USAGE


def test_the_same_bad_value_from_the_environment_exits_3_naming_the_variable():
    result = invoke("keys", env={"CACHECTL_CONNECT_TIMEOUT": "-1"})
    assert result.exit_code == ExitCode.BAD_INPUT
    assert one_error_line(result).startswith("error: env CACHECTL_CONNECT_TIMEOUT: ")


def test_a_missing_tls_file_given_by_flag_exits_2_naming_the_setting(tmp_path):
    missing = tmp_path / "ca.pem"
    result = invoke("--url", "rediss://127.0.0.1:1/0", "--tls-ca-file", str(missing), "keys")
    assert result.exit_code == ExitCode.USAGE
    assert one_error_line(result) == (
        f"error: tls.ca_file: no such file: {missing} (from flag --tls-ca-file)"
    )


def test_a_missing_tls_file_in_the_config_file_exits_3_naming_file_and_line(tmp_path):
    config = tmp_path / "cachectl.yaml"
    config.write_text("url: rediss://127.0.0.1:1/0\ntls:\n  cert_file: client.crt\n")
    result = invoke("--config", str(config), "keys")
    assert result.exit_code == ExitCode.BAD_INPUT
    assert one_error_line(result) == (
        f"error: tls.cert_file: no such file: {tmp_path / 'client.crt'} (from config {config}:3)"
    )


def test_a_layout_clash_exits_3_naming_file_line_kinds_and_prefix(tmp_path):
    config = tmp_path / "cachectl.yaml"
    config.write_text("url: redis://127.0.0.1:1/0\nlayout: {prefix: tag}\n")
    result = invoke("--config", str(config), "keys")
    assert result.exit_code == ExitCode.BAD_INPUT
    line = one_error_line(result)
    assert line.startswith(f"error: {config}:2:18: layout.prefix: cache entries (layout.prefix)")
    assert "tag sets (layout.tag_prefix, by default)" in line and "'tag:'" in line


# -- a password that breaks the URL ------------------------------------------------------------

PASSWORDS = ["TOPSECRET/rest", "TOPSECRET#rest", "TOPSECRET?rest", "4321/rest", "4321?db=rest"]


def assert_no_piece_of(password: str, *texts: str) -> None:
    for piece in filter(None, re.split(r"[/#?=]", password)):
        for text in texts:
            assert piece not in text


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("where", ["flag", "env", "file"])
def test_a_password_that_breaks_the_url_says_so_and_shows_no_piece_of_it(tmp_path, password, where):
    url = f"redis://app:{password}@localhost:6380/0"
    config = tmp_path / "cachectl.yaml"
    config.write_text(f'url: "{url}"\n')
    how = {
        "flag": (["--url", url], {}, ExitCode.USAGE),
        "env": ([], {"CACHECTL_URL": url}, ExitCode.BAD_INPUT),
        "file": (["--config", str(config)], {}, ExitCode.BAD_INPUT),
    }
    args, env, code = how[where]
    for json_mode in ([], ["--json"]):
        result = invoke(*args, "keys", *json_mode, env=env)
        assert result.exit_code == code
        line = one_error_line(result)
        assert "redis://app:****@localhost:6380/0" in line
        assert "holds a '/', '#' or '?'" in line and "percent-encode it (%2F, %23, %3F)" in line
        assert "CACHECTL_PASSWORD" in line
        assert_no_piece_of(password, result.stdout, result.stderr)
        if json_mode:
            assert json.loads(result.stdout)["error"]["exit_code"] == code


def test_doctor_shows_the_user_name_of_the_url_with_its_source(redis_url):
    url = redis_url.replace("redis://", "redis://nope:x-pass@")
    result = invoke("--url", url, "doctor", "--json")
    rows = {row["setting"]: row for row in json.loads(result.stdout)["data"]["settings"]}
    assert (rows["username"]["value"], rows["username"]["source"]) == (
        "nope (in the URL)",
        "flag --url",
    )
    assert "x-pass" not in result.stdout + result.stderr
