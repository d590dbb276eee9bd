#!/usr/bin/python3
"""Summarise run_cpu_bench.sh's raw JSON lines (DIR/raw/SYSTEM_WORKLOAD.json, sgemm.json, machine.json,
guard*.json) into DIR/results.json and DIR/results.md, and print the markdown tables.

    summarize_bench.py DIR

Table 1 (ours f32 vs ORT fp32 vs PyTorch): ratios are ours/peer in tokens/s (from the medians).
"% sgemm" = our achieved useful GFLOP/s over the better sgemm rate of OpenBLAS and oneDNN (each
threading itself) measured in the same run. Targets are printed beside the ratios, never judged
here: timings on a shared machine vary, read them with the load averages.

Reduced precision (#15), when ours ran in more than f32 or an ORT int8 peer ran: one table per
workload, a row per system (ours per dtype, ORT fp32 / int8), with tokens/s (from the median pass,
and from the fastest pass: on a shared machine the slowdowns are one-sided), the ratio to our f32
(also fastest pass over fastest pass)
(to ours-f32-avx2 for the ONEDNN_MAX_CPU_ISA=AVX2 rows), to ORT fp32 and to each ORT int8 graph,
peak RSS and its ratio to our f32, the GEMM path (bench JSON "linear_path") and the issue's goal
for the row, each part marked (✓ met in this run, ✗ not), judged on this run's medians only.

Paired (--paired): our dtypes timed in one process per workload (raw/paired_W.jsonl, and
paired-avx2_W.jsonl under the AVX2 stand-in): each dtype's speedup over f32 from the passes of the
same round, median [min, max] over the rounds, with the #15 goal it is judged against.
"""
import glob
import json
import os
import re
import sys

DESCR = {"a": "64 x 128", "b": "32 x U[16,512]", "c": "1 x 8192", "d": "8 x 1024"}
TARGETS = {  # (vs ORT, vs PyTorch, % sgemm)
    "a": (1.2, None, 80), "b": (2.0, 3.0, 80), "c": (2.5, None, None), "d": (1.2, None, 80),
}
SYSTEMS = ("ours", "ort", "torch")
SYSTEM_RE = re.compile(r"^(ours(-[a-z0-9]+(-ckpt)?(-avx2)?)?|ort(-int8(-tok)?)?|torch)$")
ORT_INT8 = ("ort-int8", "ort-int8-tok")


def main():
    d = sys.argv[1]
    raw = {}
    for path in glob.glob(os.path.join(d, "raw", "*_*.json")):
        name = os.path.basename(path)[:-5]
        if "." in name:  # SYSTEM_WORKLOAD.rK.json: one round of --rounds (the cell is SYSTEM_WORKLOAD.json)
            continue
        sysname, w = name.rsplit("_", 1)
        if SYSTEM_RE.match(sysname):
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
    machine = None
    if os.path.exists(os.path.join(d, "raw", "machine.json")):
        with open(os.path.join(d, "raw", "machine.json")) as f:
            machine = json.load(f)
    guards = {}
    for path in glob.glob(os.path.join(d, "raw", "guard_*.json")):
        with open(path) as f:
            guards[os.path.basename(path)[6:-5]] = json.load(f)
    rows = []
    for w in sorted(raw):
        r = raw[w]
        ours, ort, tor = r.get("ours"), r.get("ort"), r.get("torch")
        if not (ours or ort or tor):
            continue
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
    precision_rows = precision_table(raw, machine)
    paired = paired_rows(d, machine)
    res = {"sgemm": sgemm, "guard": guard, "rows": rows, "machine": machine, "precision_guards": guards,
           "precision": precision_rows, "paired": paired,
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
        md += "\nCorrectness guard (workload a's first 4 and b's first 2 sequences, ours f32 vs ORT fp32): max-abs %.2e (tol %g)\n" % (
            guard["max_abs"], guard["tol"])
    if precision_rows:
        md += "\n" + precision_markdown(precision_rows, guards, machine)
    if paired:
        md += "\n" + paired_markdown(paired)
    with open(os.path.join(d, "results.md"), "w") as fh:
        fh.write(md)
    print(md)


def _dtype_of(sysname):
    """ours -> f32, ours-bf16-ckpt -> bf16, ours-int8-avx2 -> int8; None for peers."""
    if not sysname.startswith("ours"):
        return None
    return sysname[5:].split("-")[0] if sysname != "ours" else "f32"


def _speed_goal(dt, w, avx2, flags):
    """(text, threshold) of issue #15's speed-up over our f32 for dtype dt on workload w, or (None,
    None) where it sets none. avx2: measured under the ONEDNN_MAX_CPU_ISA=AVX2 stand-in."""
    native_bf16 = not avx2 and ("avx512_bf16" in flags or "amx_bf16" in flags)
    vnni = not avx2 and any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))
    if dt == "int8" and w in ("a", "d"):
        t = 2.5 if vnni else 1.6
        return "≥%g× f32 (%s)" % (t, "VNNI" if vnni else "AVX2-only"), t
    if dt == "bf16" and native_bf16 and w in ("a", "d"):
        return "≥2× f32 (native bf16)", 2.0
    if dt in ("bf16", "f16"):
        return "≥1× f32", 1.0
    return None, None


def _goal(sysname, w, row, flags):
    """(goal text with a ✓/✗ per part, all met?) of issue #15 item 5 for one row; (None, None)
    where it sets none."""
    dt = _dtype_of(sysname)
    if dt in (None, "f32"):
        return None, None
    avx2 = sysname.endswith("-avx2")
    parts = []  # (text, met)
    text, t = _speed_goal(dt, w, avx2, flags)
    if text:
        x = row.get("x_f32")
        parts.append((text, x is not None and x >= t))
    if dt in ("bf16", "f16") and not avx2:
        r = row.get("rss_x_f32")
        parts.append(("RSS ≤0.55×", r is not None and r <= 0.55))
    if not avx2:
        for k, name in (("x_ort", "ORT fp32"), ("x_ort-int8", "ORT int8"), ("x_ort-int8-tok", "ORT int8 per-token")):
            if row.get(k) is not None:
                parts.append(("> " + name, row[k] > 1.0))
    if not parts:
        return None, None
    return ", ".join("%s %s" % (t, "✓" if ok else "✗") for t, ok in parts), all(ok for _, ok in parts)


def precision_table(raw, machine):
    """Rows of the reduced-precision tables; [] when only f32 ran and no ORT int8 peer."""
    flags = set(((machine or {}).get("flags") or "").split())
    out = []
    for w in sorted(raw):
        r = raw[w]
        if not any(s != "ours" and s.startswith("ours") or s in ORT_INT8 for s in r):
            continue
        f32 = r.get("ours")
        order = sorted(r, key=lambda s: (not s.startswith("ours"), s.endswith("-avx2"), s != "ours",
                                         ["f32", "bf16", "f16", "int8"].index(_dtype_of(s)) if _dtype_of(s) in
                                         ("f32", "bf16", "f16", "int8") else 9, s))
        for s in order:
            j = r[s]
            if s == "torch":
                continue
            row = {"workload": w, "system": s, "dtype": j.get("dtype", _dtype_of(s) or ("int8" if s in ORT_INT8 else "f32")),
                   "tokens_per_s": j["tokens_per_s"], "peak_rss_mib": j.get("peak_rss_mib"),
                   "weights_mib": j.get("weights_mib"), "linear_path": j.get("linear_path"),
                   "quantized_checkpoint": j.get("quantized_checkpoint"),
                   "load": [j.get("load_before"), j.get("load_after")]}
            base = r.get("ours-f32-avx2") if s.endswith("-avx2") else f32
            row["tokens_per_s_best"] = j["tokens"] / j["seconds_min"] if j.get("seconds_min") else None
            if base and s.startswith("ours"):
                row["x_f32"] = j["tokens_per_s"] / base["tokens_per_s"]
                if base.get("seconds_min") and j.get("seconds_min"):
                    row["x_f32_best"] = base["seconds_min"] / j["seconds_min"]
            if f32 and j.get("peak_rss_mib") and f32.get("peak_rss_mib"):
                row["rss_x_f32"] = j["peak_rss_mib"] / f32["peak_rss_mib"]
            for p in ("ort",) + ORT_INT8:
                if p in r and p != s:
                    row["x_" + p] = j["tokens_per_s"] / r[p]["tokens_per_s"]
            row["goal"], row["goal_met"] = _goal(s, w, row, flags)
            out.append(row)
    return out


def precision_markdown(rows, guards, machine):
    def f(x, fmt="%.2f×"):
        return "—" if x is None else fmt % x

    md = "### Reduced precision (#15)\n\n"
    if machine:
        md += "Machine: %s, %s CPUs; ISA flags: %s; commit %s%s.\n\n" % (
            machine.get("model_name"), machine.get("cpus"), " ".join(machine.get("isa", [])), machine.get("commit"),
            " (dirty)" if machine.get("dirty") else "")
    for w in sorted({r["workload"] for r in rows}):
        md += "Workload %s (%s):\n\n" % (w, DESCR.get(w, "?"))
        md += ("| system | dtype | tok/s | best pass tok/s | × ours f32 | best × f32 | × ORT fp32 | × ORT int8 "
               "| × ORT int8 per-token | peak RSS MiB | RSS × f32 | weights MiB | GEMM path | load 1-min | goal (#15) "
               "|\n|" + "---|" * 15 + "\n")
        for r in rows:
            if r["workload"] != w:
                continue
            ld = [x for x in r["load"] if x is not None]
            goal = r["goal"] or ""
            md += "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" % (
                r["system"], r["dtype"], r["tokens_per_s"], f(r.get("tokens_per_s_best"), "%.0f"), f(r.get("x_f32")),
                f(r.get("x_f32_best")), f(r.get("x_ort")),
                f(r.get("x_ort-int8")), f(r.get("x_ort-int8-tok")), f(r["peak_rss_mib"], "%.0f"),
                f(r.get("rss_x_f32")), f(r["weights_mib"], "%.0f"), r["linear_path"] or "—",
                ("%.1f–%.1f" % (min(ld), max(ld))) if ld else "—", goal)
        md += "\n"
    if guards:
        md += "Accuracy guards (per-token cosine of last_hidden_state vs the same system in fp32, guard set): %s\n" % (
            ", ".join("%s mean %.6f min %.6f" % (k, v["cosine_mean"], v["cosine_min"])
                      for k, v in sorted(guards.items()) if "cosine_mean" in v))
    return md


def paired_rows(d, machine):
    """One row per dtype of each raw/paired*_W.jsonl (bench --dtype f32,...: the later lines carry
    "paired", their speedup over the first, f32, from passes of the same round)."""
    flags = set(((machine or {}).get("flags") or "").split())
    out = []
    for path in sorted(glob.glob(os.path.join(d, "raw", "paired*_*.jsonl"))):
        name = os.path.basename(path)[:-6]
        kind, w = name.rsplit("_", 1)
        avx2 = kind.endswith("-avx2")
        with open(path) as f:
            lines = [json.loads(l) for l in f if l.strip()]
        for j in lines:
            p = j.get("paired")
            row = {"workload": w, "avx2_stand_in": avx2, "dtype": j.get("dtype"), "tokens_per_s": j["tokens_per_s"],
                   "peak_rss_mib_process": j.get("peak_rss_mib"), "linear_path": j.get("linear_path")}
            if p:
                row.update(x_f32_median=p["speedup_median"], x_f32_min=p["speedup_min"], x_f32_max=p["speedup_max"],
                           rounds=p["rounds"])
                text, goal = _speed_goal(j["dtype"], w, avx2, flags)
                row["goal"], row["goal_x_f32"] = text, goal
                row["goal_met"] = None if goal is None else p["speedup_median"] >= goal
            out.append(row)
    return out


def paired_markdown(rows):
    md = ("### Paired: our dtypes in one process (interleaved passes; speedup over f32 from the same round)\n\n"
          "| workload | CPU | dtype | tok/s | × f32 median [min, max] | rounds | goal (#15) |\n|" + "---|" * 7 + "\n")
    for r in rows:
        if "x_f32_median" in r:
            x = "%.2f× [%.2f, %.2f]" % (r["x_f32_median"], r["x_f32_min"], r["x_f32_max"])
            goal = "—" if r["goal"] is None else "%s %s" % (r["goal"], "✓" if r["goal_met"] else "✗")
            rounds = str(r["rounds"])
        else:
            x, goal, rounds = "1 (the reference)", "", ""
        md += "| %s | %s | %s | %.0f | %s | %s | %s |\n" % (
            r["workload"], "AVX2 stand-in" if r["avx2_stand_in"] else "native", r["dtype"], r["tokens_per_s"], x,
            rounds, goal)
    return md


if __name__ == "__main__":
    main()
