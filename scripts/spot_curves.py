"""Overlay the SST-2 validation curves of the SPoT experiment arms (one axes), mean over seeds in bold."""

import json
import sys
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.figures import save_png_and_svg

R = Path(sys.argv[1])  # usage: python scripts/spot_curves.py RUNS_DIR OUT.png (see scripts/spot_t5nano.sh)
ARMS = {
    "(a) class-label init": (["sst2-classlabel", "sst2-classlabel-s1", "sst2-classlabel-s2"], "C0"),
    "(b) retrieved source: review sentiment": (["sst2-spot", "sst2-from-review-s1", "sst2-from-review-s2"], "C3"),
    "source: headline sarcasm (rank 2)": (["sst2-from-sarcasm"], "C2"),
    "source: RTE (rank 3)": (["sst2-from-rte"], "C7"),
}


def curve(run):
    history = json.loads((R / run / "history.json").read_text())
    points = [(h["step"], h["accuracy"][0]) for h in history if "accuracy" in h]
    return np.array([p[0] for p in points]), np.array([p[1] for p in points])


fig = Figure(figsize=(8, 5))
FigureCanvasAgg(fig)
ax = fig.add_subplot()
for label, (runs, color) in ARMS.items():
    curves = [curve(r) for r in runs if (R / r / "history.json").is_file()]
    for steps, acc in curves:
        ax.plot(steps, acc, color=color, alpha=0.35, linewidth=1)
    steps = curves[0][0]
    mean = np.mean([acc for _, acc in curves], axis=0)
    ax.plot(
        steps,
        mean,
        color=color,
        linewidth=2.5,
        marker="o",
        label=f"{label}, {'mean of ' + str(len(curves)) + ' seeds' if len(curves) > 1 else '1 seed'}",
    )
ax.set_xlabel("training step (batch 16)")
ax.set_ylabel("accuracy on 300 held-out SST-2 training sentences")
ax.set_title("t5-nano, SST-2 target: 1 input prompt x 20 + deep prefix x 20, 300 steps", fontsize=10)
ax.grid(alpha=0.3)
ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
save_png_and_svg(fig, sys.argv[2], "OUT")
print("wrote", sys.argv[2])
