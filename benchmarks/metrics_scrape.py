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
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from patroni_citus.local import pgtree
from patroni_citus.template import default_scripts_dir

CLI = str(default_scripts_dir() / "patroni-citus")
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
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--citus", choices=("auto", "real", "standin"), default="auto")
    parser.add_argument("--pg-bindir", default=os.environ.get("PATRONI_CITUS_PG_BINDIR"))
    parser.add_argument("--port-base", type=int, default=53000)
    args = parser.parse_args()
    bindir = Path(args.pg_bindir) if args.pg_bindir else pgtree.find_system_bindir()
    citus = args.citus
    if citus == "auto":
        citus = "real" if pgtree.citus_available(bindir) else "standin"
    base = Path(tempfile.mkdtemp(prefix="patroni-citus-bench-metrics-"))
    os.chmod(base, 0o755)  # noqa: S103 - the postgres OS user must traverse it
    up = [CLI, "local", "up", "--base-dir", str(base), "--workers", str(args.workers)]
    up += ["--members", str(args.members), "--port-base", str(args.port_base), "--citus", citus]
    up += ["--pg-bindir", str(bindir), "--metrics"]
    try:
        groups = f"1+{args.workers} groups x {args.members} members"
        print(f"starting a formation of {groups} (Citus: {citus}) ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        subprocess.run(up, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"formation up in {time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
        state = json.loads((base / "formation.json").read_text())
        url = f"http://127.0.0.1:{args.port_base + 90}/metrics"
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
        proc_rss = vm_rss(int(state["metrics_pid"]))
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
    finally:
        subprocess.run(
            [CLI, "local", "down", "--base-dir", str(base), "--purge"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


if __name__ == "__main__":
    sys.exit(main())
