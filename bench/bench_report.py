"""The benchmark's printed report: Markdown tables (pasted into docs/performance.md as they
are) and whether the issue's targets were met."""

from __future__ import annotations

import math
from typing import Any

import queue_wait
from bench_figures import CPU_GROUPS, DIRECT, KUWA, LABELS, TARGETS, ratio_rows, worker_split

# Targets from the issue.
ADDED_TTFT_P50_MAX = 0.001
ADDED_TTFT_P99_MAX = 0.005
TTFT_LEVEL = 100
RATIO_MIN = 0.5
RATIO_LEVEL = 1000
IDLE_STREAM_BYTES_MAX = 20_000  # 20 KB (1 KB = 1,000 bytes)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def times(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def kb(n: float | None) -> str:
    return "-" if n is None or math.isnan(n) else f"{n / 1000:,.1f} KB"


def mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def _slash(values: list[str]) -> str:
    return " / ".join(values)


def _each(level: dict[str, Any], key: str, fmt: str) -> str:
    """One figure of every target at a level, D / K1 / K2."""
    return _slash([fmt.format(level[t][key]) for t in TARGETS])


def _errors(summary: dict[str, Any]) -> str:
    return f"{sum(summary['errors'].values())}/{summary['requests']}"


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def report(results: dict[str, Any]) -> str:
    levels = results["levels"]
    all3 = _slash([LABELS[t] for t in TARGETS])
    k12 = _slash([LABELS[t] for t in KUWA])
    out = [
        "TTFT over all requests (each level opens with every stream sending at once); "
        "D = direct, K1 = Kuwa with one gateway process, K2 = Kuwa with a gateway of two "
        "worker processes; added = K - D:",
        "",
        f"| streams | requests {all3} | errors {all3} | TTFT p50 ms {all3} | added p50 ms {k12} "
        f"| TTFT p99 ms {all3} | added p99 ms {k12} |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in levels:
        vs = lv["vs_direct"]
        out.append(
            f"| {lv['streams']:,} "
            f"| {_each(lv, 'requests', '{:,}')} "
            f"| {_slash([_errors(lv[t]) for t in TARGETS])} "
            f"| {_slash([ms(lv[t]['ttft_p50_s']) for t in TARGETS])} "
            f"| **{_slash([ms(vs[t]['added_ttft_p50_s']) for t in KUWA])}** "
            f"| {_slash([ms(lv[t]['ttft_p99_s']) for t in TARGETS])} "
            f"| **{_slash([ms(vs[t]['added_ttft_p99_s']) for t in KUWA])}** |"
        )
    out += [
        "",
        "Kuwa ÷ direct (tokens/s: higher is better; TTFT and CPU per token: lower is better):",
        "",
        f"| streams | tokens/s {all3} | tokens/s {k12} ÷ D | TTFT p50 {k12} ÷ D "
        f"| TTFT p99 {k12} ÷ D | CPU per token {k12} ÷ D |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    rows = ratio_rows(levels)
    for lv in levels:
        mine = [r for r in rows if r["streams"] == lv["streams"]]
        out.append(
            f"| {lv['streams']:,} "
            f"| {_each(lv, 'tokens_per_s', '{:,.0f}')} "
            f"| **{_slash([times(r['tokens_per_s']) for r in mine])}** "
            f"| {_slash([times(r['ttft_p50']) for r in mine])} "
            f"| {_slash([times(r['ttft_p99']) for r in mine])} "
            f"| {_slash([times(r['cpu_per_token']) for r in mine])} |"
        )
    later = [lv for lv in levels if all(lv[t]["ttft_later_n"] for t in TARGETS)]
    if later:
        out += [
            "",
            "TTFT of each stream's later requests only (sent while the other streams are "
            "mid-answer, without the opening burst):",
            "",
            f"| streams | requests {all3} | TTFT p50 ms {all3} | added p50 ms {k12} "
            f"| TTFT p99 ms {all3} | added p99 ms {k12} |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for lv in later:
            vs = lv["vs_direct"]
            out.append(
                f"| {lv['streams']:,} "
                f"| {_each(lv, 'ttft_later_n', '{:,}')} "
                f"| {_slash([ms(lv[t]['ttft_later_p50_s']) for t in TARGETS])} "
                f"| **{_slash([ms(vs[t]['added_ttft_later_p50_s']) for t in KUWA])}** "
                f"| {_slash([ms(lv[t]['ttft_later_p99_s']) for t in TARGETS])} "
                f"| **{_slash([ms(vs[t]['added_ttft_later_p99_s']) for t in KUWA])}** |"
            )
    out += _cpu_table(levels)
    out += _chunk_messages(results)
    for burst in results.get("burst") or []:
        out += queue_wait.report_lines(burst)
    if results.get("idle"):
        out += idle_report(results["idle"])
    out += ["", "Targets:"]
    out += ["  " + line for line in targets(results)]
    return "\n".join(out)


def _cpu_table(levels: list[dict[str, Any]]) -> list[str]:
    out = [
        "",
        "CPU time per 1,000 tokens streamed, by process (gateway: all gateway processes):",
        "",
        "| streams | run | gateway | executor | redis | direct server | client | total |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for lv in levels:
        for target in TARGETS:
            per = lv[target]["cpu_s_per_1k_tokens"]
            cells = " | ".join(f"{1000 * per[g]:.0f} ms" for g in CPU_GROUPS)
            out.append(
                f"| {lv['streams']:,} | {LABELS[target]} | {cells} | {1000 * per['total']:.0f} ms |"
            )
    splits = [
        f"{lv['streams']:,} streams "
        + " / ".join(f"{100 * s:.0f} %" for s in worker_split(lv["kuwa2"]))
        for lv in levels
        if worker_split(lv["kuwa2"])
    ]
    if splits:
        out += ["", "K2's gateway CPU by worker: " + "; ".join(splits)]
    return out


def _chunk_messages(results: dict[str, Any]) -> list[str]:
    if not results["levels"]:  # only a burst or the idle streams were measured
        return []
    top = results["levels"][-1]
    rb = results["redis_benchmark"]
    out = ["", f"Chunk messages during the {top['streams']:,}-stream Kuwa rounds:"]
    for target in KUWA:
        vs, wall = top["vs_direct"][target], top[target]["wall_s"]
        line = (
            f"  {LABELS[target]}: {vs['chunk_messages']:,} PUBLISH calls in {wall:.2f} s = "
            f"{vs['chunk_messages_per_s']:,.0f} messages/s "
            f"({vs['tokens_per_chunk_message']:.1f} tokens per message)"
        )
        if "rps" in rb:
            line += f", {100 * vs['chunk_messages_per_s'] / rb['rps']:.0f} % of redis-benchmark's"
        out.append(line)
    if "rps" in rb:
        out.append(f"  `{rb['command']}`: {rb['rps']:,.0f} PUBLISH/s")
    else:
        out.append(f"  redis-benchmark: {rb['error']}")
    return out


def idle_report(idle: dict[str, Any]) -> list[str]:
    per = idle["per_stream_bytes"]
    out = [
        "",
        f"Idle streams: {idle['opened']:,} of {idle['streams']:,} open "
        f"(errors {idle['errors'] or 0}; opened in {idle['open_s']:.1f} s; "
        f"{idle['jobs_running']:,} jobs running on the executor, {idle['job_channels']:,} "
        f"job channels subscribed; gateway open files {idle['open']['gateway_open_files']:,} "
        f"of a limit of {idle['gateway_open_files_limit']:,}):",
        "",
        "| process | measure | before | with the streams open | after closing them | per stream |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for proc in ("gateway", "executor"):
        for measure in ("rss", "pss", "uss"):
            if measure not in idle["before"][proc]:
                continue
            values = [idle[when][proc].get(measure, 0) for when in ("before", "open", "after")]
            out.append(
                f"| {proc} | {measure.upper()} | {' | '.join(mb(v) for v in values)} "
                f"| **{kb(per[proc].get(measure))}** |"
            )
    values = [idle[when]["redis"]["used_memory"] for when in ("before", "open", "after")]
    out.append(
        f"| redis | used_memory | {' | '.join(mb(v) for v in values)} "
        f"| {kb(per['redis'].get('used_memory'))} |"
    )
    out.append(
        f"\n  kernel TCP buffers (whole machine, both ends): "
        f"{kb(per['tcp_buffers_both_ends'])} per stream; gateway RSS left after closing: "
        f"{kb(idle['left_after_close_per_stream_bytes'].get('rss'))} per stream"
    )
    if not (idle["all_subscribed"] and idle["all_running"] and idle["all_closed_after"]):
        out.append(
            "  WARNING: not every stream was confirmed subscribed/running/closed in time "
            f"(subscribed {idle['all_subscribed']}, running {idle['all_running']}, "
            f"closed {idle['all_closed_after']}; when 'after' was read: "
            f"{idle.get('left_after_close')})"
        )
    return out


def targets(results: dict[str, Any]) -> list[str]:
    by_streams = {lv["streams"]: lv for lv in results["levels"]}
    lines = []
    lv = by_streams.get(TTFT_LEVEL)
    for target in KUWA:
        name = LABELS[target]
        if lv is None:
            lines.append(f"{name} added TTFT: not measured (no {TTFT_LEVEL}-stream level)")
            continue
        vs = lv["vs_direct"][target]
        p50, p99 = vs["added_ttft_p50_s"], vs["added_ttft_p99_s"]
        lines.append(
            f"{name} added TTFT at {TTFT_LEVEL} streams: p50 {ms(p50)} ms (target <= "
            f"{ms(ADDED_TTFT_P50_MAX)}): {_verdict(p50 <= ADDED_TTFT_P50_MAX)}; p99 {ms(p99)} "
            f"ms (target <= {ms(ADDED_TTFT_P99_MAX)}): {_verdict(p99 <= ADDED_TTFT_P99_MAX)}"
            f"  (later requests only: p50 {ms(vs['added_ttft_later_p50_s'])}, "
            f"p99 {ms(vs['added_ttft_later_p99_s'])})"
        )
    lv = by_streams.get(RATIO_LEVEL)
    for target in KUWA:
        name = LABELS[target]
        if lv is None:
            lines.append(f"{name} tokens/s ratio: not measured (no {RATIO_LEVEL}-stream level)")
            continue
        r = lv["vs_direct"][target]["tokens_per_s_ratio"]
        lines.append(
            f"{name} tokens/s ÷ {LABELS[DIRECT]} at {RATIO_LEVEL:,} streams {100 * r:.0f} % "
            f"(target >= {100 * RATIO_MIN:.0f} %): {_verdict(r >= RATIO_MIN)}"
        )
        failed = sum(lv[target]["errors"].values())
        lines.append(
            f"{name} errors at {RATIO_LEVEL:,} streams {_errors(lv[target])} (target 0): "
            f"{_verdict(failed == 0)}"
        )
    lines += queue_wait.targets(results.get("burst"))
    idle = results.get("idle")
    if not idle or not idle["opened"]:
        lines.append("gateway memory per idle stream: not measured")
    else:
        rss = idle["per_stream_bytes"]["gateway"].get("rss", math.nan)
        lines.append(
            f"gateway memory per idle stream (RSS, {idle['opened']:,} streams) {kb(rss)} "
            f"(target <= {kb(IDLE_STREAM_BYTES_MAX)}): {_verdict(rss <= IDLE_STREAM_BYTES_MAX)}"
        )
    return lines
