"""The results file (JSON), the Markdown table and, when matplotlib is installed, PNG plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write(results: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` (and ``<stem>-*.png``); return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.json", out_dir / f"{stem}.md"]
    paths[0].write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    paths[1].write_text(markdown(results), encoding="utf-8")
    paths.extend(_plots(results, out_dir, stem))
    return paths


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _pq(summary: dict[str, Any]) -> str:
    return f"{summary['p50_ms']}/{summary['p99_ms']}"


def _each(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in values.items())


def _hop_rows(hop: dict[str, Any]) -> list[str]:
    key = next(k for k in hop["gateway"] if k.startswith("open_"))
    ratios = hop["ratios"]
    latency = {n: _pq(hop[n][key]) for n in ("gateway", "room", "fastapi", "starlette")}
    cpu = {n: hop[n]["cpu_ms_per_request"][n] for n in ("gateway", "room", "fastapi", "starlette")}
    rps = {n: hop[n]["closed_16"]["rps"] for n in ("gateway", "room", "fastapi", "starlette")}
    return [
        _row(
            f"GET rooms p50/p99, {key[5:]}",
            f"gateway {latency['gateway']}, room {latency['room']}",
            f"FastAPI {latency['fastapi']}, Starlette {latency['starlette']}",
            f"hop adds {ratios['hop_added_p50_ms']} p50, {ratios['hop_added_p99_ms']} p99",
        ),
        _row(
            "CPU ms per GET",
            f"gateway {cpu['gateway']}, room {cpu['room']}",
            f"FastAPI {cpu['fastapi']}, Starlette {cpu['starlette']}",
            f"room {ratios['room_cpu_vs_bare_fastapi']}x FastAPI",
        ),
        _row(
            "closed loop, 16 connections (rps)",
            f"gateway {rps['gateway']}, room {rps['room']}",
            f"FastAPI {rps['fastapi']}, Starlette {rps['starlette']}",
            "",
        ),
    ]


def markdown(results: dict[str, Any]) -> str:
    """The results as one Markdown table: figure, measured, baseline, ratio or note."""
    meta = results["meta"]
    figures = results["figures"]
    lines = [
        f"# Benchmarks, {meta['started_at']}",
        "",
        f"{meta['mode']} run on {meta['cpus']} CPUs, database {meta['db']}; load average before "
        f"{meta['load_before']}, after {meta['load_after']}. Latencies in ms.",
        "",
        _row("figure", "measured", "baseline", "ratio / note"),
        _row("---", "---", "---", "---"),
    ]
    if hop := figures.get("hop"):
        lines += _hop_rows(hop)
    if brk := figures.get("open_breaker"):
        measured = f"gateway {_pq(brk['gateway'])}, direct {_pq(brk['room'])}"
        lines.append(
            _row("open-breaker 503 p50/p99", measured, f"the {brk['replaces_timeout_ms']} ms timeout", "")
        )
    for level, r in figures.get("reservations", {}).items():
        lines.append(
            _row(
                f"reserve + cancel cycles, {level}",
                f"{r['rps']} /s, create p50/p99 {_pq(r)}",
                f"CPU ms per cycle: {_each(r['cpu_ms_per_cycle'])}",
                f"statuses {r['statuses']}",
            )
        )
    if booked := figures.get("booked_after_201"):
        raw = booked["raw_kafka_produce_consume"]
        lines.append(
            _row("201 → inventory booked p50/p99", _pq(booked["applied"]), f"raw Kafka {_pq(raw)}", "")
        )
    if auth := figures.get("signup_login"):
        measured = f"{auth['signup']['p50_ms']} / {auth['login']['p50_ms']}"
        jwks = f"JWKS GET {auth['jwks_get']['p50_ms']}"
        lines.append(_row("sign-up / login p50", measured, jwks, f"hash {auth['hash']}"))
    if quiet := figures.get("idle"):
        total = f"services total {quiet['services_total_percent']}%"
        lines.append(_row("idle CPU, % of one core", _each(quiet["cpu_percent_of_one_core"]), "", total))
        lines.append(_row("RSS MiB", _each(quiet["rss_mib"]), "", ""))
    for name, error in results.get("errors", {}).items():
        lines.append(_row(name, "FAILED", "", " ".join(error.split())))
    return "\n".join(lines) + "\n"


def _plots(results: dict[str, Any], out_dir: Path, stem: str) -> list[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    paths: list[Path] = []
    if hop := results["figures"].get("hop"):
        key = next(k for k in hop["gateway"] if k.startswith("open_"))
        names = ["gateway", "room", "fastapi", "starlette"]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        xs = range(len(names))
        ax.bar([x - 0.2 for x in xs], [hop[n][key]["p50_ms"] for n in names], 0.4, label="p50")
        ax.bar([x + 0.2 for x in xs], [hop[n][key]["p99_ms"] for n in names], 0.4, label="p99")
        ax.set_xticks(list(xs), names)
        ax.set_ylabel("ms")
        ax.set_title(f"GET rooms, {key[5:]}")
        ax.legend()
        paths.append(out_dir / f"{stem}-hop.png")
        fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
        plt.close(fig)
    if res := results["figures"].get("reservations"):
        levels = list(res)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([int(level[1:]) for level in levels], [res[level]["rps"] for level in levels], marker="o")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency")
        ax.set_ylabel("reserve + cancel cycles / s")
        paths.append(out_dir / f"{stem}-reservations.png")
        fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
        plt.close(fig)
    return paths
