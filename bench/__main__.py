"""``python -m bench [--smoke] [--db sqlite|postgres] [--only FIGURE ...] [--output DIR]``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report
from bench.figures import FIGURES, Bench
from bench.procstat import load_average
from stack.runner import Stack
from stack.testing import running_stack

RESULTS_DIR = Path(__file__).resolve().parent / "results"

# What the benchmark's stack changes from `make up`: nothing that makes it faster, only what
# would refuse the load (one client address sends everything).
ENV_OVERRIDES = {"GATEWAY_RATE_LIMIT": "10000000/minute", "AUTH_LOGIN_ADDRESS_MAX_FAILURES": "100000"}


def bench_for(stack: Stack, *, smoke: bool, say: Any = print) -> Bench:
    """The settings of a full run, or of the smoke run (every figure for a few seconds)."""
    if smoke:
        return Bench(stack, rate=20, duration=1.5, concurrency=(1, 4), samples=5, idle_window=2, say=say)
    return Bench(stack, say=say)


async def run_figures(b: Bench, only: Sequence[str] = ()) -> dict[str, Any]:
    """Run the figures in order; one that fails is reported as failed, the others still run."""
    figures: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, figure in FIGURES.items():
        if only and name not in only:
            continue
        b.say(f"{name} …")
        began = time.monotonic()
        try:
            figures[name] = await figure(b)
        except Exception as exc:  # a benchmark run reports every figure it could measure
            errors[name] = f"{type(exc).__name__}: {exc}"
            b.say(f"  {name} FAILED: {errors[name]}\n{traceback.format_exc()}")
        else:
            b.say(f"  {name}: {time.monotonic() - began:.1f} s")
    return {"figures": figures, "errors": errors}


def measure(
    stack: Stack, *, smoke: bool, db: str, only: Sequence[str] = (), say: Any = print
) -> dict[str, Any]:
    """Every figure on a running ``stack``, with the run's conditions."""
    started = datetime.now(UTC)
    load_before = load_average()
    outcome = asyncio.run(run_figures(bench_for(stack, smoke=smoke, say=say), only))
    return {
        "meta": {
            "started_at": started.isoformat(timespec="seconds"),
            "mode": "smoke" if smoke else "full",
            "db": db,
            "cpus": os.cpu_count(),
            "load_before": load_before,
            "load_after": load_average(),
            "python": sys.version.split()[0],
        },
        **outcome,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="every figure for a few seconds")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--only", nargs="*", default=(), choices=sorted(FIGURES), help="default: all")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        print(f"starting a stack on free ports ({args.db}) …", flush=True)
        began = time.monotonic()
        with running_stack(Path(tmp), ENV_OVERRIDES, timeout=300, db=args.db) as stack:
            print(f"stack green in {time.monotonic() - began:.1f} s", flush=True)
            results = measure(stack, smoke=args.smoke, db=args.db, only=args.only)
    stem = datetime.now(UTC).strftime("%Y-%m-%dT%H%M%S") + ("-smoke" if args.smoke else "") + f"-{args.db}"
    paths = report.write(results, args.output, stem)
    print()
    print(report.markdown(results))
    print("written: " + ", ".join(str(p) for p in paths))
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
