"""Matplotlib figures of the evaluation report and the decoding sweep (PNG files, headless Agg backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: the report is built on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from stchat.eval.breakdown import BinRow, SampleScore, paired, pearson, spearman  # noqa: E402

_T_COLOR, _S_COLOR, _J_COLOR = "#1f77b4", "#d62728", "#2ca02c"


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def scatter_tiou_siou(samples: Sequence[SampleScore], path: Path, title: str = "") -> Path:
    """tIoU vs sIoU per sample with Pearson r and Spearman rho in the title."""
    t, s = paired(samples)
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.scatter(t, s, s=22, alpha=0.7, color=_T_COLOR, edgecolors="none")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", lw=1)
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="tIoU", ylabel="sIoU")
    ax.set_title(f"{title}  n={len(t)}  r={_fmt(pearson(t, s))}  rho={_fmt(spearman(t, s))}", fontsize=10)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def histograms(samples: Sequence[SampleScore], path: Path, title: str = "", bins: int = 10) -> Path:
    """Side-by-side histograms of tIoU and sIoU (a metric the task lacks is shown as 'n/a')."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), sharey=True)
    edges = np.linspace(0, 1, bins + 1)
    for ax, name, color in ((axes[0], "tiou", _T_COLOR), (axes[1], "siou", _S_COLOR)):
        vals = [getattr(s, name) for s in samples if getattr(s, name) is not None]
        label = "tIoU" if name == "tiou" else "sIoU"
        if vals:
            ax.hist(vals, bins=edges, color=color, alpha=0.85, edgecolor="white")
            ax.axvline(float(np.mean(vals)), color="black", ls="--", lw=1, label=f"mean {np.mean(vals):.2f}")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "n/a for this task", ha="center", va="center", transform=ax.transAxes)
        ax.set(xlim=(0, 1), xlabel=label)
        ax.grid(alpha=0.3, axis="y")
    axes[0].set_ylabel("samples")
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def breakdown_bars(tables: Mapping[str, Sequence[BinRow]], path: Path, title: str = "") -> Path:
    """One panel per breakdown: mean tIoU, mean sIoU and joint success per bin, with sample counts."""
    names = [k for k in tables if k != "overall"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.8), sharey=True, squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        rows = list(tables[name])
        x = np.arange(len(rows))
        w = 0.27
        for off, attr, color, lab in (
            (-w, "mean_tiou", _T_COLOR, "mean tIoU"),
            (0.0, "mean_siou", _S_COLOR, "mean sIoU"),
            (w, "joint", _J_COLOR, "joint success"),
        ):
            vals = [getattr(r, attr) if getattr(r, attr) is not None else 0.0 for r in rows]
            ax.bar(x + off, vals, w, color=color, label=lab)
        labels = [r.label.replace(" (", "\n(") + f"\nn={r.count}" for r in rows]
        ax.set_xticks(x, labels, fontsize=7)
        ax.set_title(name, fontsize=10)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("score")
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def sweep_figure(
    settings: Sequence[str],
    main: Mapping[str, Sequence[float | None]],
    thresholds: Sequence[float],
    acc_curves: Mapping[str, Mapping[str, Sequence[float]]],
    joint_grid: np.ndarray,
    cv: Mapping[str, float | None],
    path: Path,
    param: str = "temperature",
    note: str | None = None,
) -> Path:
    """The 4-panel stability figure of a decoding sweep.

    (a) main metrics per setting; (b) accuracy vs IoU threshold per setting (tIoU solid, sIoU dashed);
    (c) joint accuracy heatmap, thresholds x settings; (d) coefficient of variation of each metric
    across the settings. ``note`` is printed under the title (e.g. where the answers came from).
    """
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.5))
    x = np.arange(len(settings))
    ticks_text = [st.split("=", 1)[-1] for st in settings]  # "temperature=0.1" -> "0.1": the axis names it
    ax = axes[0][0]
    for name, vals in main.items():
        ax.plot(x, [np.nan if v is None else v for v in vals], marker="o", label=name)
    ax.set_xticks(x, ticks_text)
    ax.set(xlabel=param, ylabel="score", title="(a) main metrics per setting", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)

    ax = axes[0][1]
    cmap = plt.get_cmap("viridis")
    for i, st in enumerate(settings):
        color = cmap(i / max(1, len(settings) - 1))
        curves = acc_curves[st]
        if "tiou" in curves:
            ax.plot(thresholds, curves["tiou"], color=color, label=f"{ticks_text[i]} tIoU")
        if "siou" in curves:
            ax.plot(thresholds, curves["siou"], color=color, ls="--", label=f"{ticks_text[i]} sIoU")
    ax.set(xlabel="IoU threshold", ylabel="accuracy", title="(b) accuracy vs IoU threshold", ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    # One legend entry per setting (colour) plus two for the line style: a curve-by-curve legend grows
    # with the sweep and ends up covering the curves.
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=cmap(i / max(1, len(settings) - 1)), label=ticks_text[i])
               for i in range(len(settings))]
    handles += [Line2D([], [], color="0.3", label="tIoU"), Line2D([], [], color="0.3", ls="--", label="sIoU")]
    ax.legend(handles=handles, fontsize=7, title=param, title_fontsize=7, loc="best", framealpha=0.85)

    ax = axes[1][0]
    im = ax.imshow(joint_grid, aspect="auto", origin="lower", vmin=0, vmax=1, cmap="magma")
    ax.set_xticks(np.arange(len(settings)), ticks_text)
    step = max(1, len(thresholds) // 6)
    ticks = np.arange(0, len(thresholds), step)
    ax.set_yticks(ticks, [f"{thresholds[i]:.2f}" for i in ticks])
    ax.set(xlabel=param, ylabel="IoU threshold", title="(c) joint accuracy (tIoU and sIoU >= thr)")
    for i in range(joint_grid.shape[0]):
        for j in range(joint_grid.shape[1]):
            if i % step == 0:
                v = joint_grid[i, j]
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if v < 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)

    ax = axes[1][1]
    names = list(cv)
    vals = [0.0 if cv[n] is None else cv[n] for n in names]
    bars = ax.bar(names, vals, color="#9467bd")
    for b, n in zip(bars, names, strict=True):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), "n/a" if cv[n] is None else f"{cv[n]:.3f}",
                ha="center", va="bottom", fontsize=8)
    ax.set(ylabel="std / mean across settings", title="(d) coefficient of variation per metric")
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"Decoding stability study: {param}" + (f"\n{note}" if note else ""), fontsize=12)
    fig.tight_layout()
    return _save(fig, path)
