"""Build a small benchmark in the official annotation formats from the synthetic ground-truth clips.

The synthetic clips (``tests/fixtures/synthetic/*.mp4`` + ``.json``) carry the exact box of their target
on every frame. From them we write, in the layouts the official dataset classes read
(docs/official_quirks.md#benchmark-layout):

* ``st-align/{stvg,svg,elc}.json`` -- ST-Align lists (``video_path``, ``meta.width/height/split``,
  ``meta.spatial_token`` with ``<bboxes>`` in **pixel xywh** keyed by frame-id strings, ``meta.time_token``
  in original frame ids, and the ``conversations`` templates with their placeholders);
* ``charades/test.json`` -- Charades-STA items ``{image_id, caption, timestamp}`` with the timestamp
  normalised to the whole clip (the official code compares it with normalised predictions as is);
* ``benchmark.json`` -- a manifest listing, per entry, the annotation path, media root and the official
  task / dataset / result-file names, which ``stchat eval run`` accepts with ``--benchmark``.

Several *variants* per clip vary what the breakdown report bins by: the event's share of the clip
(whole clip, a tight frame range around the event, or a short sub-event), the target's size (fixed by
the clip) and the query length (short or >= 50 words). Every ground truth is derived from the clip's
JSON -- nothing is invented: a sub-event is the run of frames where the target is near the start of its
path, computed from its track.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from stchat.errors import StchatError
from stchat.eval.sources import BenchEntry, load_manifest
from stchat.tasks import eval_family, task_names

__all__ = ["BenchEntry", "SyntheticBenchError", "load_manifest", "make_synthetic_benchmark", "register"]

# The generator writes ST-Align items (every task of that family) and Charades-STA items (the tvg family).
SYNTHETIC_TASKS = (*task_names(family="st-align"), *task_names(family="tvg"))
VARIANTS = ("full", "tight", "start")

_SCENE = (
    " The clip shows a plain grey background with a faint grid of darker lines, a small black and white"
    " barcode in the bottom left corner that counts the frames, and one brightly coloured object that"
    " moves across the picture for part of the time. Other shapes may stay still in a corner."
    " Please look carefully at every part of the video before answering the question."
)


class SyntheticBenchError(StchatError):
    """The synthetic clips cannot be turned into a benchmark."""


def _target(clip: dict) -> dict:
    for obj in clip["objects"]:
        if obj["role"] == "target":
            return obj
    raise SyntheticBenchError(f"{clip.get('file', '?')}: no target object in the ground truth")


def _start_run(track: list[dict]) -> list[dict]:
    """Frames where the target is in the first 20 % of its travel along its main axis (a sub-event).

    The main axis is the one along which the box centre moves most; the longest contiguous run of
    qualifying frames is returned, so the sub-event is one interval even for a circular path.
    """
    cx = [(t["box_px"][0] + t["box_px"][2]) / 2 for t in track]
    cy = [(t["box_px"][1] + t["box_px"][3]) / 2 for t in track]
    axis = cx if max(cx) - min(cx) >= max(cy) - min(cy) else cy
    lo, hi = min(axis), max(axis)
    # "start" = the end of the travel range the path begins at
    begin_low = abs(axis[0] - lo) <= abs(axis[0] - hi)
    limit = lo + 0.2 * (hi - lo) if begin_low else hi - 0.2 * (hi - lo)
    ok = [(a <= limit) if begin_low else (a >= limit) for a in axis]
    best: list[dict] = []
    run: list[dict] = []
    for t, good in zip(track, ok, strict=True):
        if good:
            run.append(t)
            if len(run) > len(best):
                best = list(run)
        else:
            run = []
    return best


def _xywh(box_px: list[int]) -> list[int]:
    x1, y1, x2, y2 = box_px
    return [x1, y1, x2 - x1, y2 - y1]


def _variant(clip: dict, variant: str) -> tuple[list[dict], list[int], str] | None:
    """(event frames, inclusive split, event words) for one variant, or None when it has no frames."""
    obj = _target(clip)
    # frames where the clipped box has no area (edge clip syn_d) are not "visible"
    track = [t for t in obj["track"] if (t["box_px"][2] - t["box_px"][0]) * (t["box_px"][3] - t["box_px"][1])]
    n = int(clip["n_frames"])
    if variant == "full":
        return track, [0, n - 1], "is visible"
    if variant == "tight":
        first, last = track[0]["frame"], track[-1]["frame"]
        pad = max(1, (last - first) // 10)
        return track, [max(0, first - pad), min(n - 1, last + pad)], "is visible"
    if variant == "start":
        run = _start_run(track)
        if len(run) < 2:
            return None
        return run, [0, n - 1], "is near the start of its path"
    raise SyntheticBenchError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")


def _st_item(clip: dict, video_rel: str, task: str, variant: str, long_query: bool) -> dict | None:
    got = _variant(clip, variant)
    if got is None:
        return None
    frames, split, words = got
    name = _target(clip)["name"]
    scene = _SCENE if long_query else ""
    s, e = frames[0]["frame"], frames[-1]["frame"]
    bboxes = {str(t["frame"]): _xywh(t["box_px"]) for t in frames}
    spatial: dict = {"<bboxes>": bboxes}
    if task == "stvg":
        q = (
            f"<video>\nAt which time interval in the video can we see the {name} that {words}?{scene}"
            " Please describe the location of the corresponding subject/object in this video."
        )
        a = "From <s> to <e>, Object bounding box: <bboxes>"
    elif task == "svg":
        q = (
            f"<video>\nFrom <s> to <e>, where is the {name} that {words}?{scene}"
            " Please describe the location of the corresponding subject/object in this video."
        )
        a = "Object bounding box: <bboxes>"
    else:  # elc: the query region is the target's box at the start frame
        spatial["<region>"] = _xywh(frames[0]["box_px"])
        q = (
            "<video>\nStarts in <s>, what happened about the subject/object within the specified region"
            f" <region>?{scene} Where is the corresponding subject/object located?"
        )
        a = f"Ends in <e>, the {name} {words} Object bounding box: <bboxes>"
    return {
        "video_path": video_rel,
        "meta": {
            "width": clip["width"],
            "height": clip["height"],
            "split": split,
            "spatial_token": spatial,
            "time_token": {"<s>": s, "<e>": e},
            "variant": variant,
        },
        "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}],
    }


def _tvg_item(clip: dict, video_rel: str, variant: str, long_query: bool) -> dict | None:
    if variant == "tight":  # Charades samples the whole clip: a frame range does not exist there
        return None
    got = _variant(clip, variant)
    if got is None:
        return None
    frames, _, words = got
    n = int(clip["n_frames"])
    caption = f"the {_target(clip)['name']} {words}"
    if long_query:
        caption += "." + _SCENE.rstrip(".")
    # normalised over the sampled range [0, n-1]: sampled frame k/99 <-> frame k/99 * (n-1)
    ts = [round(frames[0]["frame"] / (n - 1), 4), round(frames[-1]["frame"] / (n - 1), 4)]
    return {"image_id": video_rel, "caption": caption, "timestamp": ts, "variant": variant}


def _link(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    try:
        os.symlink(src.resolve(), dst)
    except OSError:
        shutil.copy2(src, dst)


def make_synthetic_benchmark(
    out_dir: str | Path,
    synthetic_dir: str | Path,
    *,
    tasks: tuple[str, ...] = SYNTHETIC_TASKS,
    clips: tuple[str, ...] | None = None,
    variants: tuple[str, ...] = VARIANTS,
    per_task: int | None = None,
) -> list[BenchEntry]:
    """Write the benchmark under ``out_dir`` and return its manifest entries (also in ``benchmark.json``).

    ``clips`` selects clip stems (default: all), ``per_task`` keeps the first N items of each task.
    Query length alternates between short and long (>= 50 words) so both length bins are populated.
    """
    syn = Path(synthetic_dir)
    out = Path(out_dir)
    names = sorted(p.stem for p in syn.glob("*.json") if (syn / f"{p.stem}.mp4").is_file())
    if clips is not None:
        missing = sorted(set(clips) - set(names))
        if missing:
            raise SyntheticBenchError(f"synthetic clips not found in {syn}: {', '.join(missing)}")
        names = [n for n in names if n in clips]
    if not names:
        raise SyntheticBenchError(f"no synthetic clips (NAME.mp4 + NAME.json) in {syn}")
    for t in tasks:
        if t not in SYNTHETIC_TASKS:
            raise SyntheticBenchError(f"unknown task {t!r}; choose from {', '.join(SYNTHETIC_TASKS)}")
    entries: list[BenchEntry] = []
    for t in tasks:
        charades = eval_family(t) == "tvg"  # Charades-STA items; else ST-Align
        root = out / ("charades" if charades else "st-align")
        src = root / "sources"
        src.mkdir(parents=True, exist_ok=True)
        items: list[dict] = []
        k = 0
        for name in names:
            clip = json.loads((syn / f"{name}.json").read_text())
            _link(syn / f"{name}.mp4", src / f"{name}.mp4")
            for v in variants:
                long_query = k % 2 == 1
                item = (
                    _tvg_item(clip, f"{name}.mp4", v, long_query)
                    if charades
                    else _st_item(clip, f"{name}.mp4", t, v, long_query)
                )
                if item is not None:
                    items.append(item)
                    k += 1
        if per_task is not None:
            items = items[:per_task]
        ann = root / ("test.json" if charades else f"{t}.json")
        ann.write_text(json.dumps(items, indent=1))
        entries.append(
            BenchEntry(
                name="charades_sta" if charades else t,
                task="tvg" if charades else "st-align",
                dataset="charades_sta" if charades else "vidstg",
                task_kind=t,
                ann_path=str(ann),
                data_folder=str(src),
                num_samples=len(items),
            )
        )
    # Paths in the manifest are relative to its folder, so the benchmark folder can be moved or mounted
    # elsewhere (load_manifest resolves them against the manifest's location).
    rel = [{**e.__dict__, "ann_path": os.path.relpath(e.ann_path, out),
            "data_folder": os.path.relpath(e.data_folder, out)} for e in entries]
    (out / "benchmark.json").write_text(json.dumps(rel, indent=1))
    return entries


def default_synthetic_dir() -> Path | None:
    """``$STCHAT_SYNTHETIC`` or the clips vendored in a source checkout (``tests/fixtures/synthetic``)."""
    env = os.environ.get("STCHAT_SYNTHETIC")
    cand = Path(env) if env else Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "synthetic"
    return cand if cand.is_dir() else None


def register(eval_subparsers: argparse._SubParsersAction) -> None:
    """Add ``stchat eval make-synthetic`` (wired into ``stchat/commands/eval.py``)."""
    p = eval_subparsers.add_parser(
        "make-synthetic",
        help="write a small benchmark with exact ground truth from the synthetic clips (offline demo)",
        description="Write ST-Align (stvg/svg/elc) and Charades-STA annotation files in the official layout "
        "(st-align/, charades/ with sources/ media folders) plus a benchmark.json manifest, from the "
        "synthetic clips whose ground truth is exact. Run it with 'stchat eval run --benchmark "
        "OUT/benchmark.json' or '--official-root OUT'.",
    )
    p.add_argument("--out", required=True, help="folder to write the benchmark into")
    p.add_argument("--synthetic-dir", default=None,
                   help="folder of NAME.mp4 + NAME.json clips (default: $STCHAT_SYNTHETIC or the vendored "
                        "tests/fixtures/synthetic)")
    p.add_argument("--tasks", nargs="+", default=list(SYNTHETIC_TASKS), choices=SYNTHETIC_TASKS)
    p.add_argument("--clips", nargs="+", default=None, metavar="STEM", help="only these clips (file stems)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--per-task", type=int, default=None, metavar="N", help="keep the first N items per task")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    syn = Path(args.synthetic_dir) if args.synthetic_dir else default_synthetic_dir()
    if syn is None or not syn.is_dir():
        raise SyntheticBenchError(
            f"synthetic clip folder not found: {syn or '(none)'}; "
            "pass --synthetic-dir or set STCHAT_SYNTHETIC"
        )
    if args.per_task is not None and args.per_task < 1:
        raise SyntheticBenchError("--per-task must be at least 1")
    try:
        entries = make_synthetic_benchmark(args.out, syn, tasks=tuple(args.tasks),
                                           clips=tuple(args.clips) if args.clips else None,
                                           variants=tuple(args.variants), per_task=args.per_task)
    except OSError as exc:
        reason = exc.strerror or exc
        raise SyntheticBenchError(f"cannot write the benchmark to {args.out}: {reason}") from None
    for e in entries:
        print(f"{e.name}: {e.num_samples} samples -> {e.ann_path}", file=sys.stderr)
    print(Path(args.out) / "benchmark.json")
    return 0
