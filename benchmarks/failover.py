"""Benchmark: failover drills with this project's callbacks vs Patroni's built-in Citus mode.

For each mode, starts a local formation (coordinator + worker group(s), --members each (2), synchronous
mode, the same Patroni ttl/loop_wait), runs every scenario --runs times under a 50 ms write load, a
read load, and a read load with citus.use_secondary_nodes = 'always' (the groups' secondaries),
prints min/median/max per figure and the callbacks/builtin ratio of medians, and tears down.
coordinator-pooler-switchover runs its load through a PgBouncer (the formation is started with
--pooler for it): in callbacks mode through `patroni-citus switchover --group 0` (before_stop pauses
PgBouncer), in built-in mode through Patroni's REST switchover with the same watcher repointing
PgBouncer but nothing pausing it. Its max_latency_s is the longest pause clients saw.

    python benchmarks/failover.py [--runs 3] [--scenario worker-kill ...] [--mode callbacks|builtin]
                                  [--workers 1] [--members 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import bench_formation

from patroni_citus import drill
from patroni_citus.local import formation
from patroni_citus.local.layout import FormationLayout


def report(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def run_mode(mode: str, args: argparse.Namespace, bindir: Path, citus: str) -> dict[str, dict[str, object]]:
    base = bench_formation.new_base_dir(f"patroni-citus-failover-{mode}-")
    layout = FormationLayout(
        str(base),
        "bench",
        args.workers,
        args.members,
        args.port_base,
        synchronous=True,
        mode=mode,
        pooler=drill.POOLED in args.scenarios,
    )
    try:
        report(f"== {mode}: starting a formation (Citus: {citus})")
        formation.up(layout, citus, bindir, report)
        return drill.run_drill(base, args.scenarios, args.runs, report)
    finally:
        formation.down(base, purge=True, report=report)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scenario", dest="scenarios", action="append", choices=drill.SCENARIOS)
    parser.add_argument("--mode", dest="modes", action="append", choices=("callbacks", "builtin"))
    bench_formation.add_formation_options(parser, workers=1, members=2, port_base=54000)
    parser.add_argument("--json", dest="json_path", type=Path)
    args = parser.parse_args()
    args.scenarios = args.scenarios or list(drill.SCENARIOS)
    bindir, citus = bench_formation.postgres(args)
    results = {mode: run_mode(mode, args, bindir, citus) for mode in (args.modes or ["callbacks", "builtin"])}
    print(
        f"\nFailover drills, Citus {citus}, {args.members} members per group, "
        f"{args.runs} run(s) each; median (min-max)\n"
    )
    print(drill.format_table(results))
    if {"callbacks", "builtin"} <= results.keys():
        print("\nRatio of medians, callbacks / builtin (lower is better for every figure):\n")
        print("| scenario | " + " | ".join(drill.FIGURES) + " |")
        print("|---|" + "---|" * len(drill.FIGURES))
        for scenario in args.scenarios:
            cells = []
            for name in drill.FIGURES:
                ours = results["callbacks"][scenario][name]["median"]  # type: ignore[index]
                theirs = results["builtin"][scenario][name]["median"]  # type: ignore[index]
                if ours is None or theirs is None:
                    cells.append("n/a")
                else:
                    cells.append(f"{ours / theirs:.2f}" if theirs else ("=" if ours == theirs else "inf"))
            print(f"| {scenario} | " + " | ".join(cells) + " |")
    if args.json_path is not None:
        rows = [
            {"scenario": scenario, "mode": mode, **figures}
            for mode, scenarios in results.items()
            for scenario, figures in scenarios.items()
        ]
        args.json_path.write_text(json.dumps(rows, indent=2))
        report(f"wrote {args.json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
