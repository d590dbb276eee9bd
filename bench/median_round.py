#!/usr/bin/env python3
"""One cell of `run_cpu_bench.sh --rounds R`: BASE.r1.json .. BASE.rR.json (one bench JSON line
each, the rounds that succeeded) -> BASE.json, the median round by tokens/s, with every round's
tokens/s in "rounds_tokens_per_s" and their count in "rounds". Exit 1 when no round succeeded."""
import json
import os
import sys


def main() -> int:
    base, rounds = sys.argv[1], int(sys.argv[2])
    lines = []
    for r in range(1, rounds + 1):
        path = f"{base}.r{r}.json"
        if os.path.exists(path):
            with open(path) as f:
                lines.append(json.load(f))
    if not lines:
        return 1
    lines.sort(key=lambda d: d["tokens_per_s"])
    pick = dict(lines[(len(lines) - 1) // 2])
    pick["rounds_tokens_per_s"] = [d["tokens_per_s"] for d in lines]
    pick["rounds"] = len(lines)
    tmp = f"{base}.json.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(pick) + "\n")
    os.replace(tmp, f"{base}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
