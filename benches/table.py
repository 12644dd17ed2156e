#!/usr/bin/env python3
"""Prints the medians of the last `cargo bench --bench sessions` run as a
Markdown table, with sesame's ratio to each peer (same run).

    python3 benches/table.py [CRITERION_DIR]

CRITERION_DIR defaults to $CARGO_TARGET_DIR/criterion, else target/criterion.
"speedup" columns are peer median / sesame median (>1: sesame is faster);
"/floor" is sesame median / floor median (the overhead over the floor).
mix_* rows are throughput in M operations/s (wall time, all threads).
"""
import json
import os
import sys

PEERS = ["floor", "moka", "rwlock", "tower_sessions"]
OPS = ["validate_hit", "validate_hit_zipf", "validate_hit_seq", "validate_miss",
       "malformed", "create", "update", "rotate", "login", "logout",
       "mix_1t", "mix_2t", "mix_1t_zipf", "mix_2t_zipf"]
SIZES = ["10k", "1M", "10M"]


def load(root):
    med = {}
    for group in os.listdir(root):
        gdir = os.path.join(root, group)
        if not os.path.isdir(gdir) or group == "report":
            continue
        for store in os.listdir(gdir):
            for size in SIZES:
                f = os.path.join(gdir, store, size, "new", "estimates.json")
                if os.path.exists(f):
                    with open(f) as fh:
                        med[(group, store, size)] = json.load(fh)["median"]["point_estimate"]
    return med


def fmt_ns(ns):
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
    med = load(root)
    head = ["operation", "size", "sesame"] + PEERS + ["/floor"] + [f"vs {p}" for p in PEERS[1:]]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for op in OPS:
        for size in SIZES:
            s = med.get((op, "sesame", size))
            if s is None and med.get((op, "floor", size)) is None:
                continue
            mix = op.startswith("mix")
            cell = (lambda ns: f"{1e3 / ns:.2f} M/s") if mix else fmt_ns
            row = [op, size, cell(s) if s else "–"]
            for p in PEERS:
                v = med.get((op, p, size))
                row.append(cell(v) if v else "–")
            fl = med.get((op, "floor", size))
            row.append(f"{s / fl:.2f}" if s and fl else "–")
            for p in PEERS[1:]:
                v = med.get((op, p, size))
                row.append(f"{v / s:.2f}x" if s and v else "–")
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
