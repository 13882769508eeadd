"""VidOR annotations -> STVG training samples with relation-based queries (stchat format).

VidOR gives, per video, object tubes (``trajectories``: one list of ``{tid, bbox}`` per frame) and
relation instances (``subject_tid``, ``predicate``, ``object_tid``, ``begin_fid``, ``end_fid``, end
exclusive). A relation becomes the query "the <subject> that <predicate> the <object>"; its answer is
the subject's span and boxes. When several relation instances with the same wording overlap in time,
the query cannot tell their subjects apart, so exactly one target is kept:
``b* = argmax_i s(q, b_i)`` over the candidate subjects, with

* the **model** scorer: teacher-forced mean log-likelihood of the answer's coordinate tokens under a
  loaded LLaVA-ST (how well the model already agrees with that tube), or
* the **heuristic** (model-free) fallback: the candidate's visibility, i.e. mean box area (as a fraction
  of the frame) times the fraction of the relation's frames where it has a box.

Scores and the choice are written into each sample's ``meta.target_selection``. Malformed annotations
(missing keys, unknown tids, empty or reversed intervals, bad boxes) are reported and skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from stchat.errors import StchatError
from stchat.model.loading import load_model
from stchat.train.data import TrainDataset, collate, to_record
from stchat.train.features import TowerCache
from stchat.train.forward import training_loss, unwrap
from stchat.train.objective import CoordVocab
from stchat.train.synthetic import STVG_SUFFIX
from stchat.video.sampling import official_frame_indices

Scorer = Callable[[dict], float]
N_BOXES = 3


class VidorError(StchatError):
    """A VidOR annotation cannot be used."""


def _box(b: Any, w: float, h: float) -> list[float]:
    try:
        x1, y1, x2, y2 = (float(b[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
    except (KeyError, TypeError, ValueError):
        raise VidorError("a bbox lacks xmin/ymin/xmax/ymax numbers") from None
    if x2 <= x1 or y2 <= y1:
        raise VidorError(f"empty bbox {[x1, y1, x2, y2]}")
    return [min(max(x1 / w, 0.0), 1.0), min(max(y1 / h, 0.0), 1.0), min(max(x2 / w, 0.0), 1.0),
            min(max(y2 / h, 0.0), 1.0)]


def _parse(ann: dict) -> dict[str, Any]:
    for key in ("video_id", "frame_count", "width", "height", "subject/objects", "trajectories",
                "relation_instances"):
        if key not in ann:
            raise VidorError(f"missing key {key!r}")
    w, h, n = float(ann["width"]), float(ann["height"]), int(ann["frame_count"])
    if w <= 0 or h <= 0 or n < 1:
        raise VidorError("width, height and frame_count must be positive")
    cats = {int(o["tid"]): str(o["category"]) for o in ann["subject/objects"]}
    tubes: dict[int, dict[int, list[float]]] = {t: {} for t in cats}
    for fid, frame in enumerate(ann["trajectories"]):
        for item in frame or []:
            tid = int(item["tid"])
            if tid not in cats:
                raise VidorError(f"trajectory of unknown tid {tid} at frame {fid}")
            tubes[tid][fid] = _box(item.get("bbox"), w, h)
    rels = []
    for r in ann["relation_instances"]:
        s, o, b, e = int(r["subject_tid"]), int(r["object_tid"]), int(r["begin_fid"]), int(r["end_fid"])
        if s not in cats or o not in cats:
            raise VidorError(f"relation refers to unknown tid {s if s not in cats else o}")
        if not 0 <= b < e <= n:
            raise VidorError(f"relation interval [{b}, {e}) is empty or outside the video")
        rels.append({"subject": s, "object": o, "predicate": str(r["predicate"]), "begin": b, "end": e})
    return {"video_id": str(ann["video_id"]), "video_path": ann.get("video_path", f"{ann['video_id']}.mp4"),
            "n": n, "categories": cats, "tubes": tubes, "relations": rels}


def _query(cats: dict[int, str], rel: dict) -> str:
    subj, obj = cats[rel["subject"]].replace("_", " "), cats[rel["object"]].replace("_", " ")
    return f"the {subj} that {rel['predicate'].replace('_', ' ')} the {obj}"


def _answer(tube: dict[int, list[float]], rel: dict, n: int) -> tuple[str, list[int]] | None:
    """Span + up to 3 boxes at sampled frames inside the relation where the tube has a box."""
    idx = official_frame_indices(n)
    inside = [k for k, f in enumerate(idx) if rel["begin"] <= f < rel["end"]]
    with_box = [k for k in inside if idx[k] in tube]
    if not inside or not with_box:
        return None
    picks = sorted({with_box[round(i * (len(with_box) - 1) / max(1, N_BOXES - 1))] for i in range(N_BOXES)})
    pairs = ", ".join(f"{k / 99:.4f}: [" + ",".join(f"{v:.4f}" for v in tube[idx[k]]) + "]" for k in picks)
    return f"{{{inside[0] / 99:.4f},{inside[-1] / 99:.4f}}}, {pairs}", picks


def heuristic_score(sample: dict) -> float:
    """Model-free visibility score: mean box area x coverage of the relation's frames."""
    stats = sample["meta"]["candidate_stats"]
    return stats["mean_area"] * stats["coverage"]


def model_scorer(model, tokenizer) -> Scorer:
    """Teacher-forced mean log-likelihood of the answer's coordinate tokens under ``model``.

    The score of a candidate is ``-mean`` of the official soft two-hot loss over the rows that predict a
    coordinate (``<TEMP/HEIGHT/WIDTH-OUTPUT>``), so it is highest for the candidate whose locations
    sit on the bins the model puts most mass on. Candidates of one query share the video: its frozen
    SigLIP output is computed once (``TowerCache``) and the model is run in eval mode (no dropout).
    """
    vocab = CoordVocab.from_tokenizer(tokenizer)
    cache = TowerCache(max_bytes=1 << 30)
    unwrap(model).eval()

    def score(sample: dict) -> float:
        rec = to_record(sample, Path(sample["meta"]["video_root"]), 0, "stchat")
        if rec is None:
            raise VidorError(f"candidate {sample.get('id')} has no video")
        example = TrainDataset([rec], tokenizer, skip_media=cache.__contains__)[0]
        batch = collate([example], pad_id=tokenizer.pad_token_id)
        with torch.no_grad():
            out = training_loss(model, batch, vocab, tower_cache=cache)
        coord = out.targets[0].cols[:, 0] >= vocab.vocab_size
        if not bool(coord.any()):
            raise VidorError(f"candidate {sample.get('id')} has no coordinate in its answer")
        return -float(out.token_losses[0][coord.to(out.token_losses[0].device)].mean())

    return score


def samples_from_annotation(ann: dict, video_root: Path, scorer: Scorer, scorer_name: str) -> list[dict]:
    v = _parse(ann)
    groups: list[list[dict]] = []
    for rel in sorted(v["relations"], key=lambda r: (r["begin"], r["subject"])):
        q = _query(v["categories"], rel)
        for g in groups:  # same wording and overlapping in time -> ambiguous, one group
            if _query(v["categories"], g[0]) == q and any(
                    rel["begin"] < o["end"] and o["begin"] < rel["end"] for o in g):
                g.append(rel)
                break
        else:
            groups.append([rel])
    out = []
    for g in groups:
        q = _query(v["categories"], g[0])
        candidates = []
        for rel in g:
            ans = _answer(v["tubes"][rel["subject"]], rel, v["n"])
            if ans is None:
                continue
            tube = v["tubes"][rel["subject"]]
            frames = [f for f in range(rel["begin"], rel["end"]) if f in tube]
            areas = [(tube[f][2] - tube[f][0]) * (tube[f][3] - tube[f][1]) for f in frames]
            question = (f"<video>\nAt which time interval in the video can we see {q} occurring? "
                        "Please describe the location of the corresponding subject/object in this video."
                        + STVG_SUFFIX)
            candidates.append({
                "id": f"{v['video_id']}-{rel['subject']}-{rel['predicate']}-{rel['begin']}",
                "video": v["video_path"], "format": "stchat",
                "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": ans[0]}],
                "meta": {"video_root": str(video_root), "query": q, "subject_tid": rel["subject"],
                         "interval": [rel["begin"], rel["end"]],
                         "candidate_stats": {"mean_area": sum(areas) / len(areas),
                                             "coverage": len(frames) / (rel["end"] - rel["begin"])}}})
        if not candidates:
            continue
        scores = [float(scorer(c)) if len(candidates) > 1 else 0.0 for c in candidates]
        best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
        chosen = candidates[best]
        chosen["meta"]["target_selection"] = {
            "scorer": scorer_name if len(candidates) > 1 else "unique",
            "candidates": [c["meta"]["subject_tid"] for c in candidates], "scores": scores,
            "chosen_tid": chosen["meta"]["subject_tid"]}
        out.append(chosen)
    return out


def prepare_vidor(annotations: str | Path, out: str | Path, video_root: str | Path | None = None,
                  scorer: str = "auto", model: str | None = None, max_samples: int | None = None
                  ) -> dict[str, Any]:
    """Convert a VidOR annotation file or folder; writes ``out`` (JSON list) and returns a report."""
    src = Path(annotations)
    if not src.exists():
        raise VidorError(f"VidOR annotations not found: {src}")
    files = sorted(src.rglob("*.json")) if src.is_dir() else [src]
    root = Path(video_root) if video_root else (src if src.is_dir() else src.parent)
    if scorer == "model" or (scorer == "auto" and model):
        if not model:
            raise VidorError("the model scorer needs --model")
        net, tok = load_model(model)
        score_fn, name = model_scorer(net, tok), "model"
    else:
        score_fn, name = heuristic_score, "heuristic"
    samples: list[dict] = []
    skipped: list[dict[str, str]] = []
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
            samples += samples_from_annotation(data, root, score_fn, name)
        except (StchatError, KeyError, TypeError, ValueError) as exc:  # JSON/Unicode errors are ValueErrors
            # StchatError: our own checks, and a model scorer's missing video or bad sample
            msg = exc.args[0] if isinstance(exc, StchatError) else f"{type(exc).__name__}: {exc}"
            skipped.append({"file": str(f), "reason": str(msg)})
        if max_samples is not None and len(samples) >= max_samples:
            samples = samples[:max_samples]
            break
    if not samples and skipped:
        first = skipped[0]
        raise VidorError(f"no STVG sample: all {len(skipped)} annotation file(s) were skipped "
                         f"(first: {first['file']}: {first['reason']})")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(samples, indent=1))
    return {"files": len(files), "samples": len(samples), "skipped": len(skipped), "scorer": name,
            "skipped_details": skipped, "out": str(out)}
