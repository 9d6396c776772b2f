"""The job's status page: a :class:`~kubemr.report.JobReport` rendered as HTML.

The paper's master "exports a set of status pages for human consumption"; this is
kubemr's. The server renders the whole page (so it shows everything on first paint, with
or without JavaScript); a small script shipped beside it (``static/statuspage.js``)
fetches the page's main part again every second from ``fragment`` and swaps it in, until
the report is final. One renderer, in Python, unit-tested; no template language, no
front-end build, no CDN: the CSS and the script are package data, every URL is relative
(so the page works behind ``kubectl port-forward`` or a proxy path), and nothing is
written at run time (a read-only root filesystem is fine). Pure: a report in, a string out
(:mod:`kubemr.monitoring` serves the page and its static files).
"""

from __future__ import annotations

import datetime
import html
from collections.abc import Iterable, Sequence

from kubemr.report import Failure, JobReport, PhaseProgress, Point, TaskRow

TASK_ROWS = 200
"""Rows per task table; past that, running and failed tasks are kept, the rest cut."""
ASSETS = ("statuspage.css", "statuspage.js")
"""The static files the page loads (``static/<name>``), shipped in ``kubemr/static``."""
CONTENT_SECURITY_POLICY = "default-src 'self'; img-src 'self' data:; base-uri 'none'"
"""The page loads nothing from elsewhere and runs no inline script or style."""
CHART_WIDTH, CHART_HEIGHT = 560, 150
DASH, TIMES = "\u2013", "\u00d7"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def size(count: int | None) -> str:
    """``1.5 MiB``: bytes for humans; an en dash when unknown."""
    if count is None:
        return DASH
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def seconds(value: float | None) -> str:
    if value is None:
        return DASH
    if value < 60:
        return f"{value:.1f} s"
    minutes, rest = divmod(value, 60)
    return f"{int(minutes)} min {rest:.0f} s"


def render_page(report: JobReport) -> str:
    """The whole page (its script polls for updates until the report is final)."""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(report.job)} · {_e(report.phase)} · kubemr</title>"
        '<link rel="stylesheet" href="static/statuspage.css">'
        '<script src="static/statuspage.js" defer></script></head><body>'
        '<p id="connection" class="connection" hidden></p>'
        f'<main id="report">{render_fragment(report)}</main>'
        "<footer>kubemr · "
        '<a href="status">status JSON</a> · <a href="report">report JSON</a> · '
        '<a href="metrics">metrics</a></footer>'
        "</body></html>\n"
    )


def render_fragment(report: JobReport) -> str:
    """The page's main part (what the script swaps in)."""
    final = "true" if report.final else "false"
    started = datetime.datetime.fromtimestamp(report.started, datetime.UTC)
    parts = [
        f'<div class="job" data-phase="{_e(report.phase)}" data-final="{final}">',
        "<header>",
        f'<h1>{_e(report.job)} <span id="phase" class="phase phase-{_e(report.phase.lower())}">'
        f"{_e(report.phase)}</span></h1>",
        f'<p id="step" class="step">{_e(report.step)}</p>',
        f'<p class="meta">app <code>{_e(report.app)}</code> · started '
        f"{_e(started.strftime('%Y-%m-%d %H:%M:%S UTC'))} · "
        f'<span id="elapsed">{_e(seconds(report.elapsed))}</span>'
        f"{' elapsed' if not report.final else ' in all'}"
        + (f" · {report.master_restarts} master restart(s)" if report.master_restarts else "")
        + "</p></header>",
        '<section class="progress">',
        _bar("maps", "map", report.maps),
        _bar("reduces", "reduce", report.reduces),
        "</section>",
    ]
    if report.failure is not None:
        parts.append(_failure(report.failure))
    parts += [
        '<div class="columns">',
        "<section><h2>Throughput</h2>",
        _chart(report.throughput),
        "</section>",
        "<section><h2>Slowest tasks</h2>",
        _slowest(report),
        "<h2>Largest partitions</h2>",
        _partitions(report),
        "</section></div>",
        "<section><h2>Workers</h2>",
        _workers(report),
        "</section>",
    ]
    if report.counters:
        parts += ["<section><h2>Counters</h2>", _counters(report.counters), "</section>"]
    if report.phase_seconds:
        phases = " · ".join(f"{_e(k)} {_e(seconds(v))}" for k, v in report.phase_seconds.items())
        parts.append(f'<p class="meta">phases: {phases}</p>')
    parts += [
        "<section><h2>Map tasks</h2>",
        _tasks([t for t in report.tasks if t.kind == "map"], "map"),
        "</section>",
        "<section><h2>Reduce tasks</h2>",
        _tasks([t for t in report.tasks if t.kind == "reduce"], "reduce"),
        "</section>",
        "</div>",
    ]
    return "".join(parts)


def _bar(name: str, label: str, progress: PhaseProgress) -> str:
    failed = (
        f' · <span class="bad">{progress.failed_attempts} failed attempts</span>'
        if progress.failed_attempts
        else ""
    )
    return (
        f'<div class="bar" id="{name}">'
        f'<span class="bar-label">{label}</span>'
        f'<progress max="{max(progress.total, 1)}" value="{progress.done}"></progress>'
        f'<span class="bar-figures"><b id="{name}-done">{progress.done}</b>/'
        f'<b id="{name}-total">{progress.total}</b> done ({progress.percent:.0f}%) · '
        f"{progress.running} running{failed}</span></div>"
    )


def _failure(failure: Failure) -> str:
    logs = "".join(f"<li><code>{_e(line)}</code></li>" for line in failure.logs)
    task = failure.task or "the job"
    return (
        '<section id="failure" class="failure"><h2>Failed</h2>'
        f'<p><span id="failure-task">{_e(task)}</span>'
        + (f" failed {failure.attempts} times" if failure.attempts else "")
        + (f" (workers: {_e(', '.join(failure.workers))})" if failure.workers else "")
        + "</p>"
        + (f"<p>Logs:</p><ul>{logs}</ul>" if logs else "")
        + f'<pre id="failure-error">{_e(failure.error.strip())}</pre></section>'
    )


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _chart(points: Sequence[Point]) -> str:
    if not points:
        return '<p class="empty">no data yet</p>'
    peak = max(max(p.map_bytes_per_second, p.reduce_bytes_per_second) for p in points)
    span = points[-1].t + points[0].t  # the last interval's end
    width, height = CHART_WIDTH, CHART_HEIGHT

    def line(values: Sequence[float]) -> str:
        top = peak or 1.0
        return " ".join(
            f"{p.t / span * width:.1f},{height - v / top * (height - 10):.1f}"
            for p, v in zip(points, values, strict=True)
        )

    maps = line([p.map_bytes_per_second for p in points])
    reduces = line([p.reduce_bytes_per_second for p in points])
    return (
        f'<svg id="throughput" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="throughput: map input and reduce fetch, bytes per second">'
        f'<line class="axis" x1="0" y1="{height}" x2="{width}" y2="{height}"/>'
        f'<polyline class="series-map" points="{maps}"/>'
        f'<polyline class="series-reduce" points="{reduces}"/>'
        "</svg>"
        f'<p class="legend"><span class="key-map">■</span> map input '
        f'<span class="key-reduce">■</span> reduce fetch · peak {_e(size(int(peak)))}/s · '
        f"0{DASH}{_e(seconds(span))}</p>"
    )


def _slowest(report: JobReport) -> str:
    if not report.slowest:
        return '<p class="empty">none yet</p>'
    rows = [
        (
            f"{_e(s.kind)} {s.index}",
            _e(s.worker),
            _e(seconds(s.seconds)) + (" (running)" if s.running else ""),
            f"{s.ratio:.1f}{TIMES} median" if s.ratio is not None else DASH,
        )
        for s in report.slowest
    ]
    return _table(("task", "worker", "time", "vs median"), rows, "compact")


def _partitions(report: JobReport) -> str:
    if not report.partitions:
        return '<p class="empty">none yet</p>'
    rows = [
        (str(p.index), _e(size(p.bytes)), str(p.records), f"{p.ratio:.2f}{TIMES} mean")
        for p in report.partitions
    ]
    table = _table(("partition", "bytes", "records", "skew"), rows, "compact")
    if report.sized_maps is not None and report.sized_maps < report.maps.done:
        # after a master restart: outputs journaled after the last size checkpoint
        table += (
            f'<p class="empty">over {report.sized_maps} of {report.maps.done} map outputs '
            "(the sizes of the rest were not journaled before the master restarted)</p>"
        )
    return table


def _workers(report: JobReport) -> str:
    if not report.workers:
        return '<p class="empty">no worker registered yet</p>'
    rows = []
    for w in report.workers:
        state = "alive" if w.alive else "gone"
        if w.blacklisted:
            state += ", blacklisted"
        cls = "ok" if w.alive and not w.blacklisted else "bad"
        rows.append(
            (
                _e(w.name),
                _e(w.role),
                f'<span class="{cls}">{_e(state)}</span>',
                _e(seconds(w.last_heartbeat)) + " ago",
                _e(w.attempt or "idle"),
                str(w.succeeded),
                str(w.failed),
                f"<code>{_e(w.address)}</code>" if w.address else "",
            )
        )
    headers = ("worker", "role", "state", "last heartbeat", "running", "ok", "failed", "address")
    return _table(headers, rows, "workers")


def _counters(counters: dict[str, int]) -> str:
    rows = [(f"<code>{_e(k)}</code>", f"{v:,}") for k, v in counters.items()]
    return _table(("counter", "value"), rows, "compact counters")


def _tasks(tasks: Sequence[TaskRow], kind: str) -> str:
    if not tasks:
        return '<p class="empty">none</p>'
    shown = list(tasks)
    note = ""
    if len(shown) > TASK_ROWS:
        keep = [t for t in shown if t.state in ("running", "failed")]
        rest = [t for t in shown if t.state not in ("running", "failed")]
        shown = sorted(keep + rest[: max(TASK_ROWS - len(keep), 0)], key=lambda t: t.index)
        note = (
            f'<p class="meta">showing {len(shown)} of {len(tasks)} {kind} tasks '
            "(every running and failed one)</p>"
        )
    rows = [
        (
            str(t.index),
            f'<span class="state-{_e(t.state)}">{_e(t.state)}</span>'
            + (f" {t.progress:.0%}" if t.state == "running" else ""),
            _e(t.attempt or DASH) + (f" ({t.attempts} attempts)" if t.attempts > 1 else ""),
            _e(t.worker or DASH),
            _e(seconds(t.seconds)),
            _e(size(t.bytes_in)),
            _e(size(t.bytes_out)),
            "yes" if t.speculative else "",
            f'<span class="bad">{t.failures}</span>' if t.failures else "0",
            f"<code>{_e(t.label)}</code>",
        )
        for t in shown
    ]
    headers = (
        "#",
        "state",
        "attempt",
        "worker",
        "time",
        "bytes in",
        "bytes out",
        "speculative",
        "failures",
        "input" if kind == "map" else "partition",
    )
    return note + _table(headers, rows, f"tasks tasks-{kind}")
