#!/usr/bin/env python3
"""Prints the kernel matrix from the results scripts/vm/run-suites.sh wrote.

    OUT=DIR SUITE_LIST="core sim ..." matrix-report.py KERNEL...

Reads DIR/KERNEL/{env.txt,SUITE.res,SUITE.log,probe.tsv}. Prints the result
table (kernel x suite), the times, every failure with its message, every
skipped test with its reason and the kernel feature table. Exits 1 if a test
failed or a suite has no result.
"""
import os
import re
import sys

OUT = os.environ["OUT"]
SUITES = os.environ["SUITE_LIST"].split()
KERNELS = sys.argv[1:]


def kv(path):
    """key=value pairs of a file (several a line allowed)."""
    d = {}
    if os.path.exists(path):
        for tok in open(path, errors="replace").read().split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                d[k] = v
    return d


def table(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def failures(log):
    """(test name, message lines) for each failed test of a libtest log."""
    text = open(log, errors="replace").read().splitlines()
    names = [m.group(1) for l in text for m in [re.match(r"^test (\S+) \.\.\. FAILED$", l)] if m]
    out = []
    for name in names:
        msg, inside = [], False
        for l in text:
            if l == f"---- {name} stdout ----":
                inside = True
                continue
            if inside and (l.startswith("---- ") or l == "failures:" or l == "stack backtrace:"):
                break
            if inside and l.strip() and not l.startswith("note: run with"):
                msg.append(l)
        out.append((name, msg[:8]))
    if not names and not re.search(r"^test result:", "\n".join(text), re.M):
        out.append(("(binary)", [l for l in text if l.strip()][-6:]))
    return out


def skips(log):
    """(test name, reason) for each ignored test."""
    res = []
    for l in open(log, errors="replace"):
        m = re.match(r"^test (\S+) \.\.\. ignored(?:, (.*))?$", l.rstrip("\n"))
        if m:
            res.append((m.group(1), m.group(2) or "(no reason given)"))
    return res


def ran(k):
    """The suites kernel k was asked to run."""
    path = f"{OUT}/{k}/suites.tsv"
    return [l.split("\t")[0] for l in open(path)] if os.path.exists(path) else []


envs = {k: kv(f"{OUT}/{k}/env.txt") for k in KERNELS}
head = [f"{k} ({envs[k].get('kernel', '?')})" for k in KERNELS]
bad = False
totals = [0, 0, 0]
rows, trows = [], []
for s in SUITES:
    row, trow = [s], [s]
    for k in KERNELS:
        r = kv(f"{OUT}/{k}/{s}.res")
        if s not in ran(k):
            row.append("-")
            trow.append("-")
            continue
        if not r:
            row.append("no result")
            trow.append("-")
            bad = True
            continue
        p, f, g = int(r["passed"]), int(r["failed"]), int(r["ignored"])
        totals = [totals[0] + p, totals[1] + f, totals[2] + g]
        cell = f"{p} passed"
        if f:
            cell += f", {f} FAILED"
            bad = True
        if g:
            cell += f", {g} skipped"
        row.append(cell)
        trow.append(f"{float(r['secs']):.1f}")
    rows.append(row)
    trows.append(trow)

print("\n== kernel matrix: passed / failed / skipped (skip reasons below) ==")
table(["suite"] + head, rows)

print("\n== time (seconds) ==")
boot = ["boot (kernel to first command)"]
wall = ["whole run (boot + suites + power-off)"]
for k in KERNELS:
    e = envs[k]
    boot.append(e.get("uptime_at_start", "-") if k != "host" else "-")
    wall.append(e.get("wall_secs", "-"))
table(["step"] + head, [boot] + trows + [wall])

print("\n== failures ==")
nf = 0
for k in KERNELS:
    if envs[k].get("runner_rc", "0") != "0":
        print(f"[{k}] the runner exited {envs[k]['runner_rc']} (VM did not finish?)")
        bad = True
    for s in SUITES:
        log = f"{OUT}/{k}/{s}.log"
        r = kv(f"{OUT}/{k}/{s}.res")
        if not os.path.exists(log) or not r or r.get("failed") == "0":
            continue
        for name, msg in failures(log):
            nf += 1
            print(f"[{k}] {s}::{name}")
            for l in msg:
                print(f"      {l}")
print("none" if nf == 0 else f"{nf} failed test(s)")

print("\n== skipped (ignored) tests and why ==")
seen = {}
for k in KERNELS:
    for s in SUITES:
        log = f"{OUT}/{k}/{s}.log"
        if os.path.exists(log):
            for name, why in skips(log):
                seen.setdefault((s, name, why), []).append(k)
for (s, name, why), ks in sorted(seen.items()):
    print(f"{s}::{name} [{' '.join(ks)}]: {why}")
if not seen:
    print("none")

# The test's own lines (with --nocapture one may follow libtest's "test ... " on its line).
zc = [(k, m.group(0)) for k in KERNELS if os.path.exists(f"{OUT}/{k}/zerocopy.log")
      for l in open(f"{OUT}/{k}/zerocopy.log", errors="replace")
      for m in [re.search(r"kernel \d\S*: .*", l)] if m]
if zc:
    print("\n== zero-copy (tests/zerocopy.rs on two virtio-net NICs) ==")
    for k, l in zc:
        print(f"[{k}] {l}")

probes = {}
for k in KERNELS:
    path = f"{OUT}/{k}/probe.tsv"
    if os.path.exists(path):
        for l in open(path, errors="replace"):
            parts = l.rstrip("\n").split("\t")
            if len(parts) == 3:
                probes.setdefault(parts[0], {})[k] = parts[1:]
if probes:
    print("\n== kernel features (scripts/vm/kprobe.c, run in each kernel) ==")
    ks = [k for k in KERNELS if os.path.exists(f"{OUT}/{k}/probe.tsv")]
    prow = []
    for feat, by in probes.items():
        if feat == "kernel":
            continue
        prow.append([feat] + [" ".join(by.get(k, ["-", ""])).strip() for k in ks])
    table(["feature"] + [f"{k}" for k in ks], prow)

print(f"\nkernel matrix: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
sys.exit(1 if bad else 0)
