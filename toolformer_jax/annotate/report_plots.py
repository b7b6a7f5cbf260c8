"""The annotation report's plots: PNGs of the numbers `report_data.read_run` returns.

Each `plot_*` writes one PNG into out_dir and returns its file name (what report.md links).
Matplotlib (Agg) is imported only when a plot is drawn.
"""

from __future__ import annotations

import os

import numpy as np

from toolformer_jax import reporting
from toolformer_jax.annotate.report_data import FUNNEL


def _save(fig, out_dir: str, name: str) -> str:
  reporting.save_figure(fig, os.path.join(out_dir, name), dpi=100)
  return name


def plot_counts(numbers, out_dir) -> str:
  plt = reporting.pyplot()
  names = list(numbers["tools"])
  t = numbers["tools"]
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
  x = np.arange(len(names))
  series = (("scored here", [t[n]["scored"] for n in names]),
            ("kept here", [t[n]["kept"] for n in names]),
            ("L- - L+ >= 1.0 here", [t[n]["clearing"]["1"] for n in names]),
            ("paper kept (tau_f 1.0)", [t[n]["paper_kept_tau_1"] or 0 for n in names]))
  width = 0.8 / len(series)
  for k, (label, values) in enumerate(series):
    left.bar(x + (k - (len(series) - 1) / 2) * width, [max(v, 0.5) for v in values], width,
             label=label)
  left.set_yscale("log")
  left.set_xticks(x, names)
  left.set_ylabel("candidates / examples (log)")
  left.set_title("candidates and kept calls per tool")
  left.legend(fontsize=8)
  rates = [t[n]["keep_rate"] or 0.0 for n in names]
  right.bar(x, rates, color="tab:green")
  for xi, r, n in zip(x, rates, names):
    right.text(xi, r, f"{r:.1%}\n(tau_f {', '.join(f'{v:g}' for v in t[n]['tau_f'])})",
               ha="center", va="bottom", fontsize=8)
  right.set_xticks(x, names)
  right.set_ylim(0, max(rates + [0.1]) * 1.35)
  right.set_ylabel("kept / scored")
  right.set_title("keep rate at the run's tau_f")
  return _save(fig, out_dir, "counts.png")


def _grid(n: int):
  plt = reporting.pyplot()
  cols = min(3, max(1, n))
  rows = -(-max(1, n) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
  for ax in axes.flat[n:]:
    ax.axis("off")
  return fig, list(axes.flat)


def plot_gains(numbers, arrays, out_dir) -> str:
  fig, axes = _grid(len(arrays))
  for ax, (tool, (gains, kept, _)) in zip(axes, arrays.items()):
    if gains.size:
      bins = np.histogram_bin_edges(gains, bins=min(40, max(5, gains.size // 2)))
      ax.hist(gains[~kept], bins=bins, color="tab:gray", label="rejected")
      ax.hist(gains[kept], bins=bins, color="tab:blue", label="kept")
    lo, hi = (float(gains.min()), float(gains.max())) if gains.size else (-1.0, 1.0)
    margin = max(1.0, hi - lo)
    for tau in numbers["tools"][tool]["tau_f"]:
      if lo - margin <= tau <= hi + margin:
        ax.axvline(tau, color="tab:red", linestyle="--", label=f"tau_f {tau:g}")
      else:  # a threshold far off the data would squash the histogram
        ax.plot([], [], color="tab:red", linestyle="--", label=f"tau_f {tau:g} (off scale)")
    ax.set_title(f"{tool} (n={gains.size})")
    ax.set_xlabel("L- - L+")
    ax.legend(fontsize=7)
  return _save(fig, out_dir, "loss_gain.png")


def plot_p_call_start(arrays, out_dir) -> str:
  plt = reporting.pyplot()
  fig, ax = plt.subplots(figsize=(max(6.5, 1.6 * len(arrays)), 4))
  data, positions, labels, colors = [], [], [], []
  for k, (tool, (_, kept, p)) in enumerate(arrays.items()):
    for offset, mask, label, color in ((-0.2, kept, "kept", "tab:blue"),
                                       (0.2, ~kept, "rejected", "tab:gray")):
      values = p[mask & ~np.isnan(p) & (p > 0)]
      if values.size:
        data.append(values)
        positions.append(k + offset)
        colors.append(color)
    labels.append(tool)
  if data:
    parts = ax.boxplot(data, positions=positions, widths=0.35, patch_artist=True,
                       showfliers=False)
    for patch, color in zip(parts["boxes"], colors):
      patch.set_facecolor(color)
    ax.set_yscale("log")
  ax.set_xticks(range(len(labels)), labels)
  ax.set_xlim(-0.6, len(labels) - 0.4)
  ax.set_ylabel('p(" [") at the position (log)')
  ax.set_title('p(" [") at kept (blue) versus rejected (gray) positions')
  return _save(fig, out_dir, "p_call_start.png")


def plot_stages(numbers, out_dir) -> str:
  plt = reporting.pyplot()
  fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4),
                                    gridspec_kw={"width_ratios": [3, 1]})
  names = list(numbers["tools"])
  x = np.arange(len(FUNNEL))
  width = 0.8 / max(1, len(names))
  for k, tool in enumerate(names):
    funnel = numbers["tools"][tool]["funnel"]
    left.bar(x + (k - (len(names) - 1) / 2) * width,
             [max(funnel[s], 0.5) for s in FUNNEL], width, label=tool)
  left.set_yscale("log")
  left.set_xticks(x, FUNNEL, rotation=30, ha="right", fontsize=8)
  left.set_ylabel("count (log)")
  left.set_title("per-stage counts (manifests)")
  left.legend(fontsize=7)
  stages = numbers["stage_seconds"]
  right.bar(range(len(stages)), list(stages.values()), color="tab:orange")
  right.set_xticks(range(len(stages)), list(stages), rotation=30, ha="right")
  right.set_ylabel("seconds")
  right.set_title("seconds per stage")
  return _save(fig, out_dir, "stages.png")
