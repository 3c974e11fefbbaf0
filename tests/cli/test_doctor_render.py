"""doctor's text report when figures are missing: INFO refused, or a node that could not be read
(an audit found `+@all -@dangerous`, a common ACL, crashed it with a TypeError, exit 1)."""

from __future__ import annotations

from typer.testing import CliRunner

from cachectl.cli.app import app

runner = CliRunner()


def test_doctor_text_report_with_info_refused_shows_question_marks_not_a_crash(acl_redis, acl_url):
    result = runner.invoke(app, ["--url", acl_redis.url_for("noinfo", "noinfo-pass"), "doctor"])
    assert result.exit_code == 0, result.output
    assert "internal error" not in result.output and "Traceback" not in result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert rows["keys"].split()[-1] == "?"
    assert "noinfo-pass" not in result.output


def test_doctor_render_of_a_report_without_figures():
    import io

    from cachectl.ops.doctor import DoctorReport, NodeReport
    from cachectl.render.doctor import render_doctor
    from cachectl.render.output import Output

    report = DoctorReport(
        settings=[],
        reachable=True,
        mode="cluster",
        nodes=[NodeReport(address="127.0.0.1:1", role="primary")],
    )
    stream = io.StringIO()
    out = Output(stdout=stream, stderr=io.StringIO(), no_color=True)
    render_doctor(out, report)
    text = stream.getvalue()
    assert "latency (PING)" in text and "?" in text
