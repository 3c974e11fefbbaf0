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
