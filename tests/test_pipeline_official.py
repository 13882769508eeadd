"""Every official demo clip probes and renders; its clip starts at the mapped frame."""

from __future__ import annotations

import json

import pytest

from stchat.answer import ParsedAnswer
from stchat.pipeline import render_answer
from stchat.video.io import probe


@pytest.mark.slow
def test_every_official_clip_renders(official_dir, tmp_path):
    data = json.loads((official_dir / "examples.json").read_text())
    videos = sorted(
        {e["file"]: e for e in data["examples"] if e["present"] and e["modality"] == "video"}.items()
    )
    assert len(videos) >= 10
    for rel, ex in videos:
        path = official_dir / rel
        info = probe(path)
        # A short segment (a tenth of the split) with a moving box: rendering every clip stays fast.
        ans = ParsedAnswer(
            "stvg", "t", span=(0.3, 0.4), boxes={0.3: (0.1, 0.1, 0.4, 0.5), 0.4: (0.5, 0.4, 0.9, 0.9)}
        )
        out = render_answer(
            path,
            ans,
            split=ex["split"],
            out_dir=tmp_path / rel.replace("/", "_"),
            query=ex["query"] or "query",
            write_annotated=False,
        )
        m = out.mapped
        clip = probe(out.clip)
        assert clip.frame_count == m.last_frame - m.first_frame + 1, rel
        assert clip.has_audio == info.has_audio, rel
        assert (clip.width, clip.height % 2) == (info.width + info.width % 2, 0), rel
        assert abs(clip.duration_s - (m.end_s - m.start_s)) <= 1 / info.fps_float + 1e-3, rel
