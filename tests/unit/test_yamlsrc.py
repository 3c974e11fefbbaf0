import subprocess
import sys
import textwrap

import pytest

from cachectl.errors import ConfigError, ManifestError
from cachectl.yamlsrc import Problems, format_path, interpolate, load_yaml, nearest, parse_yaml


def parse(text: str, env=None, **kw):
    return parse_yaml(textwrap.dedent(text), "f.yaml", env=env or {}, **kw)


def test_every_key_and_value_knows_its_file_line_and_column():
    doc = parse("""\
        top:
          name: x
          items:
            - a
            - {b: 2}
        """)
    assert doc.data == {"top": {"name": "x", "items": ["a", {"b": 2}]}}
    assert doc.where(("top", "name"), key=True) == "f.yaml:2:3"
    assert doc.where(("top", "name")) == "f.yaml:2:9"
    assert doc.where(("top", "items", 1, "b")) == "f.yaml:5:11"


def test_a_path_not_in_the_file_points_at_the_nearest_enclosing_part():
    doc = parse("top:\n  name: x\n")
    assert doc.where(("top", "missing", "deeper")) == "f.yaml:2:3"


def test_field_paths_read_as_dotted_names_with_indexes():
    assert format_path(("entries", 2, "params", "id")) == "entries[2].params.id"
    assert format_path(()) == ""


def test_a_key_with_a_newline_or_control_character_is_quoted_on_one_line(tmp_path):
    # Found by test_readers_fuzz: `profiles: {"\n": 0}` split the error over two lines.
    assert format_path(("profiles", "a\nb", "url")) == 'profiles."a\\nb".url'
    assert format_path(("x\x1b[31m",)) == '"x\\u001b[31m"'
    from cachectl.config import load_settings
    from cachectl.errors import ConfigError

    path = tmp_path / "c.yaml"
    path.write_text('profiles: {"\\n": 0}\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path=str(path), env={}, cwd=tmp_path)
    assert "\n" not in caught.value.message
    assert 'profiles."\\n": expected a mapping of settings' in caught.value.message


def test_malformed_yaml_is_one_line_with_file_line_and_column():
    with pytest.raises(ConfigError) as err:
        parse("a: 1\n  b: 2\n")
    assert err.value.message == "f.yaml:2:4: mapping values are not allowed here"
    assert "\n" not in err.value.message


def test_a_raw_control_character_is_one_line_with_file_line_and_column():
    with pytest.raises(ManifestError) as err:
        parse('version: 1\nendpoints: "ab\x7f"\n', kind=ManifestError)
    assert err.value.message.startswith("f.yaml:2:15: character U+007F is not allowed in YAML")
    assert "\n" not in err.value.message
    with pytest.raises(ManifestError) as err:  # read from a file: bytes
        parse_yaml(b'version: 1\nendpoints: "ab\x7f"\n', "f.yaml", env={}, kind=ManifestError)
    assert err.value.message.startswith("f.yaml:2:15: character U+007F")


def test_escaped_surrogate_pairs_are_one_character_and_a_lone_half_is_a_problem():
    doc = parse('a: "\\ud83d\\ude00"\n')
    assert doc.data == {"a": "\U0001f600"} and not doc.problems
    doc = parse('a: "x\\ud800"\n"\\udc00": 1\n')
    assert [(p.mark.line, "surrogate" in p.message) for p in doc.problems] == [(1, True), (2, True)]


def test_an_unclosed_bracket_names_the_line_it_opened_on():
    with pytest.raises(ConfigError) as err:
        parse("a: [1,\nb: 2\n")
    assert err.value.message.startswith("f.yaml:3:1: ")
    assert "on line 1" in err.value.message


def test_the_caller_chooses_the_error_kind():
    with pytest.raises(ManifestError):
        parse("a: [", kind=ManifestError)


def test_more_than_one_document_is_an_error():
    with pytest.raises(ConfigError, match=r"^f\.yaml:2:1: "):
        parse("a: 1\n---\nb: 2\n")


def test_an_unreadable_file_raises_the_callers_kind(tmp_path):
    with pytest.raises(ManifestError, match="cannot read"):
        load_yaml(tmp_path / "absent.yaml", kind=ManifestError)


def test_load_yaml_reads_a_file_and_names_it(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("a:\n  b: 1\n")
    doc = load_yaml(path, env={})
    assert doc.data == {"a": {"b": 1}}
    assert doc.where(("a", "b")) == f"{path}:2:6"


def test_duplicate_keys_are_problems_naming_both_lines():
    doc = parse("a: 1\nb: 2\na: 3\n")
    assert [str(p) for p in doc.problems] == [
        "f.yaml:3:1: a: duplicate key 'a' (first given on line 1)"
    ]
    assert doc.data["a"] == 1


def test_a_key_merged_with_an_anchor_may_be_overridden_without_a_duplicate_error():
    doc = parse("""\
        base: &base {timeout: 5, retries: 3}
        prod:
          <<: *base
          timeout: 9
        """)
    assert doc.data["prod"] == {"timeout": 9, "retries": 3}
    assert doc.problems == []


def test_a_recursive_alias_is_a_problem_not_a_hang():
    doc = parse("a: &x [1, *x]\n")
    assert [p.message for p in doc.problems] == ["an alias refers to itself"]


def test_a_list_as_a_key_is_a_problem():
    doc = parse("? [a, b]\n: 1\n")
    assert "plain value" in doc.problems[0].message


def test_variables_are_filled_from_the_given_environment():
    doc = parse(
        """\
        password: ${REDIS_PASSWORD}
        url: redis://${HOST:-localhost}/0
        ca: ${EMPTY:-/etc/ca.pem}
        literal: $${NOT_A_VAR}
        """,
        env={"REDIS_PASSWORD": "s3cret", "EMPTY": ""},
    )
    assert doc.data == {
        "password": "s3cret",
        "url": "redis://localhost/0",
        "ca": "/etc/ca.pem",
        "literal": "${NOT_A_VAR}",
    }
    assert doc.problems == []


def test_a_filled_in_value_stays_text_even_when_it_looks_like_a_number():
    doc = parse("password: ${PW}\n", env={"PW": "123456"})
    assert doc.data["password"] == "123456"


def test_an_unset_variable_is_a_problem_naming_it_and_its_place():
    doc = parse("a: 1\npassword: ${REDIS_PASSWORD}\n")
    (problem,) = doc.problems
    assert str(problem) == "f.yaml:2:11: password: environment variable REDIS_PASSWORD is not set"
    assert problem.env_var == "REDIS_PASSWORD"
    assert doc.data["password"] is None


def test_a_malformed_variable_is_a_problem():
    doc = parse("a: ${1BAD}\n")
    assert "malformed variable ${1BAD}" in doc.problems[0].message
    assert doc.problems[0].env_var is None


def test_interpolate_reports_every_unset_name():
    text, missing = interpolate("${A}-${B:-b}-${C}", {"B": "x"})
    assert (text, missing) == ("-x-", ["A", "C"])


def test_nearest_suggests_a_close_name_whatever_its_case():
    assert nearest("timout", ["timeout", "retries"]) == "timeout"
    assert nearest("Retries", ["timeout", "retries"]) == "retries"
    assert nearest("zzz", ["timeout", "retries"]) is None


def test_problems_collects_every_problem_and_raises_them_together():
    doc = parse("entries:\n  - endpont: a\n  - endpoint: 3\n")
    problems = Problems(doc, kind=ManifestError)
    for i, entry in enumerate(doc.data["entries"]):
        problems.unknown_keys(("entries", i), entry, ["endpoint", "params"])
        if not isinstance(entry.get("endpoint", ""), str):
            problems.add(("entries", i, "endpoint"), "expected text")
    with pytest.raises(ManifestError) as err:
        problems.raise_if_any("f.yaml")
    assert err.value.problems == [
        "f.yaml:2:5: entries[0].endpont: unknown field 'endpont' (did you mean 'endpoint'?)",
        "f.yaml:3:15: entries[1].endpoint: expected text",
    ]
    assert err.value.message.startswith("f.yaml: 2 problems, the first: f.yaml:2:5: ")


def test_a_single_problem_is_the_whole_message():
    doc = parse("a: 1\n")
    problems = Problems(doc)
    problems.add(("a",), "expected text")
    with pytest.raises(ConfigError) as err:
        problems.raise_if_any("f.yaml")
    assert err.value.message == "f.yaml:1:4: a: expected text"
    assert err.value.details["problems"] == [err.value.message]


def test_no_problems_raises_nothing():
    Problems(parse("a: 1\n")).raise_if_any("f.yaml")


def test_known_secrets_are_scrubbed_from_problems():
    problems = Problems()
    problems.note("env X: got 'hunter2-secret'")
    with pytest.raises(ConfigError) as err:
        problems.raise_if_any("settings", secrets=["hunter2-secret"])
    assert "hunter2-secret" not in str(err.value.to_dict())


def test_mapping_reports_a_value_of_the_wrong_shape():
    doc = parse("tls: [a]\n")
    problems = Problems(doc)
    assert problems.mapping(("tls",), "a mapping of tls settings") == {}
    assert [str(p) for p in problems] == [
        "f.yaml:1:6: tls: expected a mapping of tls settings, got a list"
    ]


def test_importing_yamlsrc_does_not_import_yaml():
    code = "import sys, cachectl.yamlsrc; sys.exit('yaml' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---- aliases: text and depth counted as expanded; a scalar read once however often used ----


def test_the_characters_an_alias_brings_count_against_the_text_limit():
    from cachectl.yamlsrc import InputLimits

    text = "a: &a " + "x" * 100 + "\nb: [*a, *a, *a]\n"  # keys count: 2 + 4 x 100
    limits = InputLimits(yaml_chars=350)
    with pytest.raises(ConfigError, match=r":2:13: this alias .* 350 characters .*MAX_YAML_CHARS"):
        parse_yaml(text, "f.yaml", limits=limits)
    assert parse_yaml(text, "f.yaml", limits=InputLimits(yaml_chars=402)).data["b"][2] == "x" * 100


def test_the_text_limit_defaults_to_four_times_the_size_limit_and_is_set_in_the_environment():
    from cachectl.yamlsrc import InputLimits

    assert InputLimits(yaml_bytes=1000).text_chars == 4000
    assert InputLimits.from_env({"CACHECTL_MAX_YAML_CHARS": "1MiB"}).text_chars == 1024 * 1024


def test_depth_is_counted_through_aliases():
    from cachectl.yamlsrc import InputLimits

    # The top mapping is level 1, a's lists 2 to 4 and its value 5; b's lists are 2 and 3, so
    # its alias of a (4 levels) reaches level 7.
    text = "a: &a [[[1]]]\nb: [[*a]]\n"
    with pytest.raises(ConfigError, match=r":2:6: nested more than 6 levels.*MAX_YAML_DEPTH"):
        parse_yaml(text, "f.yaml", limits=InputLimits(yaml_depth=6))
    assert parse_yaml(text, "f.yaml", limits=InputLimits(yaml_depth=7)).data["b"] == [[[[[1]]]]]


def test_an_aliased_text_with_an_unset_variable_is_a_problem_at_each_use():
    doc = parse_yaml("a: &a ${NOPE_UNSET}\nb: [*a, *a]\n", "f.yaml", env={})
    assert [p.path for p in doc.problems] == [("a",), ("b", 0), ("b", 1)]


def test_a_problem_line_shows_at_most_80_characters_of_a_key():
    problems = Problems(parse_yaml("? " + "k" * 5000 + "\n: 1\n", "f.yaml"))
    problems.unknown_keys((), problems.doc.data, ["name"])
    line = str(problems.items[0])
    assert "… (5000 characters)" in line and len(line) < 300


def test_nesting_past_what_python_reads_is_the_depth_problem_even_with_the_limit_raised():
    from cachectl.yamlsrc import InputLimits

    text = "a: " + "[" * 5000 + "]" * 5000 + "\n"
    with pytest.raises(ConfigError, match=r"f\.yaml: nested too deep .*CACHECTL_MAX_YAML_DEPTH"):
        parse_yaml(text, "f.yaml", limits=InputLimits(yaml_depth=100_000))
