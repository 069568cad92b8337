"""Benchmark: how fast `patroni-citus status` answers on a formation of 1 coordinator + 4 worker groups.

Target (issue 4): well under a second. Starts a local formation (real Citus where installed, else
the labelled stand-in), runs the CLI as a whole process RUNS times, prints min/median/max, and
always tears the formation down.

    python benchmarks/status_latency.py [--runs 15] [--members 2] [--citus auto|real|standin]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from patroni_citus.local import pgtree
from patroni_citus.template import default_scripts_dir

CLI = str(default_scripts_dir() / "patroni-citus")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--citus", choices=("auto", "real", "standin"), default="auto")
    parser.add_argument("--pg-bindir", default=os.environ.get("PATRONI_CITUS_PG_BINDIR"))
    parser.add_argument("--port-base", type=int, default=52000)
    args = parser.parse_args()
    bindir = Path(args.pg_bindir) if args.pg_bindir else pgtree.find_system_bindir()
    citus = args.citus
    if citus == "auto":
        citus = "real" if pgtree.citus_available(bindir) else "standin"
    base = Path(tempfile.mkdtemp(prefix="patroni-citus-bench-"))
    os.chmod(base, 0o755)  # noqa: S103 - the postgres OS user must traverse it
    up = [
        CLI,
        "local",
        "up",
        "--base-dir",
        str(base),
        "--workers",
        str(args.workers),
        "--members",
        str(args.members),
        "--port-base",
        str(args.port_base),
        "--citus",
        citus,
        "--pg-bindir",
        str(bindir),
    ]
    try:
        print(
            f"starting a formation of 1+{args.workers} groups x {args.members} members (Citus: {citus}) ...",
            file=sys.stderr,
            flush=True,
        )
        started = time.monotonic()
        subprocess.run(up, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"formation up in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
        config = str(base / "group0" / "member0" / "patroni.yml")
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
    finally:
        subprocess.run(
            [CLI, "local", "down", "--base-dir", str(base), "--purge"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


if __name__ == "__main__":
    sys.exit(main())
