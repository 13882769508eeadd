"""The app's Run button with the real (tiny, random-weight) official-format model, no browser.

The tiny model's answers are gibberish, so these tests check what the page does with *whatever* the
model says: a clip when the moment is known, a friendly line when it is not, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stchat.ui import handlers
from stchat.ui.model_holder import ModelHolder

pytestmark = pytest.mark.slow

SYN_A = "syn_a_640x360_25fps_tone.mp4"
TOKENS = 24  # enough to exercise generation; the answer is random either way


@pytest.fixture(scope="module")
def holder(golden_model_dir: Path) -> ModelHolder:
    h = ModelHolder(str(golden_model_dir))
    h.start()
    st = h.wait(timeout=300)
    assert st.state == "ready", st.message
    return h


def test_grounding_shows_the_answer_whatever_it_is(holder: ModelHolder, synthetic_dir: Path,
                                                   tmp_path: Path) -> None:
    stages: list[str] = []
    r = handlers.run_model(holder, str(synthetic_dir / SYN_A), "a red square moving to the right",
                           handlers.GROUNDING, "stvg", "", "greedy", TOKENS, tmp_path,
                           lambda f, d: stages.append(d))
    assert r.raw_answer and r.normalised_answer
    assert "Traceback" not in r.status
    if r.ok:  # the random model happened to name a moment: then it must be on screen
        assert r.clip is not None and r.clip.is_file() and r.timing_rows
    else:
        assert "nothing to show" in r.status and r.clip is None
    assert any(d.startswith("Generating") for d in stages), stages


def test_tr_cuts_the_asked_span_and_captions_it(holder: ModelHolder, synthetic_dir: Path,
                                                tmp_path: Path) -> None:
    """TR: the clip is the span the user gave (2–7 s: the red square), whatever the caption says."""
    from stchat.video.io import probe

    r = handlers.run_model(holder, str(synthetic_dir / SYN_A), "", handlers.GROUNDING, "tr", "", "greedy",
                           TOKENS, tmp_path, time_span="2, 7")
    assert r.ok, r.status
    assert r.clip is not None and r.annotated is not None
    # Times are quantised to 1/99 of the 10 s video (≈ 0.1 s) by the model's token grid.
    assert abs(probe(r.clip).duration_s - 5.0) <= 10.0 / 99 + 0.04
    assert r.timing_rows[0][r.timing_headers.index("timestamp")] == "00:00:02.000"
    assert "span you asked about" in r.status


def test_span_tasks_need_a_span(holder: ModelHolder, synthetic_dir: Path, tmp_path: Path) -> None:
    r = handlers.run_model(holder, str(synthetic_dir / SYN_A), "who moves?", handlers.GROUNDING, "svg", "",
                           "greedy", TOKENS, tmp_path)
    assert r.status.startswith(handlers.FAIL) and "Time span" in r.status
    late = handlers.run_model(holder, str(synthetic_dir / SYN_A), "", handlers.GROUNDING, "tr", "", "greedy",
                              TOKENS, tmp_path, time_span="12, 14")
    assert late.status.startswith(handlers.FAIL) and "after the video ends" in late.status


def test_describe_mode_answers_in_text(holder: ModelHolder, synthetic_dir: Path, tmp_path: Path) -> None:
    r = handlers.run_model(holder, str(synthetic_dir / SYN_A), "Describe what happens in this video.",
                           handlers.DESCRIBE, "stvg", "", "official", TOKENS, tmp_path)
    assert r.ok, r.status
    assert r.raw_answer.strip() and r.clip is None and not r.timing_rows


def test_time_span_is_refused_where_it_means_nothing(holder: ModelHolder, synthetic_dir: Path,
                                                     tmp_path: Path) -> None:
    video = str(synthetic_dir / SYN_A)
    r = handlers.run_model(holder, video, "a red square", handlers.GROUNDING, "stvg", "", "greedy", TOKENS,
                           tmp_path, time_span="2, 7")
    assert r.status.startswith(handlers.FAIL) and "svg and tr" in r.status
    twice = handlers.run_model(holder, video, "Between {<t0.2>,<t0.7>}, what moves?", handlers.GROUNDING,
                               "svg", "", "greedy", TOKENS, tmp_path, time_span="2, 7")
    assert twice.status.startswith(handlers.FAIL) and "once" in twice.status
