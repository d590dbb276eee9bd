#!/usr/bin/python3
"""Summarise run_cpu_bench.sh's raw JSON lines (DIR/raw/{ours,ort,torch}_{a,b,c,d}.json, sgemm.json)
into DIR/results.json and DIR/results.md, and print the markdown table.

    summarize_bench.py DIR

Ratios are ours/peer in tokens/s (from the medians). "% sgemm" = our achieved useful GFLOP/s over
the better sgemm rate of OpenBLAS and oneDNN (each threading itself) measured in the same run. Targets are printed beside the ratios, never
judged here: timings on a shared machine vary, read them with the load averages.
"""
import glob
import json
import os
import sys

DESCR = {"a": "64 x 128", "b": "32 x U[16,512]", "c": "1 x 8192", "d": "8 x 1024"}
TARGETS = {  # (vs ORT, vs PyTorch, % sgemm)
    "a": (1.2, None, 80), "b": (2.0, 3.0, 80), "c": (2.5, None, None), "d": (1.2, None, 80),
}
SYSTEMS = ("ours", "ort", "torch")


def main():
    d = sys.argv[1]
    raw = {}
    for path in glob.glob(os.path.join(d, "raw", "*_*.json")):
        name = os.path.basename(path)[:-5]
        sysname, w = name.rsplit("_", 1)
        if sysname in SYSTEMS:
            with open(path) as f:
                raw.setdefault(w, {})[sysname] = json.load(f)
    sgemm = None
    if os.path.exists(os.path.join(d, "raw", "sgemm.json")):
        with open(os.path.join(d, "raw", "sgemm.json")) as f:
            sgemm = json.load(f)
    guard = None
    if os.path.exists(os.path.join(d, "raw", "guard.json")):
        with open(os.path.join(d, "raw", "guard.json")) as f:
            guard = json.load(f)
    rows = []
    for w in sorted(raw):
        r = raw[w]
        ours, ort, tor = r.get("ours"), r.get("ort"), r.get("torch")
        row = {"workload": w, "shape": DESCR.get(w, "?"), "tokens": (ours or ort or tor)["tokens"]}
        for s in SYSTEMS:
            if s in r:
                row[s] = {k: r[s].get(k) for k in ("tokens_per_s", "seconds_median", "seconds_min", "peak_rss_mib",
                                                   "gflops", "padded_tokens", "load_before", "load_after")}
        if ours and ort:
            row["ratio_vs_ort"] = ours["tokens_per_s"] / ort["tokens_per_s"]
        if ours and tor:
            row["ratio_vs_torch"] = ours["tokens_per_s"] / tor["tokens_per_s"]
        if ours and sgemm:
            row["pct_sgemm"] = 100.0 * ours["gflops"] / sgemm["gflops"]
        if ours:
            row["rss_budget_mib"] = ours.get("weights_mib", 0) + 512.0
        t = TARGETS.get(w, (None, None, None))
        row["targets"] = {"vs_ort": t[0], "vs_torch": t[1], "pct_sgemm": t[2]}
        rows.append(row)
    loads = [v for w in raw.values() for s in w.values() for v in (s.get("load_before"), s.get("load_after")) if v is not None]
    res = {"sgemm": sgemm, "guard": guard, "rows": rows,
           "load_average": {"min": min(loads), "max": max(loads)} if loads else None}
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(res, f, indent=1)

    def f(x, fmt="%.0f"):
        return "—" if x is None else fmt % x

    def tgt(x, unit="×"):
        return "" if x is None else " (≥%g%s)" % (x, unit)

    lines = ["| workload | tokens | ours tok/s | ORT tok/s | PyTorch tok/s | ours/ORT | ours/PyTorch | ours GFLOP/s | % sgemm | RSS MiB ours / ORT / PyTorch | load 1-min |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        g = lambda s, k: (row.get(s) or {}).get(k)  # noqa: E731
        t = row["targets"]
        rss = " / ".join(f(g(s, "peak_rss_mib")) for s in SYSTEMS)
        if row["workload"] == "c" and "rss_budget_mib" in row:
            rss += " (ours ≤ %.0f)" % row["rss_budget_mib"]
        ld = [g(s, k) for s in SYSTEMS for k in ("load_before", "load_after") if g(s, k) is not None]
        lines.append("| %s (%s) | %d | %s | %s | %s | %s%s | %s%s | %s | %s%s | %s | %s |" % (
            row["workload"], row["shape"], row["tokens"], f(g("ours", "tokens_per_s")), f(g("ort", "tokens_per_s")),
            f(g("torch", "tokens_per_s")), f(row.get("ratio_vs_ort"), "%.2f×"), tgt(t["vs_ort"]),
            f(row.get("ratio_vs_torch"), "%.2f×"), tgt(t["vs_torch"]), f(g("ours", "gflops"), "%.1f"),
            f(row.get("pct_sgemm"), "%.0f%%"), tgt(t["pct_sgemm"], "%"), rss,
            ("%.1f–%.1f" % (min(ld), max(ld))) if ld else "—"))
    md = "\n".join(lines) + "\n"
    if sgemm:
        md += "\nsgemm alone (M=%d, %d threads, linear-layer shapes): %.1f GFLOP/s (OpenBLAS %s, oneDNN %s) %s\n" % (
            sgemm["m"], sgemm["threads"], sgemm["gflops"], sgemm.get("openblas_gflops", sgemm["gflops"]),
            sgemm.get("onednn_gflops", "-"), json.dumps(sgemm["shapes"]))
    if guard:
        md += "\nCorrectness guard (workload a, first 4 sequences, ours vs ORT): max-abs %.2e (tol %g)\n" % (
            guard["max_abs"], guard["tol"])
    with open(os.path.join(d, "results.md"), "w") as fh:
        fh.write(md)
    print(md)


if __name__ == "__main__":
    main()
