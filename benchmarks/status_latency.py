"""Benchmark: how fast `patroni-citus status` answers on a formation of 1 coordinator + 4 worker groups.

Target (issue 4): well under a second. Starts a local formation (real Citus where installed, else
the labelled stand-in), runs the CLI as a whole process RUNS times, prints min/median/max, and
always tears the formation down.

    python benchmarks/status_latency.py [--runs 15] [--members 2] [--citus auto|real|standin]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import bench_formation

from patroni_citus.local import commands

CLI = commands.cli_path()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    bench_formation.add_formation_options(parser, workers=4, members=2, port_base=52000)
    args = parser.parse_args()
    bindir, citus = bench_formation.postgres(args)
    with bench_formation.running_formation(args, bindir, citus, "patroni-citus-bench-") as layout:
        config = str(layout.member(0, 0).config_path)
        timings = []
        for run in range(args.runs + 1):
            began = time.perf_counter()
            result = subprocess.run([CLI, "status", "-c", config, "--json"], capture_output=True, check=False)
            elapsed = time.perf_counter() - began
            if result.returncode != 0:
                print(f"status exited {result.returncode}: {result.stderr.decode()[:300]}", file=sys.stderr)
                return 1
            if run:  # the first run warms caches and is not counted
                timings.append(elapsed)
            print(f"  run {run}/{args.runs}: {elapsed * 1000:.0f} ms", file=sys.stderr, flush=True)
        members = (args.workers + 1) * args.members
        print(f"\n`patroni-citus status --json` on 1+{args.workers} groups, {members} members, Citus {citus}")
        print("| runs | min ms | median ms | max ms | target |")
        print("|---|---|---|---|---|")
        print(
            f"| {len(timings)} | {min(timings) * 1000:.0f} | {statistics.median(timings) * 1000:.0f} "
            f"| {max(timings) * 1000:.0f} | < 1000 |"
        )
        return 0


if __name__ == "__main__":
    sys.exit(main())
