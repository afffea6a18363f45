"""``python -m benchmarks [--quick] [--only NAME ...]``: measure, then print one table.

Each figure starts the real processes it needs on free loopback ports and
stops them before the next one starts, so the figures do not disturb each
other.  The exit status is 0 when every figure was measured, goals met or
not (they are reported, not enforced), and 1 when a measurement failed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time
import traceback

from . import (
    bff_overhead,
    cold_start,
    dpop_overhead,
    peers_compare,
    redis_scale,
    service_tokens,
    sign_in,
    token_validation,
)
from .support import Result, Scale

#: (names selectable with --only, runner).  sign_in yields two rows, peers_compare three.
FIGURES = [
    (("api", "peers", "peers-new"), peers_compare.run),
    (("validation",), token_validation.run),
    (("sign-in", "session"), sign_in.run),
    (("service",), service_tokens.run),
    (("cold-start",), cold_start.run),
    (("bff",), bff_overhead.run),
    (("dpop",), dpop_overhead.run),
    (("redis-memory", "redis-page", "api-workers"), redis_scale.run),
]
ORDER = ["api", "validation", "sign-in", "session", "service", "cold-start", "bff", "peers", "peers-new"]
ORDER += ["dpop", "redis-memory", "redis-page", "api-workers"]


def machine() -> str:
    """nproc, CPU model and RAM, as one line."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ram = ""
    try:
        with open("/proc/meminfo") as info:
            kib = int(next(line.split()[1] for line in info if line.startswith("MemTotal")))
            ram = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} CPU(s), {cpu}{ram}, Python {platform.python_version()}"


def print_table(results: list[Result], failures: dict[str, str], quick: bool) -> None:
    by_key = {r.key: r for r in results}
    rows = []
    for number, key in enumerate(ORDER, 1):
        if key in by_key:
            r = by_key[key]
            met = "-" if r.met is None else ("met" if r.met else "MISSED")
            rows.append((str(number), r.title, r.figure, r.goal, met))
        elif key in failures:
            rows.append((str(number), key, "not measured", "", "FAILED"))
    headers = ("#", "figure", "result", "goal", "")
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join("-" * w for w in widths)
    print()
    print(
        f"Benchmarks{' (--quick: smoke run, figures not meaningful)' if quick else ''}: "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    print(f"Machine: {machine()}")
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)))
    print(line)
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)))
    print(line)
    print("\nDetails and how each figure is measured:")
    for number, key in enumerate(ORDER, 1):
        if key in by_key:
            r = by_key[key]
            print(f"\n{number}. {r.title}")
            for detail in r.details:
                print(f"     {detail}")
            print(f"   how: {r.how}")
        elif key in failures:
            print(f"\n{number}. {key}: FAILED\n   {failures[key]}")
    print(flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny durations and counts (for the test suite); figures not meaningful",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=ORDER,
        metavar="NAME",
        help=f"measure only these figures ({', '.join(ORDER)})",
    )
    args = parser.parse_args(argv)
    scale = Scale(quick=args.quick)
    wanted = set(args.only or ORDER)
    results: list[Result] = []
    failures: dict[str, str] = {}
    started = time.monotonic()
    for names, runner in FIGURES:
        if not wanted.intersection(names):
            continue
        print(f"measuring: {', '.join(names)} ...", file=sys.stderr, flush=True)
        try:
            outcome = runner(scale)
        except Exception as error:
            traceback.print_exc()
            for name in names:
                failures[name] = f"{type(error).__name__}: {error}"
            continue
        for result in outcome if isinstance(outcome, tuple) else (outcome,):
            if result.key in wanted:
                results.append(result)
    print_table(results, failures, args.quick)
    print(f"(measured in {time.monotonic() - started:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
