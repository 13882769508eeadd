"""Acceptance measurements of the demo model that ``stchat eval score`` does not cover (issue #9).

* caption: on a benchmark's clips, does the free description name the target's colour and shape?
* speed: model load time, and ``ground`` (load excluded) + render of a 10 s 720p demo clip.

    python -m stchat.demo.acceptance captions runs/demo/bench [--model demo]
    python -m stchat.demo.acceptance speed [--model demo]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

DESCRIBE = "Describe what happens in this video."


def caption_rate(bench_dir: str | Path, model: str = "demo", limit: int | None = None) -> dict:
    from stchat.chat import StableChat

    bench = Path(bench_dir)
    items = json.loads((bench / "captions.json").read_text())[:limit]
    chat = StableChat(model)
    hits, misses = 0, []
    for it in items:
        text = chat.ask(str(bench / "sources" / it["video"]), DESCRIBE, max_new_tokens=96).lower()
        if f"{it['colour']} {it['shape']}" in text:
            hits += 1
        else:
            misses.append({"video": it["video"], "want": f"{it['colour']} {it['shape']}", "got": text})
    return {"n": len(items), "rate": hits / max(len(items), 1), "misses": misses}


def speed(model: str = "demo") -> dict:
    from stchat.chat import StableChat
    from stchat.demo.world import sample_scene, write_clip
    from stchat.errors import StchatError
    from stchat.pipeline import render_answer

    with tempfile.TemporaryDirectory() as tmp:
        scene = sample_scene(424242, height=720, aspect="16:9", fps=30, seconds=10.0, n_distractors=2)
        clip = write_clip(scene, Path(tmp) / "clip720.mp4")
        t0 = time.perf_counter()
        chat = StableChat(model)
        load_s = time.perf_counter() - t0
        t = scene.target
        t1 = time.perf_counter()
        result = chat.ground(str(clip), f"the {t.colour} {t.shape}", task="stvg")
        ground_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        try:
            render_answer(str(clip), result.answer, "stvg", result.split, Path(tmp) / "out",
                          query=result.query)
            rendered = True
        except StchatError:  # an answer with nothing to draw: the time is reported, the render is not
            rendered = False
        render_s = time.perf_counter() - t2
    return {"load_s": round(load_s, 2), "ground_s": round(ground_s, 2), "render_s": round(render_s, 2),
            "rendered": rendered, "generated_tokens": result.generated_tokens,
            "ground_plus_render_s": round(ground_s + render_s, 2), "timings": result.timings}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stchat.demo.acceptance")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("captions")
    c.add_argument("bench")
    c.add_argument("--model", default="demo")
    c.add_argument("--limit", type=int)
    s = sub.add_parser("speed")
    s.add_argument("--model", default="demo")
    a = ap.parse_args(argv)
    out = caption_rate(a.bench, a.model, a.limit) if a.cmd == "captions" else speed(a.model)
    print(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
