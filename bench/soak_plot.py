#!/usr/bin/env python3
"""Plots bench/soak.sh's soak.csv as soak.png: RSS, open fds, answers per second with the
unexpected ones, and JWKS fetches; key rotations and config reloads marked on every panel.

    python3 bench/soak_plot.py soak-out/soak.csv [soak-out/soak.png]
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    source = sys.argv[1]
    target = sys.argv[2] if len(sys.argv) > 2 else source.rsplit(".", 1)[0] + ".png"
    with open(source, newline="") as f:
        rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    if len(rows) < 2:
        sys.exit(f"{source}: fewer than two samples")
    t = [r["seconds"] for r in rows]
    rate = [0.0] + [
        (b["answered"] - a["answered"]) / max(b["seconds"] - a["seconds"], 1e-9)
        for a, b in zip(rows, rows[1:])
    ]
    rotations = [b["seconds"] for a, b in zip(rows, rows[1:]) if b["rotations"] > a["rotations"]]
    reloads = [b["seconds"] for a, b in zip(rows, rows[1:]) if b["reloads"] > a["reloads"]]

    fig, axes = plt.subplots(4, 1, figsize=(11, 11), sharex=True)
    panels = [
        ("RSS (MiB)", [r["rss_kib"] / 1024 for r in rows]),
        ("open fds", [r["open_fds"] for r in rows]),
        ("answers/s", rate),
        ("JWKS fetches (total)", [r["jwks_fetches"] for r in rows]),
    ]
    for ax, (label, values) in zip(axes, panels):
        ax.plot(t, values, linewidth=1)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        for x in rotations:
            ax.axvline(x, color="tab:green", alpha=0.25, linewidth=0.8)
        for x in reloads:
            ax.axvline(x, color="tab:orange", alpha=0.25, linewidth=0.8, linestyle="--")
    axes[0].set_ylim(bottom=0)
    axes[1].set_ylim(bottom=0)
    unexpected = [r["unexpected"] for r in rows]
    ax2 = axes[2].twinx()
    ax2.plot(t, unexpected, color="tab:red", linewidth=1)
    ax2.set_ylabel("unexpected (total)", color="tab:red")
    ax2.set_ylim(bottom=0, top=max(1, max(unexpected)))
    axes[-1].set_xlabel("seconds (green: key rotation, orange dashed: config reload)")
    last = rows[-1]
    fig.suptitle(
        f"Portcullis soak: {int(last['answered'])} answers, {int(last['unexpected'])} unexpected, "
        f"{int(last['rotations'])} rotations, {int(last['reloads'])} reloads"
    )
    fig.tight_layout()
    fig.savefig(target, dpi=90)
    print(f"soak: plot {target}")


if __name__ == "__main__":
    main()
