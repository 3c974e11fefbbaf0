import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cachectl.config import Settings, load_settings
from cachectl.errors import ConfigError, EnvVarMissing, ExitCode, UsageError
from cachectl.layout import LayoutConfig

SAMPLE = Path(__file__).resolve().parents[2] / "sample_configs" / "cachectl.yaml"


@pytest.fixture
def home(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return home


@pytest.fixture
def work(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.fixture
def load(home, work):
    """load_settings isolated from the real environment, home folder and working directory."""

    def load(env=None, **kw):
        return load_settings(env={"HOME": str(home), **(env or {})}, cwd=work, **kw)

    return load


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def problems_of(err) -> list[str]:
    return err.value.details["problems"]


# ---- precedence and sources -----------------------------------------------------------------


def test_with_nothing_given_every_setting_is_its_default(load):
    settings = load()
    assert settings == Settings()
    assert settings.config_file is None
    assert {settings.sources[name] for name, _, _ in settings.describe()[2:]} == {"default"}


def test_the_config_file_overrides_defaults_and_records_file_and_line(load, work):
    write(work / "cachectl.yaml", "retries: 5\nurl: redis://cfg-host/1\n")
    settings = load()
    assert (settings.retries, settings.url) == (5, "redis://cfg-host/1")
    assert settings.sources["retries"] == f"config {work / 'cachectl.yaml'}:1"
    assert settings.sources["url"] == f"config {work / 'cachectl.yaml'}:2"
    assert settings.sources["timeout"] == "default"


def test_a_profile_overrides_the_top_level_base_setting_by_setting(load, work):
    write(
        work / "cachectl.yaml",
        """\
        timeout: 7
        layout: {prefix: base_cache, tag_prefix: t}
        profiles:
          prod:
            timeout: 2.5
            layout: {prefix: prod_cache}
        """,
    )
    settings = load(profile="prod")
    assert settings.timeout == 2.5
    assert (settings.layout.prefix, settings.layout.tag_prefix) == ("prod_cache", "t")
    path = work / "cachectl.yaml"
    assert settings.sources["timeout"] == f"config {path}:5 (profile prod)"
    assert settings.sources["layout.tag_prefix"] == f"config {path}:2"


def test_the_environment_overrides_the_config_file(load, work):
    write(work / "cachectl.yaml", "timeout: 7\nlayout: {prefix: from_file}\n")
    settings = load(env={"CACHECTL_TIMEOUT": "3", "CACHECTL_PREFIX": "from_env"})
    assert (settings.timeout, settings.layout.prefix) == (3.0, "from_env")
    assert settings.sources["timeout"] == "env CACHECTL_TIMEOUT"
    assert settings.sources["layout.prefix"] == "env CACHECTL_PREFIX"


def test_the_environment_picks_the_scheme_and_version_of_versioned_keys(load, work):
    write(work / "cachectl.yaml", "layout: {scheme: versioned, version: v2}\n")
    settings = load(env={"CACHECTL_LAYOUT_VERSION": "v1"})
    assert (settings.layout.scheme, settings.layout.version) == ("versioned", "v1")
    assert settings.sources["layout.version"] == "env CACHECTL_LAYOUT_VERSION"
    settings = load(env={"CACHECTL_SCHEME": "standard"})
    assert settings.layout.scheme == "standard"


def test_a_flag_overrides_the_environment(load):
    settings = load(
        flags={"timeout": 1.5, "tls_verify": False, "url": None},
        env={
            "CACHECTL_TIMEOUT": "3",
            "CACHECTL_TLS_VERIFY": "true",
            "CACHECTL_URL": "redis://env-host/0",
        },
    )
    assert (settings.timeout, settings.tls.verify) == (1.5, False)
    assert settings.sources["timeout"] == "flag --timeout"
    assert settings.sources["tls.verify"] == "flag --tls-insecure"
    assert (settings.url, settings.sources["url"]) == ("redis://env-host/0", "env CACHECTL_URL")


def test_cachectl_url_wins_over_redis_url_which_is_used_alone(load):
    both = load(env={"CACHECTL_URL": "redis://a/0", "REDIS_URL": "redis://b/0"})
    alone = load(env={"REDIS_URL": "redis://b/0"})
    assert (both.url, alone.url, alone.sources["url"]) == (
        "redis://a/0",
        "redis://b/0",
        "env REDIS_URL",
    )


def test_an_empty_environment_variable_counts_as_unset(load):
    assert load(env={"CACHECTL_URL": "", "REDIS_URL": "redis://b/0"}).url == "redis://b/0"


def test_environment_values_are_parsed_to_their_types(load):
    settings = load(
        env={
            "CACHECTL_CLUSTER": "false",
            "CACHECTL_RETRIES": "0",
            "CACHECTL_SCAN_COUNT": "200",
            "CACHECTL_RATE": "150.5",
            "CACHECTL_PARAM_ENCODING": "plain",
            "CACHECTL_TLS_CA_FILE": "/etc/ca.pem",
        }
    )
    assert (settings.cluster, settings.retries, settings.scan_count, settings.rate) == (
        False,
        0,
        200,
        150.5,
    )
    assert (settings.layout.param_encoding, settings.tls.ca_file) == ("plain", "/etc/ca.pem")
    assert load(env={"CACHECTL_CLUSTER": "auto"}).cluster is None


def test_an_unknown_flag_key_is_a_bug_in_the_caller(load):
    with pytest.raises(TypeError, match="tiemout"):
        load(flags={"tiemout": 1})


# ---- finding the config file ----------------------------------------------------------------


def test_the_working_directory_file_comes_before_the_user_config_folder(load, work, home):
    write(work / "cachectl.yaml", "retries: 1\n")
    write(home / ".config" / "cachectl" / "config.yaml", "retries: 2\n")
    settings = load()
    assert (settings.retries, settings.config_file) == (1, str(work / "cachectl.yaml"))
    assert settings.sources["config_file"] == "found in the working directory"


def test_the_user_config_folder_is_used_when_there_is_no_local_file(load, home, tmp_path):
    write(home / ".config" / "cachectl" / "config.yaml", "retries: 2\n")
    write(tmp_path / "xdg" / "cachectl" / "config.yaml", "retries: 4\n")
    assert load().retries == 2
    assert load(env={"XDG_CONFIG_HOME": str(tmp_path / "xdg")}).retries == 4


def test_an_explicit_config_file_wins_by_flag_then_environment(load, work, tmp_path):
    write(work / "cachectl.yaml", "retries: 1\n")
    flagged = write(tmp_path / "flag.yaml", "retries: 2\n")
    from_env = write(tmp_path / "env.yaml", "retries: 3\n")
    assert load(config_path=str(flagged), env={"CACHECTL_CONFIG": str(from_env)}).retries == 2
    settings = load(env={"CACHECTL_CONFIG": str(from_env)})
    assert (settings.retries, settings.sources["config_file"]) == (3, "env CACHECTL_CONFIG")


def test_a_missing_explicit_config_file_is_an_error(load, tmp_path):
    with pytest.raises(
        ConfigError, match=r"config file not found: .*nope\.yaml \(from flag --config\)"
    ):
        load(config_path=str(tmp_path / "nope.yaml"))


# ---- profiles -------------------------------------------------------------------------------

PROFILES = """\
    default_profile: local
    profiles:
      local: {retries: 1}
      prod: {retries: 2}
      shop: {retries: 3}
    """


def test_the_profile_comes_from_the_flag_then_the_environment_then_the_file(load, work):
    write(work / "cachectl.yaml", PROFILES)
    assert load().profile == "local"
    assert load().sources["profile"] == f"config {work / 'cachectl.yaml'}:1 (default_profile)"
    by_env = load(env={"CACHECTL_PROFILE": "shop"})
    assert (by_env.profile, by_env.retries, by_env.sources["profile"]) == (
        "shop",
        3,
        "env CACHECTL_PROFILE",
    )
    by_flag = load(profile="prod", env={"CACHECTL_PROFILE": "shop"})
    assert (by_flag.profile, by_flag.retries, by_flag.sources["profile"]) == (
        "prod",
        2,
        "flag --profile",
    )


def test_an_unknown_profile_lists_the_profiles_there_are(load, work):
    write(work / "cachectl.yaml", PROFILES)
    with pytest.raises(ConfigError) as err:
        load(profile="prd")
    assert "unknown profile 'prd' (flag --profile)" in err.value.message
    assert "profiles there: local, prod, shop" in err.value.message
    assert "did you mean 'prod'?" in err.value.message


def test_an_unknown_default_profile_points_at_its_line(load, work):
    write(work / "cachectl.yaml", "profiles: {a: {}}\ndefault_profile: b\n")
    with pytest.raises(
        ConfigError, match=r"cachectl\.yaml:2:18: default_profile: unknown profile 'b'"
    ):
        load()


def test_a_profile_asked_for_with_no_config_file_is_an_error(load):
    with pytest.raises(
        ConfigError, match="profile 'prod' asked for \\(env CACHECTL_PROFILE\\).*no config file"
    ):
        load(env={"CACHECTL_PROFILE": "prod"})


# ---- validation -----------------------------------------------------------------------------


def test_an_unknown_setting_names_its_line_and_the_nearest_valid_name(load, work):
    write(work / "cachectl.yaml", "retries: 2\ntimout: 5\n")
    with pytest.raises(ConfigError) as err:
        load()
    path = work / "cachectl.yaml"
    assert (
        err.value.message
        == f"{path}:2:1: timout: unknown setting 'timout' (did you mean 'timeout'?)"
    )


def test_a_setting_in_the_wrong_section_says_where_it_belongs(load, work):
    write(work / "cachectl.yaml", "profiles:\n  shop:\n    prefix: shop:api_cache\n")
    with pytest.raises(ConfigError, match="unknown setting 'prefix': it belongs under layout:"):
        load(profile="shop")


def test_a_dotted_key_is_not_a_shorthand_for_a_section(load, work):
    write(work / "cachectl.yaml", "layout.prefix: shop\n")
    with pytest.raises(
        ConfigError, match=r"unknown setting 'layout.prefix': write layout: \{prefix"
    ):
        load()


def test_wrong_types_are_all_reported_together_with_lines_and_expectations(load, work):
    write(
        work / "cachectl.yaml",
        """\
        timeout: fast
        retries: -1
        layout:
          param_encoding: xml
        """,
    )
    with pytest.raises(ConfigError) as err:
        load()
    path = work / "cachectl.yaml"
    assert err.value.message.startswith(f"{path}: 3 problems, the first: {path}:1:10: timeout: ")
    assert problems_of(err) == [
        f"{path}:1:10: timeout: expected a number of seconds greater than 0 and at most 86400 (a day), got 'fast'",
        f"{path}:2:10: retries: expected a whole number from 0 to 100, got the number -1",
        f"{path}:4:19: layout.param_encoding: expected one of json, plain, got 'xml'",
    ]


def test_a_typo_in_a_profile_not_in_use_is_still_reported(load, work):
    write(work / "cachectl.yaml", "profiles:\n  a: {}\n  b: {batch_sise: 10}\n")
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        load(profile="a")


def test_a_bad_environment_value_names_the_variable(load):
    with pytest.raises(ConfigError, match="env CACHECTL_RETRIES: expected a whole number"):
        load(env={"CACHECTL_RETRIES": "many"})


def test_credential_headers_may_not_enter_keys(load, work):
    write(work / "cachectl.yaml", "layout:\n  header_allowlist: [Accept-Language, Authorization]\n")
    with pytest.raises(ConfigError, match="Authorization carries credentials"):
        load()


def test_a_header_allowlist_becomes_a_tuple(load, work):
    write(work / "cachectl.yaml", "layout:\n  header_allowlist: [Accept-Language]\n")
    assert load().layout.header_allowlist == ("Accept-Language",)


def test_relative_tls_files_are_relative_to_the_config_file(load, tmp_path, work):
    conf = write(tmp_path / "conf" / "c.yaml", "tls: {ca_file: certs/ca.pem}\n")
    assert load(config_path=str(conf)).tls.ca_file == str(tmp_path / "conf" / "certs" / "ca.pem")


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://host/0", "unknown scheme 'http'"),
        ("localhost:1234", "unknown scheme 'localhost'"),
        ("redis://host:99999/0", "out of range"),
        ("redis:///0", "no host"),
        ("redis://host/cache", "database 'cache' is not a number"),
        ("unix://", "no socket path"),
    ],
)
def test_a_malformed_url_is_an_error_naming_where_it_came_from(load, url, reason):
    with pytest.raises(ConfigError) as err:
        load(env={"CACHECTL_URL": url})
    assert err.value.message.startswith("env CACHECTL_URL: invalid Redis URL ")
    assert reason in err.value.message


@pytest.mark.parametrize(
    "url", ["redis://h:1/0", "rediss://u:p@h/2", "unix:///run/redis.sock?db=1"]
)
def test_valid_urls_are_kept_as_given(load, url):
    assert load(flags={"url": url}).url == url


# ---- environment variables in the file ------------------------------------------------------


def test_variables_in_the_file_come_from_the_environment(load, work):
    write(
        work / "cachectl.yaml", "password: ${REDIS_PASSWORD}\nurl: redis://${REDIS_HOST:-cache}/0\n"
    )
    settings = load(env={"REDIS_PASSWORD": "pw-from-env"})
    assert (settings.password, settings.url) == ("pw-from-env", "redis://cache/0")


def test_an_unset_variable_names_it_and_its_line(load, work):
    write(work / "cachectl.yaml", "profiles:\n  prod:\n    password: ${REDIS_PASSWORD}\n")
    with pytest.raises(EnvVarMissing) as err:
        load(profile="prod")
    path = work / "cachectl.yaml"
    assert err.value.message == (
        f"{path}:3:15: profiles.prod.password: environment variable REDIS_PASSWORD is not set"
    )


def test_an_unset_variable_in_a_profile_not_in_use_is_no_error(load, work):
    write(
        work / "cachectl.yaml", "profiles:\n  local: {}\n  prod:\n    password: ${REDIS_PASSWORD}\n"
    )
    assert load(profile="local").password is None


def test_malformed_yaml_names_file_and_line(load, work):
    write(work / "cachectl.yaml", "url: redis://h/0\n  timeout: 3\n")
    with pytest.raises(
        ConfigError, match=r"cachectl\.yaml:2:10: mapping values are not allowed here"
    ):
        load()


# ---- flags: a bad value is a usage error ---------------------------------------------------


@pytest.mark.parametrize(
    "flags, named",
    [
        ({"connect_timeout": -1}, "flag --connect-timeout"),
        ({"timeout": 0}, "flag --timeout"),
        ({"url": "http://h/0"}, "flag --url"),
    ],
)
def test_a_bad_flag_value_is_a_usage_error_like_typers_own(load, work, flags, named):
    # Found before the file is read: its problems wait until the command line is right.
    write(work / "cachectl.yaml", "timout: 5\n")
    with pytest.raises(UsageError) as err:
        load(flags=flags)
    assert err.value.exit_code == ExitCode.USAGE
    assert err.value.message.startswith(f"{named}: ")


def test_the_same_bad_value_from_the_environment_is_a_config_error(load):
    with pytest.raises(ConfigError) as err:
        load(env={"CACHECTL_CONNECT_TIMEOUT": "-1"})
    assert err.value.exit_code == ExitCode.BAD_INPUT
    assert err.value.message.startswith("env CACHECTL_CONNECT_TIMEOUT: ")


def test_a_setting_found_unusable_later_names_itself_and_its_source(load, work):
    write(work / "cachectl.yaml", "tls:\n  ca_file: ca.pem\n")
    from_file = load().bad_setting("tls.ca_file", "no such file: x")
    assert isinstance(from_file, ConfigError) and from_file.exit_code == ExitCode.BAD_INPUT
    assert from_file.message == (
        f"tls.ca_file: no such file: x (from config {work / 'cachectl.yaml'}:2)"
    )
    from_flag = load(flags={"tls_ca_file": "ca.pem"}).bad_setting("tls.ca_file", "no such file")
    assert isinstance(from_flag, UsageError)
    assert from_flag.message == "tls.ca_file: no such file (from flag --tls-ca-file)"


def test_no_cluster_is_named_as_the_flag_given(load):
    assert load(flags={"cluster": False}).sources["cluster"] == "flag --no-cluster"
    assert load(flags={"cluster": True}).sources["cluster"] == "flag --cluster"


# ---- the layout ---------------------------------------------------------------------------


def test_a_layout_whose_kinds_share_a_prefix_names_file_line_kinds_and_prefix(load, work):
    path = write(work / "cachectl.yaml", "url: redis://h/0\nlayout: {prefix: tag}\n")
    with pytest.raises(ConfigError) as err:
        load()
    assert err.value.message == (
        f"{path}:2:18: layout.prefix: cache entries (layout.prefix) and tag sets "
        "(layout.tag_prefix, by default) would share the prefix 'tag:': give one of them "
        "another (two kinds of keys may not share a prefix or name)"
    )


def test_every_clash_of_a_profiles_layout_is_reported_at_its_line(load, work):
    path = write(
        work / "cachectl.yaml",
        """\
        profiles:
          a:
            layout:
              metric_prefix: m
              meta_prefix: m
              entries_log: log
              access_log: log
        """,
    )
    with pytest.raises(ConfigError) as err:
        load(profile="a")
    problems = problems_of(err)
    assert problems[0].startswith(f"{path}:5:20: profiles.a.layout.meta_prefix: time series ")
    assert "share the prefix 'm:'" in problems[0]
    assert problems[1].startswith(f"{path}:7:19: profiles.a.layout.access_log: the write log ")
    assert "share the name 'log'" in problems[1]


def test_a_layout_clash_from_the_environment_names_the_variable(load):
    with pytest.raises(ConfigError) as err:
        load(env={"CACHECTL_PREFIX": "cache_metrics"})
    assert err.value.message.startswith(
        "env CACHECTL_PREFIX: cache entries (layout.prefix) and hit/miss metrics "
    )


def test_a_layout_with_its_kinds_apart_loads(load, work):
    write(work / "cachectl.yaml", "layout: {prefix: shop, tag_prefix: shop_tag}\n")
    assert load().layout.prefix == "shop"


# ---- secrets --------------------------------------------------------------------------------


def test_repr_never_shows_a_password(load):
    settings = load(
        flags={"url": "redis://user:url-secret@h/0"}, env={"CACHECTL_PASSWORD": "env-secret"}
    )
    text = repr(settings) + str(settings)
    assert "url-secret" not in text and "env-secret" not in text
    assert "redis://user:****@h/0" in text
    assert settings.password == "env-secret"


def test_describe_masks_passwords_and_says_where_each_came_from(load):
    settings = load(
        flags={"url": "redis://user:url-secret@h/0"}, env={"CACHECTL_PASSWORD": "env-secret"}
    )
    rows = {name: (shown, source) for name, shown, source in settings.describe()}
    assert rows["url"] == ("redis://user:****@h/0", "flag --url")
    assert rows["password"] == ("****", "env CACHECTL_PASSWORD")
    assert "secret" not in str(rows)


def test_describe_shows_a_password_that_is_only_in_the_url_as_masked(load):
    rows = {
        n: (v, s) for n, v, s in load(env={"CACHECTL_URL": "redis://:url-secret@h/0"}).describe()
    }
    assert rows["password"] == ("**** (in the URL)", "env CACHECTL_URL")


def test_describe_shows_the_user_name_in_the_url_as_set(load):
    rows = {
        n: (v, s) for n, v, s in load(env={"CACHECTL_URL": "redis://nope:x-pass@h/0"}).describe()
    }
    assert rows["username"] == ("nope (in the URL)", "env CACHECTL_URL")
    assert rows["password"] == ("**** (in the URL)", "env CACHECTL_URL")


def test_describe_masks_a_lone_user_part_which_may_be_a_password(load):
    rows = {n: (v, s) for n, v, s in load(env={"CACHECTL_URL": "redis://lone-pw@h/0"}).describe()}
    assert rows["username"] == ("**** (in the URL)", "env CACHECTL_URL")
    assert "lone-pw" not in str(rows)


def test_describe_prefers_the_username_setting_to_the_urls(load):
    settings = load(env={"CACHECTL_URL": "redis://nope:x@h/0", "CACHECTL_USERNAME": "app"})
    rows = {n: (v, s) for n, v, s in settings.describe()}
    assert rows["username"] == ("app", "env CACHECTL_USERNAME")


# A password with a '/', '#' or '?' ends the URL's host part there: urllib and redis-py then
# read a piece of it as the port or the database, and their reasons quote that piece.
BROKEN_PASSWORDS = ["Xq7Zp/Wv9Kr", "Xq7Zp#Wv9Kr", "Xq7Zp?Wv9Kr", "4321/Wv9Kr", "4321?db=Wv9Kr"]


def assert_no_piece_of(password: str, text: str) -> None:
    for piece in filter(None, re.split(r"[/#?]", password)):
        assert piece not in text


@pytest.mark.parametrize("password", BROKEN_PASSWORDS)
def test_a_password_that_breaks_the_url_is_named_and_never_quoted(load, work, password):
    url = f"redis://app:{password}@localhost:6380/0"
    write(work / "cachectl.yaml", f'url: "{url}"\n')
    for how in ({"flags": {"url": url}}, {"env": {"CACHECTL_URL": url}}, {}):
        with pytest.raises((ConfigError, UsageError)) as err:
            load(**how)
        text = json.dumps(err.value.to_dict())
        assert_no_piece_of(password, text)
        assert "redis://app:****@localhost:6380/0" in err.value.message
        assert "holds a '/', '#' or '?'" in err.value.message
        assert "%2F, %23, %3F" in err.value.message and "CACHECTL_PASSWORD" in err.value.message


def test_a_lone_password_that_breaks_the_url_is_masked_whole(load):
    with pytest.raises(UsageError) as err:
        load(flags={"url": "redis://Xq7Zp/Wv9Kr@h:1/0"})
    assert "redis://****@h:1/0" in err.value.message
    assert_no_piece_of("Xq7Zp/Wv9Kr", json.dumps(err.value.to_dict()))


def test_a_percent_encoded_password_is_a_good_url(load):
    url = "redis://app:Xq7Zp%2FWv9%23Kr%3F@localhost:6380/0"
    settings = load(flags={"url": url})
    assert settings.url == url
    assert settings.masked_url() == "redis://app:****@localhost:6380/0"


def test_a_bad_port_is_said_in_cachectls_words(load):
    with pytest.raises(ConfigError) as err:
        load(env={"CACHECTL_URL": "redis://app:pw@h:port/0"})
    assert err.value.message.endswith("redis://app:****@h:port/0: the port is not a number")


def test_errors_never_show_a_password(load, work):
    write(work / "cachectl.yaml", "url: redis://u:file-secret@h:port/0\npassword: 123456\n")
    with pytest.raises(ConfigError) as err:
        load()
    text = str(err.value.to_dict())
    assert "file-secret" not in text and "123456" not in text
    assert "redis://u:****@h:port/0" in text
    assert "put it in quotes" in text


def test_sample_config_resolves_every_profile(home):
    env = {"HOME": str(home), "REDIS_PASSWORD": "prod-pw", "STAGING_REDIS_PASSWORD": "staging-pw"}
    resolved = {
        name: load_settings(config_path=str(SAMPLE), profile=name, env=env, cwd=home)
        for name in ("local", "staging", "prod", "ha", "shop")
    }
    assert load_settings(config_path=str(SAMPLE), env=env, cwd=home).profile == "local"
    assert resolved["staging"].url.startswith("rediss://") and resolved["staging"].tls.ca_file
    prod = resolved["prod"]
    assert (prod.cluster, prod.username, prod.password) == (True, "cachectl", "prod-pw")
    ha = resolved["ha"].sentinel_target()
    assert ha is not None and ha.service == "cache" and len(ha.sentinels) == 3
    assert resolved["shop"].layout == LayoutConfig(prefix="shop:api_cache", param_encoding="plain")
    assert resolved["local"].layout == LayoutConfig()


def test_importing_config_does_not_import_yaml_or_redis():
    code = "import sys, cachectl.config; sys.exit(bool({'yaml', 'redis'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("timeout", "1000000000000000000000"),
        ("connect_timeout", ".nan"),
        ("retries", "9" * 10_000),
        ("scan_count", "1.0e+400"),
        ("batch_size", "1000000000000000000000"),
        ("rate", "-1"),
    ],
)
def test_absurd_numbers_in_the_config_file_are_problems_naming_the_setting(tmp_path, name, value):
    path = tmp_path / "cachectl.yaml"
    path.write_text(f"{name}: {value}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(config_path=str(path), env={}, cwd=tmp_path)
    assert f"{path}:1:" in err.value.message and name in err.value.message
    assert len(err.value.message) < 300


def test_absurd_numbers_in_the_environment_are_problems_naming_the_variable(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_settings(env={"CACHECTL_TIMEOUT": "1e21"}, cwd=tmp_path)
    assert "CACHECTL_TIMEOUT" in err.value.message
