"""The status page's HTML (rendered from a projected report), how it is served, and the
report a job keeps (``_summary.json``, ``_FAILED``) read back by ``kubemr ui``."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest
from kubemr import monitoring, statuspage, statusui
from kubemr import report as reports
from kubemr.attempts import Kind
from kubemr.outputdir import FAILED, SUMMARY, OutputDir
from kubemr.partitionsizes import OutputSizes
from kubemr.scheduler import Scheduler
from kubemr.splits import Split


def job_report(failed: bool = False, splits: int = 3) -> reports.JobReport:
    s = Scheduler(
        [Split(f"in-{i}.txt", 0, 100) for i in range(splits)],
        2,
        barrier=False,
        max_attempts=1,
        heartbeat_timeout=10.0,
    )
    mapper = s.register("mapper-0", Kind.MAP, "10.0.0.1:7071", 0.0)
    done = s.assign(mapper, 0.0)
    assert done is not None and s.map_succeeded(
        done.attempt, OutputSizes.of([(2, 20), (1, 10)]), 1.0
    )
    running = s.assign(mapper, 1.0)
    assert running is not None
    if failed:
        s.attempt_failed(running.attempt, "Traceback\nValueError: bad <line> & more", 2.0)
    figures = reports.Figures(
        job="wc", app="wordcount", started=1_700_000_000.0, counters={"map_input_records": 7}
    )
    return reports.project(s, figures, 3.0, 1_700_000_003.0)


def test_page_shows_the_figures_under_stable_ids_with_relative_urls() -> None:
    page = statuspage.render_page(job_report())
    assert '<b id="maps-done">1</b>/<b id="maps-total">3</b>' in page
    assert '<b id="reduces-done">0</b>/<b id="reduces-total">2</b>' in page
    assert 'id="phase" class="phase phase-mapping">Mapping<' in page
    assert 'data-final="false"' in page
    assert "<code>map_input_records</code></td><td>7</td>" in page
    assert '<svg id="throughput"' in page
    urls = re.findall(r'(?:href|src)="([^"]+)"', page)
    assert urls and all(not u.startswith(("/", "http")) for u in urls), urls
    assert set(urls) >= {"static/statuspage.css", "static/statuspage.js", "status"}


def test_partition_sizes_say_when_they_miss_outputs_recovered_without_sizes() -> None:
    report = job_report()
    assert "map outputs (the sizes" not in statuspage.render_fragment(report)
    restarted = report.model_copy(update={"sized_maps": 0})  # after a master restart
    assert "over 0 of 1 map outputs" in statuspage.render_fragment(restarted)


def test_a_failed_jobs_page_names_the_task_and_escapes_its_error() -> None:
    page = statuspage.render_fragment(job_report(failed=True))
    assert 'data-final="true"' in page
    assert '<span id="failure-task">map task 1 (split in-1.txt[0:100])</span>' in page
    assert "ValueError: bad &lt;line&gt; &amp; more" in page
    assert "<line>" not in page


def test_long_task_tables_keep_every_running_task() -> None:
    big = job_report(splits=statuspage.TASK_ROWS + 50)
    page = statuspage.render_fragment(big)
    assert f"showing {statuspage.TASK_ROWS} of {statuspage.TASK_ROWS + 50} map tasks" in page
    maps = page.split("<h2>Map tasks</h2>")[1].split("</table>")[0]
    assert maps.count("<tr>") == statuspage.TASK_ROWS + 1  # and the header
    assert 'class="state-running"' in maps


@pytest.mark.parametrize(
    ("value", "text"),
    [(None, "\u2013"), (512, "512 B"), (1536, "1.5 KiB"), (5 * 2**30, "5.0 GiB")],
)
def test_sizes_for_people(value: int | None, text: str) -> None:
    assert statuspage.size(value) == text


def test_the_server_serves_page_fragment_report_and_static_files() -> None:
    kept = job_report()

    async def fetch_all() -> dict[str, tuple[int, str, str]]:
        server = monitoring.MonitoringServer("127.0.0.1", 0, report=lambda: kept)
        port = await server.start()
        got = {}
        try:
            async with aiohttp.ClientSession() as http:
                for path in ("/", "/fragment", "/report", "/static/statuspage.js", "/static/x"):
                    async with http.get(f"http://127.0.0.1:{port}{path}") as response:
                        csp = response.headers.get("Content-Security-Policy", "")
                        got[path] = (response.status, await response.text(), csp)
        finally:
            await server.stop()
        return got

    got = asyncio.run(fetch_all())
    assert got["/"][0] == 200 and got["/"][2] == statuspage.CONTENT_SECURITY_POLICY
    assert got["/fragment"][1] == statuspage.render_fragment(kept)
    assert reports.load(json.loads(got["/report"][1]), "/report") == kept
    assert (
        got["/static/statuspage.js"][0] == 200
        and 'fetch("fragment"' in got["/static/statuspage.js"][1]
    )
    assert got["/static/x"][0] == 404


def test_a_costly_report_is_reused_for_a_while() -> None:
    """A report that takes 0.5 s to project is reused for 5 s (10% of the time)."""
    clock = [100.0]
    made: list[float] = []
    kept = job_report()

    def source() -> reports.JobReport:
        made.append(clock[0])
        clock[0] += 0.5
        return kept

    cache = monitoring.ReportCache(source, share=0.1, clock=lambda: clock[0], cost=lambda: clock[0])
    for step in (0.0, 1.0, 3.4, 1.0, 0.2):
        clock[0] += step
        assert cache() is kept
    assert made == pytest.approx([100.0, 105.9])  # 100.5 + 1.0 + 3.4 + 1.0 >= 100 + 5


def test_a_failed_job_keeps_its_report_and_a_new_run_clears_it(tmp_path: Path) -> None:
    output = OutputDir(str(tmp_path / "out"))
    output.prepare(overwrite=False)
    (tmp_path / "out" / "part-00000").write_text("partial\n")
    kept = job_report(failed=True)
    output.abort()
    output.keep_failure({"phase": "Failed", reports.REPORT_KEY: kept.dump()})
    output.abort()  # (the launcher aborts again when it stops everything)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [FAILED]
    assert statusui.load_kept(str(tmp_path / "out")) == kept
    assert statusui.load_kept(str(tmp_path / "out" / FAILED)) == kept
    output.prepare(overwrite=False)  # the job runs again
    assert list((tmp_path / "out").iterdir()) == []


def test_a_succeeded_jobs_summary_holds_its_report(tmp_path: Path) -> None:
    output = OutputDir(str(tmp_path / "out"))
    output.prepare(overwrite=False)
    kept = job_report()
    output.finish({"phase": "Succeeded", reports.REPORT_KEY: kept.dump()})
    assert statusui.load_kept(str(tmp_path / "out")) == kept
    assert statusui.status_of(kept)["maps"] == {"total": 3, "done": 1}


def test_no_or_a_bad_kept_report_is_named(tmp_path: Path) -> None:
    with pytest.raises(reports.ReportError, match=f"neither {FAILED} nor {SUMMARY}"):
        statusui.load_kept(str(tmp_path))
    (tmp_path / SUMMARY).write_text("{not json")
    with pytest.raises(reports.ReportError, match=f"{SUMMARY}: not JSON"):
        statusui.load_kept(str(tmp_path))
    (tmp_path / SUMMARY).write_text(json.dumps({"phase": "Succeeded"}))
    with pytest.raises(reports.ReportError, match="a job summary without a report"):
        statusui.load_kept(str(tmp_path))
    (tmp_path / SUMMARY).write_text(json.dumps({"report": {"job": "x"}}))
    with pytest.raises(reports.ReportError, match=r"_summary.json: not a kubemr job report \(app"):
        statusui.load_kept(str(tmp_path))
