"""Per-sample exports of ``stchat eval run`` (issue #12, item 5), read back and checked.

The runner's writer, shards, merge and end-of-run pass are the real ones; the answers are written from
each sample's own ground truth in the model's token format (what a perfect model says), because the
exports depend on the answer text only, and the tiny test model's answers place nothing. Expected
frames and seconds are computed here from the official sampling formula and the video's own frame
times, not with stchat's mapping.
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import pytest

from stchat.eval import distributed as dist_mod
from stchat.eval import exports as ex
from stchat.eval.results import iter_result_files
from stchat.eval.samples import Sample, load_samples
from stchat.eval.sources import load_manifest
from stchat.eval.synthetic_bench import make_synthetic_benchmark
from stchat.eval.writer import run_samples
from stchat.video.io import frame_times

CLIP = "syn_c_640x360_30fps_noaudio_longgop"
KEY_STEP = 7  # answer a box on every 7th sampled frame of the event: frames in between are interpolated


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory, synthetic_dir: Path) -> dict[str, list[Sample]]:
    root = tmp_path_factory.mktemp("bench")
    make_synthetic_benchmark(root, synthetic_dir, tasks=("stvg", "svg", "tvg"), clips=(CLIP,))
    entries = {e.task_kind: e for e in load_manifest(root / "benchmark.json")}
    return {task: load_samples(entries[task]) for task in ("stvg", "svg", "tvg")}


def _sampled(split: list[int]) -> list[int]:
    d = split[1] - split[0] + 1
    return [split[0] + round(i / 99 * (d - 1)) for i in range(100)]


def _tok(v: float) -> int:
    return min(99, max(0, round(v * 99)))


def _answer(sample: Sample, task: str) -> str:
    """The sample's ground truth in the model's answer format."""
    rec = sample.record
    if task == "tvg":
        s, e = rec["gt"]
        return "{" + f"<TEMP-{_tok(s):03d}><TEMP-{_tok(e):03d}>" + "}"
    ids = _sampled(rec["split"])
    w, h = rec["width"], rec["height"]
    gt = rec["gt"]["svg"]
    ks = [k for k in range(100) if str(ids[k]) in gt][::KEY_STEP]
    pairs = []
    for k in ks:
        x1, y1, x2, y2 = gt[str(ids[k])]
        pairs.append(f"<TEMP-{k:03d}>: [<WIDTH-{_tok(x1 / w):03d}><HEIGHT-{_tok(y1 / h):03d}>"
                     f"<WIDTH-{_tok(x2 / w):03d}><HEIGHT-{_tok(y2 / h):03d}>]")
    if task == "svg":
        return " ".join(pairs)
    a, b = (min(range(100), key=lambda k: abs(ids[k] - f)) for f in rec["gt"]["tvg"])  # nearest sampled
    return "{" + f"<TEMP-{a:03d}><TEMP-{b:03d}>" + "} " + " ".join(pairs)


def _infer(task: str, calls: list[str] | None = None):
    def infer(sample: Sample) -> dict:
        if calls is not None:
            calls.append(sample.sample_id)
        return {**sample.record, "outputs": _answer(sample, task), "id": sample.sample_id}

    return infer


# ----------------------------------------------------------------------------------- readers


def _vtt_cues(text: str) -> list[tuple[float, float, str]]:
    """A minimal WebVTT reader: the header, then cues of [id] / 'start --> end' / text lines."""
    lines = text.split("\n")
    assert lines[0] == "WEBVTT" and lines[1] == ""
    cues, i = [], 2
    stamp = r"(\d{2}):(\d{2}):(\d{2})\.(\d{3})"
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        if "-->" not in lines[i]:
            i += 1  # cue identifier
        m = re.fullmatch(stamp + " --> " + stamp, lines[i])
        assert m, lines[i]
        g = [int(x) for x in m.groups()]
        start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
        end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
        i += 1
        body = []
        while i < len(lines) and lines[i].strip():
            body.append(lines[i])
            i += 1
        cues.append((start, end, "\n".join(body)))
    return cues


def _srt_cue(text: str) -> tuple[float, float]:
    m = re.fullmatch(r"1\n(\d{2}):(\d{2}):(\d{2}),(\d{3}) --> (\d{2}):(\d{2}):(\d{2}),(\d{3})\n.+\n", text)
    assert m, text
    g = [int(x) for x in m.groups()]
    return g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000, g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000


def _folder_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("task", ["stvg", "svg", "tvg"])
def test_exports_read_back(bench: dict[str, list[Sample]], task: str, tmp_path: Path) -> None:
    samples = bench[task]
    final = tmp_path / "m" / "s" / task / "d" / f"{task}.json"
    root = ex.exports_root(final)
    run_samples(samples, ex.ExportingInfer(_infer(task), task, root), final, progress=False)
    assert sorted(p.name for p in root.iterdir()) == sorted(s.sample_id for s in samples)
    for s in samples:
        folder = ex.sample_dir(root, s.sample_id)
        assert sorted(p.name for p in folder.iterdir()) == sorted(ex.FILES)
        times = frame_times(s.media_path)
        n_video = len(times)
        split = s.split or [0, n_video - 1]
        ids = _sampled(split)
        answer = _answer(s, task)
        temps = [int(t) for t in re.findall(r"<TEMP-(\d+)>", answer)]
        if task == "svg":
            # no span in the answer: the span the question asked about is the segment
            asked = re.search(r"\{(\d+(?:\.\d+)?),(\d+(?:\.\d+)?)\}", s.record["prompt"])
            first, last = (ids[round(float(v) * 99)] for v in asked.groups())
            keys = temps
        else:
            first, last = ids[temps[0]], ids[temps[1]]
            keys = temps[2:]
        start_s = round(float(times[first]), 3)
        end_s = round(float(times[last + 1]), 3) if last + 1 < n_video else None

        (cue,) = _vtt_cues((folder / "segment.vtt").read_text())
        assert cue[0] == start_s and cue[2]
        if end_s is not None:
            assert cue[1] == end_s
        (clip_cue,) = _vtt_cues((folder / "clip.vtt").read_text())
        assert clip_cue[0] == 0 and clip_cue[1] == pytest.approx(cue[1] - cue[0], abs=1e-3)
        assert _srt_cue((folder / "segment.srt").read_text()) == cue[:2]

        rows = [r.split(",") for r in (folder / "boxes_mot.csv").read_text().splitlines()]
        coco = json.loads(gzip.decompress((folder / ex.COCO_NAME).read_bytes()))
        n_clip = last - first + 1
        assert len(coco["images"]) == n_clip and coco["videos"][0]["length"] == n_clip
        assert [im["source_frame"] for im in coco["images"]] == list(range(first, last + 1))
        if task == "tvg":
            assert rows == [] and coco["annotations"] == [] and coco["tracks"] == []
            continue
        # one MOT row per interpolated frame of the clip: the track covers the whole segment
        assert [int(r[0]) for r in rows] == list(range(1, n_clip + 1))
        assert all(len(r) == 10 and r[1] == "1" and r[7:] == ["-1", "-1", "-1"] for r in rows)
        key_frames = {ids[k] for k in keys if first <= ids[k] <= last}
        model_rows = [i for i, r in enumerate(rows) if float(r[6]) == 1.0]
        assert [first + i for i in model_rows] == sorted(key_frames)
        assert len(key_frames) >= 2 and len(rows) > len(key_frames)  # frames in between are interpolated
        w, h = s.record["width"], s.record["height"]
        toks = re.findall(r"<TEMP-(\d+)>: \[<WIDTH-(\d+)><HEIGHT-(\d+)><WIDTH-(\d+)><HEIGHT-(\d+)>\]", answer)
        by_frame = {ids[int(k)]: [int(v) for v in b] for k, *b in toks}
        for i in model_rows:
            a, b, c, d = by_frame[first + i]
            x1, y1 = round(a / 99 * w), round(b / 99 * h)
            assert [int(v) for v in rows[i][2:6]] == [x1, y1, round(c / 99 * w) - x1, round(d / 99 * h) - y1]
        anns = coco["annotations"]
        assert len(anns) == len(rows) and len(coco["tracks"]) == 1
        assert [a["bbox"] for a in anns] == [[int(v) for v in r[2:6]] for r in rows]
        assert [a["keyframe"] for a in anns] == [float(r[6]) == 1.0 for r in rows]
        assert {a["image_id"] for a in anns} <= {im["id"] for im in coco["images"]}
    # nothing under the result folder looks like a result file to a scorer (official: every *.json)
    assert list(iter_result_files(tmp_path)) == [str(final)]


def test_sharded_resumed_and_replaced_runs_equal_one_run(
    bench: dict[str, list[Sample]], tmp_path: Path
) -> None:
    samples = bench["stvg"]
    assert len(samples) >= 3
    ref_final = tmp_path / "ref" / "stvg.json"
    run_samples(samples, ex.ExportingInfer(_infer("stvg"), "stvg", ex.exports_root(ref_final)), ref_final,
                progress=False)
    reference = _folder_bytes(ex.exports_root(ref_final))

    # two ranks, one after the other (the writer is the same in parallel), then the merge and end pass
    final = tmp_path / "sharded" / "stvg.json"
    root = ex.exports_root(final)
    for rank in range(2):
        run_samples(samples, ex.ExportingInfer(_infer("stvg"), "stvg", root), final, rank=rank, world=2,
                    progress=False)
    dist_mod.merge_parts(final, [s.sample_id for s in samples])
    assert ex.finish_exports(samples, final, "stvg", root) == 0  # every folder was already there
    assert _folder_bytes(root) == reference

    # resumed: a first run of two samples with exports off; a kill left a temporary folder and published
    # sample 2's folder (from a different answer) without its record; the resumed run with exports on
    final = tmp_path / "resumed" / "stvg.json"
    root = ex.exports_root(final)
    run_samples(samples[:2], _infer("stvg"), final, progress=False)
    (root / ".tmp-killed").mkdir(parents=True)
    (root / ".tmp-killed" / "segment.vtt").write_text("WEBVTT\n\n")
    stale = samples[2]
    ex.write_sample_exports(stale, {**stale.record, "outputs": "{<TEMP-000><TEMP-099>}"}, "stvg", root)
    stale_bytes = (root / stale.sample_id / "segment.vtt").read_bytes()
    calls: list[str] = []
    run_samples(samples, ex.ExportingInfer(_infer("stvg", calls), "stvg", root), final, progress=False)
    assert calls == [s.sample_id for s in samples[2:]]  # finished samples are not run again
    assert ex.finish_exports(samples, final, "stvg", root) == 2  # their folders are filled in
    assert _folder_bytes(root) == reference  # the stale folder was replaced, the leftover removed
    assert (root / stale.sample_id / "segment.vtt").read_bytes() != stale_bytes
    ids = [r["id"] for r in dist_mod.read_jsonl(final)]
    assert sorted(ids) == sorted(s.sample_id for s in samples) and len(ids) == len(set(ids))

    # a missing folder (a kill between moving the old one aside and renaming the new one) is written again
    shutil.rmtree(root / samples[1].sample_id)
    assert ex.finish_exports(samples, final, "stvg", root) == 1
    assert _folder_bytes(root) == reference


def test_nothing_to_place_and_image_tasks_get_no_folder(
    bench: dict[str, list[Sample]], tmp_path: Path
) -> None:
    s = bench["stvg"][0]
    root = tmp_path / "x.exports"
    assert ex.write_sample_exports(s, {**s.record, "outputs": "I cannot see it."}, "stvg", root) is None
    assert ex.write_sample_exports(s, {**s.record, "outputs": "[0.1,0.1,0.5,0.5]"}, "rec", root) is None
    assert not root.exists()
    with pytest.raises(Exception, match="cannot name an export folder"):
        ex.sample_dir(root, "../up")
