"""Benchmark: how long one scrape of `patroni-citus metrics` takes on 1 coordinator + 4 worker groups.

Target (issue 15): well under a second. Starts a local formation with `local up --metrics` (real
Citus where installed, else the labelled stand-in), scrapes /metrics RUNS times over HTTP as
Prometheus would (every scrape reads the whole formation: the exporter has no cache), prints
min/median/max and the exporter's resident memory (its own process_resident_memory_bytes and
/proc's VmRSS), and always tears the formation down.

    python benchmarks/metrics_scrape.py [--runs 20] [--workers 4] [--members 2] [--citus auto|real|standin]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
import urllib.request
from pathlib import Path

import bench_formation

from patroni_citus.local.layout import FormationState

MIB = 1024 * 1024


def scrape(url: str) -> tuple[float, str]:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - our own loopback exporter
        body = answer.read().decode()
    return time.perf_counter() - began, body


def sample(body: str, name: str) -> float | None:
    found = re.search(rf"^{re.escape(name)} (\S+)$", body, re.MULTILINE)
    return float(found.group(1)) if found else None


def vm_rss(pid: int) -> int | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return None


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20)
    bench_formation.add_formation_options(parser, workers=4, members=2, port_base=53000)
    args = parser.parse_args()
    bindir, citus = bench_formation.postgres(args)
    groups = f"1+{args.workers} groups x {args.members} members"
    prefix = "patroni-citus-bench-metrics-"
    with bench_formation.running_formation(args, bindir, citus, prefix, "--metrics") as layout:
        state = FormationState.load_existing(layout.base)
        url = f"{layout.metrics_url}/metrics"
        timings, body = [], ""
        for run in range(args.runs + 1):
            elapsed, body = scrape(url)
            if sample(body, "patroni_citus_up") != 1 or sample(body, "patroni_citus_metadata_up") != 1:
                print(f"scrape {run}: the exporter could not read the formation", file=sys.stderr)
                return 1
            if run:  # the first scrape opens the DCS clients and is not counted
                timings.append(elapsed)
            print(f"  scrape {run}/{args.runs}: {elapsed * 1000:.0f} ms", file=sys.stderr, flush=True)
        series = sum(1 for line in body.splitlines() if line.startswith("patroni_citus_"))
        rss = sample(body, "process_resident_memory_bytes")
        proc_rss = vm_rss(state.metrics_pid) if state.metrics_pid else None
        members = (args.workers + 1) * args.members
        print(f"\n`GET /metrics` of `patroni-citus metrics` on {groups} ({members} members), Citus {citus}")
        print("| scrapes | min ms | median ms | max ms | series | exporter RSS MiB | target |")
        print("|---|---|---|---|---|---|---|")
        shown_rss = f"{(rss or 0) / MIB:.0f}" + ("" if proc_rss is None else f" (VmRSS {proc_rss / MIB:.0f})")
        print(
            f"| {len(timings)} | {min(timings) * 1000:.0f} | {statistics.median(timings) * 1000:.0f} "
            f"| {max(timings) * 1000:.0f} | {series} | {shown_rss} | < 1000 ms |"
        )
        return 0


if __name__ == "__main__":
    sys.exit(main())
