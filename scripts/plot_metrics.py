#!/usr/bin/python3
"""Plot a `modernbert pretrain` metrics log (OUTPUT_DIR/metrics.jsonl) to a PNG: training loss (and held-out
loss where logged) and the learning rate against tokens seen.

    plot_metrics.py METRICS.jsonl [--out loss.png]

Needs python3-matplotlib (Debian: apt-get install python3-matplotlib).
"""

import argparse
import json
import sys


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("metrics", help="metrics.jsonl written by modernbert pretrain")
    ap.add_argument("--out", default="metrics.png", help="output PNG")
    a = ap.parse_args(argv)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_metrics.py: matplotlib is missing (apt-get install python3-matplotlib)")
    rows = []
    with open(a.metrics) as f:
        for ln, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as e:
                    sys.exit("%s:%d: invalid JSON: %s" % (a.metrics, ln, e))
    # A resumed run appends {"event": "resume"} and re-logs the steps after its checkpoint: keep the
    # last record of each step, in step order.
    by_step = {}
    for r in rows:
        if "event" not in r and "step" in r:
            by_step[r["step"]] = r
    rows = [by_step[k] for k in sorted(by_step)]
    if not rows:
        sys.exit("%s: no metrics" % a.metrics)
    tok = [r["tokens"] for r in rows if r.get("loss") is not None]
    loss = [r["loss"] for r in rows if r.get("loss") is not None]
    ev = [(r["tokens"], r["eval_loss"]) for r in rows if r.get("eval_loss") is not None]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.plot(tok, loss, label="train loss", lw=1)
    if ev:
        ax1.plot([t for t, _ in ev], [v for _, v in ev], "o-", label="held-out loss")
    skipped = [r["tokens"] for r in rows if r.get("skipped")]
    for t in skipped:
        ax1.axvline(t, color="red", alpha=0.3, lw=0.5)
    ax1.set_ylabel("MLM loss")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot([r["tokens"] for r in rows], [r["lr"] for r in rows], color="tab:orange")
    ax2.set_ylabel("learning rate")
    ax2.set_xlabel("tokens")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(a.out, dpi=120)
    print("wrote %s (%d steps)" % (a.out, len(rows)))


if __name__ == "__main__":
    main()
