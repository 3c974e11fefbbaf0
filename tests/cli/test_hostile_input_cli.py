"""Hostile and absurd input: every file cachectl reads and every numeric flag is refused with one
line and a documented exit code (3 for a file, 2 for a flag), in bounded memory and time, never
an internal error (exit 1)."""

from __future__ import annotations

import os
import resource
import textwrap

import pytest
from typer.testing import CliRunner

from cachectl.cli.app import app

runner = CliRunner()

BILLION_LAUGHS = textwrap.dedent(
    """\
    a: &a [x, x, x, x, x, x, x, x, x, x]
    b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
    c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
    d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
    e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
    f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
    g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]
    h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]
    i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]
    """
)


def cli(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", **(env or {})})


def one_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) >= 1, result.output
    return lines[0]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def manifest_text(endpoint: str) -> str:
    return (
        "version: 1\nendpoints:\n"
        "  - name: items\n    url: http://origin.test/items/{i}\n    ttl: 60\n"
        + textwrap.indent(textwrap.dedent(endpoint), "    ")
    )


# ---- files that never end, or are not text --------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_validate_dev_zero_is_refused_at_the_first_nul_byte_in_bounded_memory():
    before = rss_mb()
    result = cli("manifest", "validate", "/dev/zero")
    assert result.exit_code == 3, result.output
    line = one_line(result)
    assert "/dev/zero" in line and "U+0000" in line and "offset 0" in line
    assert rss_mb() - before < 100


@pytest.mark.skipif(not os.path.exists("/dev/urandom"), reason="no /dev/urandom")
def test_validate_dev_urandom_is_refused_at_the_first_byte_that_is_not_utf8():
    before = rss_mb()
    result = cli("manifest", "validate", "/dev/urandom")
    assert result.exit_code == 3, result.output
    line = one_line(result)
    assert "/dev/urandom" in line and "offset" in line
    assert ("not UTF-8" in line) or ("U+0000" in line)
    assert rss_mb() - before < 100


def test_bytes_that_are_not_utf8_are_refused_with_their_offset_and_line(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_bytes(b"version: 1\nendpoints: caf\xe9\n")
    result = cli("manifest", "validate", str(path))
    assert result.exit_code == 3
    line = one_line(result)
    assert f"{path}:2:" in line and "offset 25" in line and "0xe9" in line and "not UTF-8" in line


def test_a_directory_is_refused_up_front(tmp_path):
    result = cli("manifest", "validate", str(tmp_path))
    assert result.exit_code == 3
    assert "is a directory" in one_line(result)


def test_a_named_pipe_with_no_writer_does_not_hang(tmp_path):
    fifo = tmp_path / "m.yaml"
    os.mkfifo(fifo)
    result = cli("manifest", "validate", str(fifo))
    assert result.exit_code == 3
    assert "empty" in one_line(result)


def test_a_yaml_document_over_the_size_limit_is_refused_naming_the_limit_and_its_setting(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("version: 1\n# " + "x" * 2000 + "\n")
    result = cli("manifest", "validate", str(path), env={"CACHECTL_MAX_YAML_BYTES": "1KiB"})
    assert result.exit_code == 3
    line = one_line(result)
    assert str(path) in line and "1024 bytes" in line and "CACHECTL_MAX_YAML_BYTES" in line


def test_an_unreadable_limit_setting_is_a_config_error(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(manifest_text(""))
    result = cli("manifest", "validate", str(path), env={"CACHECTL_MAX_YAML_BYTES": "lots"})
    assert result.exit_code == 3
    assert "CACHECTL_MAX_YAML_BYTES" in one_line(result)


# ---- alias expansion and nesting ------------------------------------------------------------


def test_billion_laughs_is_refused_by_manifest_validate_in_bounded_memory(tmp_path):
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS)
    before = rss_mb()
    result = cli("manifest", "validate", str(path))
    assert result.exit_code == 3, result.output
    line = one_line(result)
    assert f"{path}:" in line and "CACHECTL_MAX_YAML_NODES" in line and "alias" in line
    assert rss_mb() - before < 100


def test_billion_laughs_as_a_dependency_graph_is_refused_without_touching_redis(tmp_path):
    path = tmp_path / "graph.yaml"
    path.write_text(BILLION_LAUGHS)
    result = cli(
        "--url", "redis://127.0.0.1:1/0", "invalidate", "--depends-on", "a", "--graph", str(path)
    )
    assert result.exit_code == 3, result.output
    assert "CACHECTL_MAX_YAML_NODES" in one_line(result)


def test_billion_laughs_as_a_config_file_is_refused(tmp_path):
    path = tmp_path / "cachectl.yaml"
    path.write_text(BILLION_LAUGHS)
    result = cli("--config", str(path), "doctor", "--json")
    assert result.exit_code == 3, result.output
    assert "CACHECTL_MAX_YAML_NODES" in result.output


def test_a_manifest_nested_5000_levels_deep_is_refused_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("version: 1\nendpoints: " + "[" * 5000 + "]" * 5000 + "\n")
    result = cli("manifest", "validate", str(path))
    assert result.exit_code == 3, result.output
    line = one_line(result)
    assert f"{path}:2:" in line and "CACHECTL_MAX_YAML_DEPTH" in line
    path.write_text("version: 1\nendpoints:\n" + "".join("  " * i + "- \n" for i in range(5000)))
    assert cli("manifest", "validate", str(path)).exit_code == 3


# ---- matrix files ---------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_a_matrix_file_that_is_a_device_is_refused_up_front(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text(manifest_text("matrix: {i: {file: /dev/zero}}\n"))
    before = rss_mb()
    result = cli("manifest", "validate", str(path))
    assert result.exit_code == 3, result.output
    assert "/dev/zero" in one_line(result) and "regular file" in one_line(result)
    assert rss_mb() - before < 100


def test_a_matrix_file_line_over_the_limit_is_refused_with_its_line_and_setting(tmp_path):
    (tmp_path / "ids.txt").write_text("1\n2\n" + "9" * 5000 + "\n4\n")
    path = tmp_path / "m.yaml"
    path.write_text(manifest_text("matrix: {i: {file: ids.txt}}\n"))
    result = cli("manifest", "validate", str(path), env={"CACHECTL_MAX_LINE_BYTES": "1000"})
    assert result.exit_code == 3, result.output
    line = one_line(result)
    assert "ids.txt:3" in line and "1000 bytes" in line and "CACHECTL_MAX_LINE_BYTES" in line


def test_a_matrix_file_that_is_not_utf8_is_refused_with_its_offset(tmp_path):
    (tmp_path / "ids.txt").write_bytes(b"1\n2\n\xff\xfe\n")
    path = tmp_path / "m.yaml"
    path.write_text(manifest_text("matrix: {i: {file: ids.txt}}\n"))
    result = cli("manifest", "validate", str(path))
    assert result.exit_code == 3, result.output
    line = one_line(result)
    assert "ids.txt:3" in line and "offset 4" in line and "not UTF-8" in line


def test_a_matrix_file_of_a_million_lines_streams(tmp_path):
    (tmp_path / "ids.txt").write_text("".join(f"{i}\n" for i in range(1_000_000)))
    path = tmp_path / "m.yaml"
    path.write_text(manifest_text("matrix: {i: {file: ids.txt}}\n"))
    before = rss_mb()
    result = cli("manifest", "expand", str(path), "--limit", "3", "--json")
    assert result.exit_code == 0, result.output
    assert rss_mb() - before < 60


# ---- audit cases: each run as a subprocess with a timeout, so a regression fails, never hangs --


def cli_bounded(*args: str, env: dict | None = None, timeout: float = 60):
    """The CLI in a subprocess under a 1 GB address-space cap and a timeout."""
    import subprocess
    import sys

    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    code = (
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
        "from cachectl.cli.app import main; sys.argv = ['cachectl'] + sys.argv[1:]; main()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        check=False,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def first_line(proc) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines, proc.stdout
    return lines[0]


def big_alias_yaml(text_chars: int, with_variable: bool) -> str:
    """One long text anchored, then used 10**4 times through nested aliases (few values)."""
    value = ("${HOME}" if with_variable else "") + "x" * text_chars
    out = f"s: &s0 {value}\n"
    out += "l1: &l1 [" + ", ".join(["*s0"] * 10) + "]\n"
    for level in range(2, 5):
        out += f"l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * 10) + "]\n"
    return out


@pytest.mark.parametrize("with_variable", [True, False])
def test_an_alias_of_a_long_text_used_many_times_is_refused_by_its_characters(
    tmp_path, with_variable
):
    path = tmp_path / "m.yaml"
    path.write_text(big_alias_yaml(100_000, with_variable))
    proc = cli_bounded("manifest", "validate", str(path))
    assert proc.returncode == 3, proc.stderr
    line = first_line(proc)
    assert str(path) in line and "CACHECTL_MAX_YAML_CHARS" in line, line


def test_an_alias_of_a_long_text_is_refused_as_config_and_graph(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(big_alias_yaml(100_000, False))
    proc = cli_bounded("--config", str(path), "doctor")
    assert proc.returncode == 3, proc.stderr
    assert "CACHECTL_MAX_YAML_CHARS" in first_line(proc)
    proc = cli_bounded(
        "--url", "redis://127.0.0.1:1", "invalidate", "--graph", str(path), "--depends-on", "x"
    )
    assert proc.returncode == 3, proc.stderr
    assert "CACHECTL_MAX_YAML_CHARS" in first_line(proc)


def test_nesting_stacked_through_aliases_counts_against_the_depth_limit(tmp_path):
    out = ""
    for n in range(12):
        inner = f"*a{n - 1}" if n else "0"
        out += f"k{n}: &a{n} " + "[" * 90 + inner + "]" * 90 + "\n"
    path = tmp_path / "m.yaml"
    path.write_text(out)
    proc = cli_bounded("manifest", "validate", str(path))
    assert proc.returncode == 3, proc.stderr
    line = first_line(proc)
    assert str(path) in line and "CACHECTL_MAX_YAML_DEPTH" in line, line


def test_an_error_line_about_a_long_key_is_quick_and_short(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("? " + "k" * 200_000 + "\n: 1\n")
    proc = cli_bounded("manifest", "validate", str(path), timeout=30)
    assert proc.returncode == 3, proc.stderr
    assert len(proc.stderr) < 2000, len(proc.stderr)


def test_a_wide_dependency_graph_reads_in_linear_time(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("a: [" + ", ".join(f"id{i}" for i in range(99_000)) + "]\n")
    proc = cli_bounded(
        "--url",
        "redis://127.0.0.1:1",
        "invalidate",
        "--graph",
        str(path),
        "--depends-on",
        "zz",
        "--dry-run",
        timeout=30,
    )
    # Reading the graph is what is timed; Redis is unreachable afterwards (exit 4).
    assert proc.returncode in (0, 4, 5), proc.stderr


def test_a_matrix_line_of_deep_json_is_refused_with_its_line(tmp_path):
    (tmp_path / "ids.txt").write_text("1\n" + "[" * 30000 + "]" * 30000 + "\n")
    path = tmp_path / "m.yaml"
    path.write_text(manifest_text("matrix: {i: {file: ids.txt}}\n"))
    for command in ("validate", "expand"):
        proc = cli_bounded("manifest", command, str(path))
        assert proc.returncode == 3, proc.stderr
        assert "ids.txt:2" in first_line(proc), first_line(proc)


@pytest.mark.parametrize("number", ["1e400", "-1e400", "[1e400]"])
def test_a_matrix_line_that_is_not_a_finite_number_is_refused_with_its_line(tmp_path, number):
    (tmp_path / "ids.txt").write_text(f"1\n{number}\n")
    path = tmp_path / "m.yaml"
    path.write_text(manifest_text("matrix: {i: {file: ids.txt}}\n"))
    result = cli("manifest", "expand", str(path))
    assert result.exit_code == 3, result.output
    assert "ids.txt:2" in one_line(result), one_line(result)


def test_a_utf8_bom_at_the_start_of_a_matrix_file_is_not_part_of_the_first_value(tmp_path):
    (tmp_path / "ids.txt").write_bytes(b"\xef\xbb\xbf1\r\n2\r\n")
    path = tmp_path / "m.yaml"
    path.write_text(manifest_text("matrix: {i: {file: ids.txt}}\n"))
    result = cli("manifest", "expand", str(path))
    assert result.exit_code == 0, result.output
    assert "%EF%BB%BF" not in result.output and "/items/1" in result.output


def test_a_utf8_bom_at_the_start_of_a_yaml_file_is_skipped(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_bytes(
        b"\xef\xbb\xbf" + manifest_text("matrix: {i: [1]}\n").encode().replace(b"\n", b"\r\n")
    )
    result = cli("manifest", "validate", str(path))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "target, said",
    [("/dev/null", "empty"), ("/dev/zero", "not a text file"), ("dir", "directory")],
)
def test_a_config_file_that_is_not_a_file_says_what_it_is(tmp_path, target, said):
    if target == "dir":
        target = str(tmp_path)
    elif not os.path.exists(target):
        pytest.skip(f"no {target}")
    result = cli("-c", target, "doctor")
    assert result.exit_code == 3, result.output
    line = one_line(result)
    assert "not found" not in line and said in line, line


def test_a_config_file_that_is_a_symlink_loop_says_so(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    result = cli("-c", str(tmp_path / "a"), "doctor")
    assert result.exit_code == 3, result.output
    line = one_line(result)
    assert "not found" not in line and "loop" in line, line
