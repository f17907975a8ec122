"""The job's report page: summaries/<job_id>.html, one self-contained HTML file beside the JSON summary.

Styles and the small script are inline and a Content-Security-Policy forbids every fetch, so the page
opens the same from the S3 console, a presigned URL or a copy on disk. Everything that comes from the
job (item reasons, log locations, the merged result, parameters) is escaped with html.escape; the only
unescaped text is this module's own markup.

The timeline draws one bar per task attempt, from launch (the task's createdAt) to stop, coloured by
what happened: succeeded on Spot, succeeded on on-demand (a fallback), Spot interrupted, failed. Up to
MAX_ROWS items get a row each; more are grouped into MAX_ROWS rows of consecutive items, where the
succeeded bars of a row are merged into the spans they cover (so 10,000 items stay a few hundred KB)
and every interrupted or failed attempt keeps a bar of its own: where Spot bit is never averaged away.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html import escape
from typing import Any

from jobcore.job_store import JobStore
from jobcore.models import AttemptOutcome, Capacity, TaskStatus

MAX_ROWS = 200
MAX_FAILURES_SHOWN = 500
MAX_RESULT_CHARS = 100_000

# what a bar's colour says; the order is the legend's and the drawing order (problems drawn last, on top)
KINDS: tuple[tuple[str, str], ...] = (
    ("succeeded", "succeeded on Spot"),
    ("on-demand", "succeeded on on-demand (fallback)"),
    ("interrupted", "Spot interrupted"),
    ("failed", "failed"),
)
_KIND_ORDER = {kind: order for order, (kind, _) in enumerate(KINDS)}
_CAPACITY_NAMES = {"FARGATE_SPOT": "Spot", "FARGATE": "on-demand"}


@dataclass(frozen=True)
class Bar:
    item: int
    attempt: int
    capacity: str
    kind: str  # one of KINDS
    start: float  # epoch seconds
    stop: float


@dataclass
class _Item:
    verdict: TaskStatus | None  # SUCCEEDED, FAILED or None (not finished)
    bars: list[Bar] = field(default_factory=list)
    log: str | None = None


class Timeline:
    """The items' task attempts, fed by build_summary one item at a time (from the `history` of each
    item's outcome record)."""

    def __init__(self) -> None:
        self._items: dict[int, _Item] = {}

    def add(self, index: int, verdict: TaskStatus | None, outcome: dict[str, Any] | None) -> None:
        outcome = outcome or {}
        entry = _Item(verdict, log=outcome.get("log") if isinstance(outcome.get("log"), str) else None)
        history = outcome.get("history")
        for record in history if isinstance(history, list) else []:
            bar = _bar(index, record)
            if bar is not None:
                entry.bars.append(bar)
        self._items[index] = entry

    def item(self, index: int) -> _Item | None:
        return self._items.get(index)

    def bars(self) -> Iterable[Bar]:
        for entry in self._items.values():
            yield from entry.bars


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _bar(index: int, record: Any) -> Bar | None:
    if not isinstance(record, dict):
        return None
    start, stop = _epoch(record.get("launched_at")), _epoch(record.get("stopped_at"))
    if start is None or stop is None:
        return None
    outcome, capacity = str(record.get("outcome")), str(record.get("capacity"))
    if outcome == AttemptOutcome.SUCCEEDED:
        kind = "on-demand" if capacity == Capacity.ON_DEMAND else "succeeded"
    elif outcome == AttemptOutcome.INTERRUPTED:
        kind = "interrupted"
    else:
        kind = "failed"
    attempt = record.get("attempt")
    return Bar(index, attempt if isinstance(attempt, int) else 0, capacity, kind, start, max(start, stop))


def write_report(s3: Any, bucket: str, job_id: str, page: str) -> str:
    return JobStore(s3, bucket, job_id).write_report(page)


# ---------------------------------------------------------------- rendering


def _text(value: Any) -> str:
    return escape(str(value), quote=True)


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.2f} h"


def _utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _usd(value: Any) -> str:
    return f"${value:.6f}" if isinstance(value, (int, float)) else "–"


def _definitions(pairs: Iterable[tuple[str, Any]]) -> str:
    return "".join(f"<dt>{_text(name)}</dt><dd>{_text(value)}</dd>" for name, value in pairs)


def render_report(summary: dict[str, Any], timeline: Timeline | None = None) -> str:
    """The report page of a job from its summary document and the attempts build_summary collected."""
    timeline = timeline or Timeline()
    job_id = str(summary.get("job_id") or "")
    status = str(summary.get("status") or "UNKNOWN")
    sections = [
        _overview(summary),
        _timeline_section(summary, timeline),
        _cost_section(summary.get("cost") or {}),
        _failures_section(summary.get("failures") or [], timeline),
        _result_section(summary.get("result")),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        # no fetch of any kind: the page must open offline, from disk or the S3 console, the same way
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>spotmap job {_text(job_id)}: {_text(status)}</title>"
        f"<style>{_STYLE}</style></head>"
        f'<body data-job-id="{_text(job_id)}" data-status="{_text(status)}">'
        f"<header><h1>spotmap job <code>{_text(job_id)}</code></h1>"
        f'<span class="status status-{_text(status.lower())}">{_text(status)}</span></header>'
        + "".join(sections)
        + f"<script>{_SCRIPT}</script></body></html>\n"
    )


def _overview(summary: dict[str, Any]) -> str:
    items = summary.get("items") or {}
    attempts = summary.get("attempts") or {}
    timing = summary.get("timing") or {}
    source = summary.get("input") or {}
    counts = [
        ("items", items.get("total")),
        ("succeeded", items.get("succeeded")),
        ("failed", items.get("failed")),
    ]
    if "pending" in items:
        counts.append(("pending", items.get("pending")))
    counts += [
        ("tasks launched", attempts.get("launched")),
        ("Spot interruptions", attempts.get("spot_interruptions")),
        ("capacity retries", attempts.get("capacity_retries")),
        ("on-demand fallbacks", attempts.get("on_demand_fallbacks")),
        ("throttled RunTask calls", attempts.get("throttled_run_task_calls")),
    ]
    tiles = "".join(
        f'<div class="tile" data-count="{_text(name)}"><b>{_text("–" if value is None else value)}</b>'
        f"<span>{_text(name)}</span></div>"
        for name, value in counts
    )
    seconds = timing.get("seconds")
    facts = [
        ("processor", summary.get("processor") or "–"),
        ("input", f"s3://{source.get('bucket')}/{source.get('key')}" if source else "–"),
        ("started", timing.get("started_at") or "–"),
        ("stopped", timing.get("stopped_at") or "–"),
        ("duration", _seconds(seconds) if isinstance(seconds, (int, float)) else "–"),
        ("execution", summary.get("execution_arn") or "–"),
        ("outputs", summary.get("output_prefix") or "–"),
    ]
    if summary.get("params"):
        facts.append(("parameters", json.dumps(summary["params"], sort_keys=True)))
    error = summary.get("error")
    error_html = f'<p class="error" id="job-error">{_text(error)}</p>' if error else ""
    return (
        f'<section id="overview"><div class="tiles">{tiles}</div>{error_html}'
        f"<dl>{_definitions(facts)}</dl></section>"
    )


def _cost_section(cost: dict[str, Any]) -> str:
    if not cost:
        return ""
    fargate = cost.get("fargate") or {}
    spot, on_demand = fargate.get("spot") or {}, fargate.get("on_demand") or {}
    lambda_, sfn = cost.get("lambda") or {}, cost.get("step_functions") or {}
    total, equivalent = cost.get("total_usd"), cost.get("on_demand_equivalent_usd")
    saved = ""
    if isinstance(total, (int, float)) and isinstance(equivalent, (int, float)) and equivalent > 0:
        saved = f" ({(1 - total / equivalent) * 100:.0f}% less than on-demand only)"
    rows = [
        ("Fargate Spot", f"{spot.get('vcpu_seconds', 0)} vCPU·s, {spot.get('gb_seconds', 0)} GB·s", spot),
        (
            "Fargate on-demand",
            f"{on_demand.get('vcpu_seconds', 0)} vCPU·s, {on_demand.get('gb_seconds', 0)} GB·s",
            on_demand,
        ),
        (
            "Lambda",
            f"{lambda_.get('invocations', 0)} invocations, {lambda_.get('gb_seconds', 0)} GB·s",
            lambda_,
        ),
        ("Step Functions", f"{sfn.get('state_transitions', 0)} state transitions", sfn),
    ]
    body = "".join(
        f"<tr><th>{_text(name)}</th><td>{_text(usage)}</td>"
        f'<td class="usd">{_text(_usd(part.get("usd")))}</td></tr>'
        for name, usage, part in rows
    )
    prices = cost.get("prices") or {}
    return (
        '<section id="cost"><h2>Cost (estimate)</h2><table class="cost">'
        f"{body}"
        f'<tr class="total"><th>Total</th><td></td><td class="usd">{_text(_usd(total))}</td></tr>'
        f'<tr><th>On-demand only</th><td>the same work without Spot</td><td class="usd">'
        f"{_text(_usd(equivalent))}</td></tr></table>"
        f'<p class="note">Spot against on-demand: {_text(_usd(total))} against {_text(_usd(equivalent))}'
        f"{_text(saved)}. Orchestration (Lambda and Step Functions) is included in both. Prices of "
        f"{_text(prices.get('region', '?'))}, {_text(prices.get('date', '?'))} "
        f"({_text(prices.get('source', '?'))}).</p>"
        "</section>"
    )


def _failures_section(failures: list[dict[str, Any]], timeline: Timeline) -> str:
    if not failures:
        return '<section id="failures"><h2>Failures</h2><p>None.</p></section>'
    rows = []
    for failure in failures[:MAX_FAILURES_SHOWN]:
        index = failure.get("index")
        entry = timeline.item(index) if isinstance(index, int) else None
        log = (entry.log if entry else None) or "–"
        rows.append(
            f'<tr data-item="{_text(index)}"><td>{_text(index)}</td><td>{_text(failure.get("reason"))}</td>'
            f'<td class="log">{_text(log)}</td></tr>'
        )
    more = len(failures) - MAX_FAILURES_SHOWN
    more_html = f'<p class="note">{more} more in the JSON summary.</p>' if more > 0 else ""
    return (
        f'<section id="failures"><h2>Failures ({len(failures)})</h2><table class="failures">'
        "<tr><th>item</th><th>reason</th><th>log</th></tr>" + "".join(rows) + f"</table>{more_html}</section>"
    )


def _result_section(result: Any) -> str:
    text = json.dumps(result, indent=2, sort_keys=True, default=str)
    note = ""
    if len(text) > MAX_RESULT_CHARS:
        note = (
            f'<p class="note">The first {MAX_RESULT_CHARS:,} characters; '
            "the whole result is in the JSON summary.</p>"
        )
        text = text[:MAX_RESULT_CHARS] + "\n…"
    return f'<section id="result"><h2>Merged result</h2>{note}<pre>{_text(text)}</pre></section>'


# ---------------------------------------------------------------- the timeline


def _row_groups(total: int) -> list[range]:
    """Consecutive item ranges, one per row: one item per row up to MAX_ROWS items."""
    if total <= 0:
        return []
    size = max(1, math.ceil(total / MAX_ROWS))
    return [range(start, min(total, start + size)) for start in range(0, total, size)]


def _union(bars: list[Bar]) -> list[tuple[float, float, int]]:
    """The spans the bars cover (start, stop, how many bars), for a grouped row's succeeded bars."""
    spans: list[tuple[float, float, int]] = []
    for bar in sorted(bars, key=lambda bar: bar.start):
        if spans and bar.start <= spans[-1][1]:
            start, stop, count = spans[-1]
            spans[-1] = (start, max(stop, bar.stop), count + 1)
        else:
            spans.append((bar.start, bar.stop, 1))
    return spans


def _timeline_section(summary: dict[str, Any], timeline: Timeline) -> str:
    total = int((summary.get("items") or {}).get("total") or 0)
    bars = list(timeline.bars())
    legend = "".join(
        f'<label class="key"><input type="checkbox" checked data-kind="{kind}">'
        f'<i class="swatch k-{kind}"></i>{_text(label)} '
        f'(<span data-kind-count="{kind}">{sum(1 for bar in bars if bar.kind == kind)}</span>)</label>'
        for kind, label in KINDS
    )
    if not bars:
        return (
            f'<section id="timeline"><h2>Timeline</h2><div class="legend">{legend}</div>'
            "<p>No task attempts were recorded.</p></section>"
        )
    t0 = min(bar.start for bar in bars)
    t1 = max(max(bar.stop for bar in bars), t0 + 1e-3)
    span = t1 - t0

    def position(start: float, stop: float) -> str:
        left = (start - t0) / span * 100
        width = max((stop - start) / span * 100, 0.15)  # a visible sliver for the shortest tasks
        return f"left:{left:.2f}%;width:{min(width, 100 - left):.2f}%"

    def bar_html(bar: Bar) -> str:
        capacity = _CAPACITY_NAMES.get(bar.capacity, bar.capacity)
        took = _seconds(bar.stop - bar.start)
        title = f"item {bar.item}, attempt {bar.attempt} on {capacity}: {bar.kind}, {took}"
        return (
            f'<i class="bar k-{bar.kind}" style="{position(bar.start, bar.stop)}" data-item="{bar.item}" '
            f'data-attempt="{bar.attempt}" data-outcome="{bar.kind}" data-capacity="{_text(bar.capacity)}" '
            f'title="{_text(title)}"></i>'
        )

    groups = _row_groups(max(total, max(bar.item for bar in bars) + 1))
    grouped = len(groups[0]) > 1 if groups else False
    rows: list[str] = []
    for group in groups:
        entries = [(index, timeline.item(index)) for index in group]
        row_bars = sorted(
            (bar for _, entry in entries if entry for bar in entry.bars),
            key=lambda bar: (_KIND_ORDER[bar.kind], bar.start),
        )
        failed = [index for index, entry in entries if entry and entry.verdict is TaskStatus.FAILED]
        unfinished = [index for index, entry in entries if entry is None or entry.verdict is None]
        state = "failed" if failed else "unfinished" if unfinished else "succeeded"
        if grouped:
            label = f"items {group.start}–{group.stop - 1}"
            cells: list[str] = []
            for kind in ("succeeded", "on-demand"):
                same = [bar for bar in row_bars if bar.kind == kind]
                cells.extend(
                    f'<i class="bar k-{kind} merged" style="{position(start, stop)}" data-outcome="{kind}" '
                    f'data-bars="{count}" title="{count} attempts: {kind}, {_seconds(stop - start)}"></i>'
                    for start, stop, count in _union(same)
                )
            cells.extend(bar_html(bar) for bar in row_bars if bar.kind in ("interrupted", "failed"))
            items_attr = f"{group.start}-{group.stop - 1}"
            extra = f' data-failed-items="{",".join(map(str, failed))}"' if failed else ""
        else:
            label = f"item {group.start}"
            cells = [bar_html(bar) for bar in row_bars]
            items_attr, extra = str(group.start), ""
        rows.append(
            f'<div class="row row-{state}" data-items="{items_attr}" data-row-status="{state}"{extra}>'
            f'<span class="label">{_text(label)}</span><span class="lane">{"".join(cells)}</span></div>'
        )
    ticks = "".join(
        f'<span class="tick" style="left:{fraction * 100:.0f}%">{_text(_seconds(span * fraction))}</span>'
        for fraction in (0, 0.25, 0.5, 0.75, 1)
    )
    note = (
        f"{total} items in {len(groups)} rows of {len(groups[0])}; succeeded attempts of a row are merged "
        "into the spans they cover, every interrupted or failed attempt has its own bar."
        if grouped
        else "One row per item, one bar per task attempt from launch to stop."
    )
    note += f" 0 s is the first launch, {_utc(t0)}."
    return (
        f'<section id="timeline"><h2>Timeline</h2><div class="legend">{legend}</div>'
        f'<p class="note">{_text(note)} Hover a bar for details.</p>'
        f'<div class="chart" data-grouped="{str(grouped).lower()}">{"".join(rows)}'
        f'<div class="row axis"><span class="label"></span><span class="lane">{ticks}</span></div></div>'
        "</section>"
    )


_STYLE = """
:root{--ok:#2e9d57;--od:#2f6fd6;--int:#f0a020;--fail:#d63b3b;--ink:#1d2430;--mute:#6b7380;--line:#e3e6ea}
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--ink);margin:0 auto;
max-width:1200px;padding:16px 24px 40px}header{display:flex;align-items:center;gap:14px}
h1{font-size:20px;margin:8px 0}
h2{font-size:16px;margin:26px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
code,pre,.log{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.status{padding:3px 10px;border-radius:12px;font-weight:600;color:#fff;background:var(--mute)}
.status-succeeded{background:var(--ok)}
.status-failed,.status-timed_out,.status-aborted{background:var(--fail)}
.tiles{display:flex;flex-wrap:wrap;gap:8px;margin:10px 0}
.tile{border:1px solid var(--line);border-radius:6px;padding:6px 12px;min-width:110px}
.tile b{display:block;font-size:20px}.tile span{color:var(--mute);font-size:12px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}dt{color:var(--mute)}
dd{margin:0;overflow-wrap:anywhere}.error{color:var(--fail);font-weight:600}
.note{color:var(--mute);font-size:12px}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top;
overflow-wrap:anywhere}.cost{width:auto}.usd{text-align:right;font-variant-numeric:tabular-nums}
.total th,.total td{font-weight:700}pre{background:#f6f7f9;padding:10px;overflow:auto;max-height:420px}
.legend{display:flex;flex-wrap:wrap;gap:14px;margin:6px 0}.key{cursor:pointer;user-select:none}
.swatch{display:inline-block;width:14px;height:10px;border-radius:2px;margin:0 5px 0 3px}
.k-succeeded{background:var(--ok)}.k-on-demand{background:var(--od)}.k-interrupted{background:var(--int)}
.k-failed{background:var(--fail)}.chart{border:1px solid var(--line);border-radius:6px;padding:6px 0}
.row{display:flex;align-items:center;height:18px}.row:hover{background:#f3f5f8}
.label{flex:0 0 120px;padding:0 8px;font-size:11px;color:var(--mute);text-align:right;white-space:nowrap}
.row-failed .label{color:var(--fail);font-weight:600}
.lane{position:relative;flex:1;height:100%;margin-right:34px}
.bar{position:absolute;top:3px;height:12px;border-radius:2px;min-width:2px}.bar.merged{opacity:.8}
.axis{height:22px}
.tick{position:absolute;top:4px;font-size:11px;color:var(--mute);transform:translateX(-50%);
white-space:nowrap}.tick:first-child{transform:none}.tick:last-child{transform:translateX(-100%)}
.failures td:first-child,.failures th:first-child{white-space:nowrap;width:1%}.hidden-kind{display:none}
"""

# Legend checkboxes show or hide one kind of bar.
_SCRIPT = """
document.querySelectorAll('.legend input[data-kind]').forEach(function (box) {
  box.addEventListener('change', function () {
    document.querySelectorAll('.chart .k-' + box.dataset.kind).forEach(function (bar) {
      bar.classList.toggle('hidden-kind', !box.checked);
    });
  });
});
"""
