"""The page is built from the handlers' contract: ids the browser test uses, outputs in panel order."""

from __future__ import annotations

from pathlib import Path

import pytest

from stchat.tasks import video_tasks
from stchat.ui import handlers, present
from stchat.ui.config import AppConfig
from stchat.ui.model_holder import ModelHolder
from stchat.ui.sessions import SessionStore

gr = pytest.importorskip("gradio")


def test_build_app_has_the_controls_and_outputs(tmp_path: Path) -> None:
    from stchat.ui.layout import build_app, load_examples

    config = AppConfig(work_dir=tmp_path)
    holder = ModelHolder("not-loaded", loader=lambda: pytest.fail("building the page must not load it"))
    demo = build_app(config, holder, SessionStore(tmp_path / "s", 60))
    ids = {getattr(b, "elem_id", None) for b in demo.blocks.values()}
    for prefix in ("", "vis-"):
        assert {f"{prefix}status", f"{prefix}clip-out", f"{prefix}annotated-out", f"{prefix}timing-out",
                f"{prefix}raw-out", f"{prefix}norm-out", f"{prefix}files-out"} <= ids
    assert {"model-status", "input-video", "query", "mode", "task", "frame-range", "time-span",
            "max-new-tokens", "run-btn", "vis-video", "vis-answer", "vis-file", "vis-btn"} <= ids
    assert len(load_examples(config.assets_dir)) >= 2
    assert holder.status().state == "idle"


def test_to_outputs_orders_values_like_the_panel(tmp_path: Path) -> None:
    from stchat.ui.layout import to_outputs

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"x")
    from stchat.timing import TableRow

    row = TableRow(present.SEGMENT, 1.0, 3.0, 2.0, 15, 44)
    r = handlers.RunResult("✔ Found <i>", clip, None, [row], "raw", "norm", [clip])
    status, c, a, table, raw, norm, files = to_outputs(r)
    assert (status, a, raw, norm) == ("✔ Found &lt;i&gt;", None, "raw", "norm")
    assert isinstance(c, gr.Video) and c.value is not None and c.subtitles is None
    assert table["data"] == [["segment", "1.000", "3.000", "2.000", "15–44", ""]] and files == [str(clip)]
    empty = to_outputs(handlers.RunResult("✖ no video"))
    assert empty[1:3] == [None, None] and empty[6] is None
    # The same columns, in the same order, whether the table is empty or filled.
    assert empty[3]["headers"] == table["headers"] == list(present.TABLE_COLUMNS)


def test_examples_are_plain_descriptions_with_visible_options() -> None:
    from stchat.ui.config import ASSETS_DIR
    from stchat.ui.layout import load_examples

    for e in load_examples(ASSETS_DIR):
        assert len(e["description"]) < 80 and "Please" not in e["description"], e["description"]
        assert e["task"] in video_tasks()
