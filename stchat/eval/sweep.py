"""``stchat eval sweep``: a decoding-parameter stability study.

For each value of one decoding parameter (temperature by default; also top_p, top_k, max_new_tokens or
seed) the benchmark is run -- resumably, each setting into its own ``sub_dir`` of the official layout --
then scored per sample, and summarised in the 4-panel figure of :func:`stchat.eval.plots.sweep_figure`
plus the table behind it (``sweep.md``, ``sweep.json``, ``sweep.csv``).

Why the study matters: the official code samples with ``temperature=0.01`` unseeded (reference Q22), so
its numbers move from run to run; the sweep measures how much.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stchat.errors import StchatError
from stchat.eval.breakdown import SampleScore
from stchat.eval.runner import add_run_arguments, run_from_args

SWEEPABLE = {"temperature": float, "top_p": float, "top_k": int, "max_new_tokens": int, "seed": int}
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
THRESHOLDS = tuple(round(x, 2) for x in np.arange(0.05, 0.96, 0.05))
MAIN_METRICS = ("mean tIoU", "mean sIoU", "mean vIoU", "joint@0.5")


class SweepError(StchatError):
    """A sweep cannot be set up (unknown parameter, unusable values)."""


@dataclass
class SweepSummary:
    param: str
    settings: list[str]
    main: dict[str, list[float | None]]  # metric -> value per setting
    thresholds: list[float]
    acc_curves: dict[str, dict[str, list[float]]]  # setting -> {"tiou"|"siou": accuracy per threshold}
    joint_grid: np.ndarray  # (thresholds, settings)
    cv: dict[str, float | None]  # metric -> std/mean across settings
    counts: list[int]

    def as_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["joint_grid"] = self.joint_grid.tolist()
        return d


def parse_values(param: str, raw: Sequence[str]) -> list:
    """Typed, de-duplicated values of a sweep parameter (order kept)."""
    if param not in SWEEPABLE:
        raise SweepError(f"cannot sweep {param!r}; choose from {', '.join(SWEEPABLE)}")
    if not raw:
        raise SweepError("give at least one value to sweep")
    out = []
    for v in raw:
        try:
            x = SWEEPABLE[param](v)
        except ValueError:
            raise SweepError(f"{param} value {v!r} is not a {SWEEPABLE[param].__name__}") from None
        if param == "temperature" and not x > 0:
            raise SweepError("temperature must be > 0 (use --decoding greedy for greedy decoding)")
        if param == "top_p" and not 0 < x <= 1:
            raise SweepError("top_p must be in (0, 1]")
        if param in ("top_k", "max_new_tokens") and x < 1:
            raise SweepError(f"{param} must be >= 1")
        if x not in out:
            out.append(x)
    return out


def _mean(vals: Sequence[float | None]) -> float | None:
    v = [x for x in vals if x is not None]
    return float(np.mean(v)) if v else None


def _acc(vals: Sequence[float | None], thr: float) -> float:
    v = [x if x is not None else 0.0 for x in vals]
    return float(np.mean([x >= thr for x in v])) if v else 0.0


def coefficient_of_variation(values: Sequence[float | None]) -> float | None:
    """Population std / mean of the available values; None when undefined (mean 0 or < 2 values)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if len(v) < 2 or v.mean() == 0:
        return None
    return float(v.std() / abs(v.mean()))


def summarise_sweep(
    param: str, per_setting: Mapping[str, Sequence[SampleScore]], thresholds: Sequence[float] = THRESHOLDS
) -> SweepSummary:
    settings = list(per_setting)
    main: dict[str, list[float | None]] = {m: [] for m in MAIN_METRICS}
    curves: dict[str, dict[str, list[float]]] = {}
    grid = np.zeros((len(thresholds), len(settings)))
    for j, st in enumerate(settings):
        ss = per_setting[st]
        main["mean tIoU"].append(_mean([s.tiou for s in ss]))
        main["mean sIoU"].append(_mean([s.siou for s in ss]))
        main["mean vIoU"].append(_mean([s.viou for s in ss]))
        main["joint@0.5"].append(float(np.mean([s.joint(0.5) for s in ss])) if ss else None)
        c: dict[str, list[float]] = {}
        if any(s.tiou is not None for s in ss):
            c["tiou"] = [_acc([s.tiou for s in ss if s.tiou is not None], t) for t in thresholds]
        if any(s.siou is not None for s in ss):
            c["siou"] = [_acc([s.siou for s in ss if s.siou is not None], t) for t in thresholds]
        curves[st] = c
        for i, t in enumerate(thresholds):
            grid[i, j] = float(np.mean([s.joint(t) for s in ss])) if ss else 0.0
    main = {k: v for k, v in main.items() if any(x is not None for x in v)}
    cv = {k: coefficient_of_variation(v) for k, v in main.items()}
    return SweepSummary(param, settings, main, list(thresholds), curves, grid, cv,
                        [len(per_setting[s]) for s in settings])


def write_sweep_outputs(summary: SweepSummary, out_dir: Path, note: str | None = None) -> dict[str, Path]:
    """The figure and the table behind it: sweep.png, sweep.md, sweep.json, sweep.csv."""
    from stchat.eval.plots import sweep_figure  # matplotlib: imported only when a figure is drawn

    out_dir.mkdir(parents=True, exist_ok=True)
    png = sweep_figure(summary.settings, summary.main, summary.thresholds, summary.acc_curves,
                       summary.joint_grid, summary.cv, out_dir / "sweep.png", param=summary.param, note=note)
    (out_dir / "sweep.json").write_text(json.dumps(summary.as_json(), indent=1))
    metrics = list(summary.main)
    with open(out_dir / "sweep.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([summary.param, "samples", *metrics])
        for j, st in enumerate(summary.settings):
            w.writerow([st, summary.counts[j], *[_cell(summary.main[m][j]) for m in metrics]])
        w.writerow(["CV", "", *[_cell(summary.cv[m]) for m in metrics]])
    lines = [f"# Decoding sweep: {summary.param}", "", "![sweep](sweep.png)", "",
             f"| {summary.param} | samples | " + " | ".join(metrics) + " |",
             "|---" * (len(metrics) + 2) + "|"]
    for j, st in enumerate(summary.settings):
        cells = " | ".join(_cell(summary.main[m][j]) for m in metrics)
        lines.append(f"| {st} | {summary.counts[j]} | {cells} |")
    lines.append("| coefficient of variation | | " + " | ".join(_cell(summary.cv[m]) for m in metrics) + " |")
    (out_dir / "sweep.md").write_text("\n".join(lines) + "\n")
    names = ("md", "json", "csv")
    return {"png": png, **{k: out_dir / f"sweep.{k}" for k in names}}


def _cell(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def setting_label(param: str, value: object) -> str:
    return f"{param}={value}"


def register(eval_subparsers: argparse._SubParsersAction) -> None:
    """Add ``stchat eval sweep`` (wired into ``stchat/commands/eval.py``)."""

    p = eval_subparsers.add_parser(
        "sweep",
        help="run a benchmark once per decoding setting and plot the stability study",
        description="Run the benchmark (resumably) for every value of one decoding parameter, score each run "
        "and write sweep.png (4 panels), sweep.md/json/csv.",
    )
    add_run_arguments(p, sweep=True)
    p.add_argument("--param", default="temperature", choices=sorted(SWEEPABLE),
                   help="decoding parameter to sweep (default: temperature)")
    p.add_argument("--values", "--temperatures", dest="values", nargs="+", required=True,
                   help="values of the parameter, e.g. 0.001 0.01 0.1 1.0")
    p.add_argument("--out", default=None, help="folder of the figure and table (default: <save_dir>/sweep)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:

    values = parse_values(args.param, args.values)
    per_setting: dict[str, list[SampleScore]] = {}
    engines: dict = {}  # the model is loaded once for all settings
    for v in values:
        label = setting_label(args.param, v)
        scores = run_from_args(args, override={args.param: v}, sub_dir_suffix=label, score=True,
                               engines=engines)
        per_setting[label] = scores
    out = Path(args.out) if args.out else Path(args.save_dir) / "sweep"
    summary = summarise_sweep(args.param, per_setting)
    paths = write_sweep_outputs(summary, out)
    print(f"sweep figure: {paths['png']}\nsweep table: {paths['md']}")
    return 0
