"""``stchat eval report``: one self-contained folder describing a benchmark run.

``<out>/report.md`` and ``report.html`` (the same content; the HTML embeds its images as base64 so the
single file can be mailed), ``metrics.json`` (official metrics, our extra metrics, every breakdown table,
correlations, gallery index), ``plots/*.png`` and ``gallery/`` (best and worst cases rendered by the app's
renderer). Scores come from the official-identical scorer (:func:`stchat.eval.score.score_dir`); this
module only arranges them.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stchat.errors import StchatError
from stchat.eval import breakdown as bd
from stchat.eval.breakdown import BinRow, SampleScore
from stchat.eval.captions import caption_score
from stchat.eval.results import read_records
from stchat.eval.score import score_dir


class ReportError(StchatError):
    """A report cannot be built (no result files, unwritable folder...)."""


# ------------------------------------------------------------------------------------------------ scoring
def scored_samples(
    result_dir: str | Path, captions: bool = True
) -> tuple[Any, dict[str, list[SampleScore]]]:
    """Score every result file below ``result_dir`` (official routing) and attach per-sample features.

    Returns ``(score report, {result name: samples})``. Per task: SVG's official tIoU is 0 by rule
    (Q21), so it is left out (``None``) of the temporal statistics; TVG has no sIoU; REC's box IoU is its
    sIoU, and REC samples the official scorer drops (unparsable answer, Q20) are left out as well.
    """
    root = Path(result_dir)
    if not root.is_dir():
        raise ReportError(f"result folder not found: {root}")
    report = score_dir(root, captions=caption_score if captions else None)
    if not report.task_scores:
        raise ReportError(f"no scorable result files (*.json under /st-align/, /tvg/ or /rec/) in {root}")
    out: dict[str, list[SampleScore]] = {}
    for name, ts in report.task_scores.items():
        records = read_records(report.extra[name]["path"]).records
        samples = []
        for rs in ts.records:
            rec = records[rs.index]
            if ts.task == "rec" and not rs.scored:
                continue
            samples.append(
                SampleScore(
                    index=rs.index,
                    sample_id=str(rec.get("id", rs.index)),
                    task=ts.task,
                    tiou=None if ts.task in ("svg", "rec") else float(rs.tiou or 0.0),
                    siou=None if ts.task == "tvg" else float(rs.siou or 0.0),
                    viou=None if rs.stiou is None else float(rs.stiou),
                    duration_frac=bd.duration_fraction(rec),
                    size_frac=bd.size_fraction(rec),
                    query_words=bd.query_words(rec),
                    record=rec,
                )
            )
        out[name] = samples
    return report, out


# ----------------------------------------------------------------------------------------------- document
@dataclass
class Section:
    title: str
    level: int = 2
    paragraphs: list[str] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)  # caption, head, rows
    images: list[tuple[str, Path]] = field(default_factory=list)  # caption, path


def _f(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def _bin_rows(rows: Sequence[BinRow]) -> list[list[str]]:
    return [[r.label, str(r.count), _f(r.mean_tiou), _f(r.mean_siou), _f(r.joint, pct=True)] for r in rows]


def to_markdown(sections: Sequence[Section], root: Path) -> str:
    out: list[str] = []
    for s in sections:
        out += ["#" * s.level + " " + s.title, ""]
        out += [p + "\n" for p in s.paragraphs]
        for cap, head, rows in s.tables:
            if cap:
                out += [f"**{cap}**", ""]
            out.append("| " + " | ".join(head) + " |")
            out.append("|" + "---|" * len(head))
            out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
            out.append("")
        for cap, img in s.images:
            out += [f"![{cap}]({img.relative_to(root).as_posix()})", ""]
    return "\n".join(out)


def to_html(sections: Sequence[Section], title: str) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:.5em 0 1.2em}td,th{border:1px solid #bbb;padding:3px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%;"
        "border:1px solid #ddd;margin:.3em 0}figure{display:inline-block;margin:.4em;vertical-align:top}"
        "figcaption{font-size:.85em;color:#444;max-width:480px}</style></head><body>",
    ]
    for s in sections:
        lvl = min(6, s.level)
        parts.append(f"<h{lvl}>{html.escape(s.title)}</h{lvl}>")
        parts += [f"<p>{html.escape(p)}</p>" for p in s.paragraphs]
        for cap, head, rows in s.tables:
            parts.append("<table>")
            if cap:
                parts.append(f"<caption><b>{html.escape(cap)}</b></caption>")
            parts.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>")
            for r in rows:
                parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
            parts.append("</table>")
        for cap, img in s.images:
            data = base64.b64encode(img.read_bytes()).decode("ascii")
            parts.append(
                f"<figure><img alt='{html.escape(cap)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(cap)}</figcaption></figure>"
            )
    parts.append("</body></html>")
    return "\n".join(parts)


# ------------------------------------------------------------------------------------------------- build
@dataclass
class ReportOutputs:
    folder: Path
    markdown: Path
    html: Path
    metrics: Path
    plots: list[Path]
    gallery: list[Path]


def build_report(
    result_dir: str | Path,
    out_dir: str | Path,
    *,
    query_edges: Sequence[int] = bd.DEFAULT_QUERY_EDGES,
    joint_threshold: float = 0.5,
    gallery_n: int = 3,
    captions: bool = True,
) -> ReportOutputs:
    """Build the report folder for every result file below ``result_dir``."""
    from stchat.eval import plots  # matplotlib is imported only when a report is drawn
    from stchat.eval.gallery import render_gallery

    out = Path(out_dir)
    try:
        (out / "plots").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportError(f"cannot create report folder {out}: {exc.strerror or exc}") from None
    report, per_file = scored_samples(result_dir, captions=captions)
    sections = [
        Section(
            "stchat evaluation report",
            level=1,
            paragraphs=[
                f"Results: {Path(result_dir).resolve()}",
                f"Joint success = tIoU >= {joint_threshold} and sIoU >= {joint_threshold} (one of them where "
                "the task has only one). SVG's official tIoU is 0 by rule, so SVG tables show sIoU only.",
            ],
        )
    ]
    metrics_json: dict = {
        "official": report.official,
        "extra": {k: {kk: vv for kk, vv in v.items() if kk != "path"} for k, v in report.extra.items()},
        "breakdowns": {},
        "correlation": {},
        "gallery": {},
        "warnings": list(report.warnings),
        "settings": {"query_edges": list(query_edges), "joint_threshold": joint_threshold},
    }
    off_rows = []
    for name, vals in report.official.items():
        flat = {k: v for k, v in vals.items() if isinstance(v, (int, float))}
        off_rows.append([name, ", ".join(f"{k}={v:.4g}" for k, v in flat.items())])
    sections.append(Section("Official metrics", tables=[("", ["result", "metrics"], off_rows)]))

    plot_files: list[Path] = []
    gallery_files: list[Path] = []
    for name, samples in per_file.items():
        task = report.task_scores[name].task
        tables = bd.breakdowns(samples, query_edges, joint_threshold)
        corr = bd.correlation(samples)
        metrics_json["breakdowns"][name] = {k: [r.as_dict() for r in rows] for k, rows in tables.items()}
        metrics_json["correlation"][name] = corr
        sec = Section(f"{name} ({task}, {len(samples)} samples)")
        for tname, rows in tables.items():
            head = [tname, "n", "mean tIoU", "mean sIoU", "joint success"]
            sec.tables.append((tname, head, _bin_rows(rows)))
        sec.paragraphs.append(
            f"tIoU vs sIoU: n={corr['n']}, Pearson r={_f(corr['pearson'])}, "
            f"Spearman rho={_f(corr['spearman'])}"
        )
        title = f"{name} ({task})"
        imgs = [
            ("breakdowns", plots.breakdown_bars(tables, out / "plots" / f"{name}_breakdowns.png", title)),
            ("histograms", plots.histograms(samples, out / "plots" / f"{name}_histograms.png", title)),
        ]
        if corr["n"]:
            scatter = plots.scatter_tiou_siou(samples, out / "plots" / f"{name}_scatter.png", title)
            imgs.append(("tIoU vs sIoU", scatter))
        sec.images += [(f"{name}: {c}", p) for c, p in imgs]
        plot_files += [p for _, p in imgs]
        sections.append(sec)

        if gallery_n > 0:
            cases = render_gallery(samples, out / "gallery" / name, gallery_n)
            gsec = Section(f"{name}: best and worst cases", level=3)
            entries = []
            for c in cases:
                label = (f"{c.kind} #{c.rank}: id {c.sample.sample_id}, tIoU {_f(c.sample.tiou)}, "
                         f"sIoU {_f(c.sample.siou)}")
                entries.append({"kind": c.kind, "rank": c.rank, "id": c.sample.sample_id,
                                "tiou": c.sample.tiou, "siou": c.sample.siou,
                                "folder": c.folder.relative_to(out).as_posix(), "error": c.error,
                                "files": [p.relative_to(out).as_posix() for p in c.files]})
                gallery_files += c.files
                if c.still is not None:
                    gsec.images.append((label, c.still))
                else:
                    gsec.paragraphs.append(f"{label}: not rendered ({c.error or 'no frame'})")
                gsec.paragraphs.append(f"{label}; query: {bd.query_text(c.sample.record)[:160]}; "
                                       f"answer: {str(c.sample.record.get('outputs', ''))[:160]}; "
                                       f"files: {c.folder.relative_to(out).as_posix()}/")
            metrics_json["gallery"][name] = entries
            sections.append(gsec)

    if report.warnings:
        sections.append(Section("Warnings", paragraphs=list(report.warnings)))
    md = out / "report.md"
    md.write_text(to_markdown(sections, out))
    page = out / "report.html"
    page.write_text(to_html(sections, "stchat evaluation report"))
    mj = out / "metrics.json"
    mj.write_text(json.dumps(metrics_json, indent=1, default=str))
    return ReportOutputs(out, md, page, mj, plot_files, gallery_files)


# ---------------------------------------------------------------------------------------------------- CLI
def register(eval_subparsers: argparse._SubParsersAction) -> None:
    """Add ``stchat eval report`` (wired into ``stchat/commands/eval.py``)."""
    p = eval_subparsers.add_parser(
        "report",
        help="breakdown tables, plots and a case gallery for a result folder",
        description="Score every result file below RESULT_DIR (official routing) and write a self-contained "
        "report folder: report.md, report.html (images embedded), metrics.json, plots/, gallery/.",
    )
    p.add_argument("result_dir", help="folder holding result files in the official layout")
    p.add_argument("--out", required=True, help="report folder to write")
    p.add_argument("--query-bins", type=int, nargs="+", default=list(bd.DEFAULT_QUERY_EDGES),
                   metavar="WORDS", help="query-length bin edges in words (default: 50)")
    p.add_argument("--joint-threshold", type=float, default=0.5, help="IoU threshold of joint success")
    p.add_argument("--gallery", type=int, default=3, metavar="N",
                   help="best and worst cases to render (0: none)")
    p.add_argument("--no-captions", action="store_true", help="skip ELC caption scoring (needs Java)")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    if not 0 <= args.joint_threshold <= 1:
        raise ReportError("--joint-threshold must be in [0, 1]")
    try:
        edges = bd.query_bins(args.query_bins)
    except ValueError as exc:
        raise ReportError(str(exc)) from None
    del edges
    out = build_report(args.result_dir, args.out, query_edges=args.query_bins,
                       joint_threshold=args.joint_threshold, gallery_n=args.gallery,
                       captions=not args.no_captions)
    print(f"report: {out.markdown}\nhtml:   {out.html}\nmetrics: {out.metrics}")
    return 0
