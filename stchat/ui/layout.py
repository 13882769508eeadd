"""The Gradio page: components, examples and event wiring. The work itself is in :mod:`stchat.ui.handlers`.

Element ids (``elem_id``) are part of the contract with the browser test (``tests/test_browser_app.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gradio as gr

from stchat.ui import handlers
from stchat.ui.config import AppConfig
from stchat.ui.model_holder import ModelHolder
from stchat.ui.sessions import SessionStore

TITLE = "stchat — when and where in a video"
INTRO = (
    "Upload a video (or pick an example), ask what to find, and get the moment cut out with the object "
    "boxed, plus a timing table. Uses the LLaVA-ST model. No model? Paste a model answer under "
    "**Visualise an answer**."
)
# System fonts only: the default theme pulls Google Fonts, which an offline host cannot reach.
_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
_MONO = ["ui-monospace", "monospace"]
# Gradio recognises a progress tracker by a ``gr.Progress`` default and gives each call its own events.
_PROGRESS = gr.Progress()


def load_examples(assets_dir: Path) -> list[dict[str, Any]]:
    """Examples listed in ``assets/examples.json`` whose video is present."""
    listing = assets_dir / "examples.json"
    if not listing.is_file():
        return []
    items = json.loads(listing.read_text(encoding="utf-8")).get("examples", [])
    return [dict(e, path=str(assets_dir / e["file"])) for e in items if (assets_dir / e["file"]).is_file()]


def theme() -> gr.themes.Base:
    return gr.themes.Default(font=_FONTS, font_mono=_MONO)


def _output_panel(prefix: str) -> list[gr.components.Component]:
    """Status, the two videos, the timing table, both answer texts and the downloads, in that order."""
    status = gr.Markdown("", elem_id=f"{prefix}status")
    with gr.Row():
        clip = gr.Video(label="Clip (the moment found, annotated)", elem_id=f"{prefix}clip-out",
                        interactive=False, buttons=["download"])
        annotated = gr.Video(label="Full video, annotated", elem_id=f"{prefix}annotated-out",
                             interactive=False, buttons=["download"])
    timing = gr.Dataframe(label="Timing (sampled frames the answer refers to)", elem_id=f"{prefix}timing-out",
                          headers=list(handlers.TABLE_COLUMNS), interactive=False, wrap=True)
    with gr.Row():
        raw = gr.Textbox(label="Model answer (raw)", elem_id=f"{prefix}raw-out", lines=3, interactive=False,
                         buttons=["copy"])
        norm = gr.Textbox(label="Model answer (normalised)", elem_id=f"{prefix}norm-out", lines=3,
                          interactive=False, buttons=["copy"])
    files = gr.File(label="Downloads", elem_id=f"{prefix}files-out", file_count="multiple", interactive=False,
                    height=140)
    return [status, clip, annotated, timing, raw, norm, files]


def to_outputs(result: handlers.RunResult) -> list[Any]:
    """A RunResult as values for :func:`_output_panel`'s components."""
    table = {"headers": result.timing_headers, "data": result.timing_rows} if result.timing_headers else None
    return [
        result.status,
        str(result.clip) if result.clip else None,
        str(result.annotated) if result.annotated else None,
        table,
        result.raw_answer,
        result.normalised_answer,
        [str(p) for p in result.downloads] or None,
    ]


def build_app(config: AppConfig, holder: ModelHolder, store: SessionStore) -> gr.Blocks:
    examples = load_examples(config.assets_dir)

    def progress_of(progress: gr.Progress) -> handlers.Progress:
        return lambda fraction, desc: progress(fraction, desc=desc)

    def session_of(request: gr.Request | None) -> str | None:
        return getattr(request, "session_hash", None)

    def on_run(video: str | None, query: str, mode: str, task: str, frange: str, span: str, decoding: str,
               max_new_tokens: float, request: gr.Request, progress: gr.Progress = _PROGRESS) -> list[Any]:
        run_dir = store.new_run_dir(session_of(request))
        return to_outputs(handlers.run_model(holder, video, query, mode, task, frange, decoding,
                                             max_new_tokens, run_dir, progress_of(progress), span))

    def on_visualise(video: str | None, answer: str, answer_file: str | None, task: str, frange: str,
                     request: gr.Request, progress: gr.Progress = _PROGRESS) -> list[Any]:
        run_dir = store.new_run_dir(session_of(request))
        return to_outputs(handlers.visualise_answer(video, answer, answer_file, task, frange, run_dir,
                                                    progress_of(progress)))

    def on_mode(mode: str) -> Any:
        return gr.Textbox(placeholder=handlers.PLACEHOLDERS.get(mode, ""))

    def on_status_tick() -> list[Any]:
        st = holder.status()
        return [st.markdown(), gr.Timer(active=not st.settled)]

    def on_unload(request: gr.Request) -> None:
        store.remove_session(session_of(request))

    with gr.Blocks(title=TITLE, delete_cache=(1800, int(config.session_max_age_s))) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        model_status = gr.Markdown(holder.status().markdown(), elem_id="model-status")
        timer = gr.Timer(1.0)
        with gr.Tabs():
            with gr.Tab("Ask the model", id="ask"):
                with gr.Row():
                    with gr.Column(scale=1):
                        video = gr.Video(label="Video", sources=["upload"], elem_id="input-video")
                    with gr.Column(scale=1):
                        mode = gr.Radio(list(handlers.MODES), value=handlers.GROUNDING, label="Mode",
                                        elem_id="mode")
                        query = gr.Textbox(label="Question", lines=3, elem_id="query",
                                           placeholder=handlers.PLACEHOLDERS[handlers.GROUNDING])
                        with gr.Accordion("Advanced options", open=False):
                            task = gr.Dropdown(list(handlers.VIDEO_TASKS), value="stvg", label="Task type",
                                               info="stvg: when + where; svg: where, in a given span; "
                                                    "tvg: when only; tr: describe a given span (no question "
                                                    "needed); elc: type the official ELC question",
                                               elem_id="task")
                            frange = gr.Textbox(label="Frame range (first, last; empty = whole video)",
                                                placeholder="e.g. 0, 829", elem_id="frame-range")
                            span = gr.Textbox(label="Time span in seconds (svg and tr: the moment the "
                                                    "question is about)", placeholder="e.g. 2, 7",
                                              elem_id="time-span")
                            decoding = gr.Radio(list(handlers.DECODINGS), value="greedy", label="Decoding",
                                                info="official = the official demo's sampling at "
                                                     "temperature 0.01 (not reproducible run to run)")
                            max_new = gr.Slider(16, 2048, value=1024, step=16, label="Max new tokens",
                                                elem_id="max-new-tokens")
                        run = gr.Button("Run", variant="primary", elem_id="run-btn")
                if examples:
                    gr.Examples([[e["path"], e["query"], e["task"]] for e in examples],
                                inputs=[video, query, task], label="Examples", example_labels=[
                                    e["title"] for e in examples])
                ask_outputs = _output_panel("")
            with gr.Tab("Visualise an answer", id="visualise"):
                gr.Markdown("Draw a model answer you already have (from `stchat ground`, the official demo, "
                            "or a colleague) on its video. No model needed.")
                with gr.Row():
                    with gr.Column(scale=1):
                        vis_video = gr.Video(label="Video", sources=["upload"], elem_id="vis-video")
                    with gr.Column(scale=1):
                        vis_answer = gr.Textbox(label="Model answer", lines=4, elem_id="vis-answer",
                                                placeholder="e.g. {<TEMP-025><TEMP-074>} <TEMP-025>: "
                                                            "[<WIDTH-002><HEIGHT-040><WIDTH-014><HEIGHT-059>]")
                        vis_file = gr.File(label="…or an answer file (.txt / .json)",
                                           file_types=[".txt", ".json"], elem_id="vis-file")
                        vis_task = gr.Dropdown(list(handlers.VIDEO_TASKS), value="stvg", label="Task type")
                        vis_range = gr.Textbox(label="Frame range the answer refers to (empty = whole video)",
                                               placeholder="e.g. 0, 829")
                        vis_run = gr.Button("Visualise", variant="primary", elem_id="vis-btn")
                if examples:
                    gr.Examples([[e["path"], e["example_answer"], e["task"]] for e in examples],
                                inputs=[vis_video, vis_answer, vis_task], label="Examples (true answers)",
                                example_labels=[e["title"] for e in examples])
                vis_outputs = _output_panel("vis-")

        mode.change(on_mode, inputs=mode, outputs=query, queue=False)
        # One model, one GPU: every event that touches the model shares a queue slot of size 1.
        run.click(on_run, inputs=[video, query, mode, task, frange, span, decoding, max_new],
                  outputs=ask_outputs, concurrency_id="model", concurrency_limit=1)
        vis_run.click(on_visualise, inputs=[vis_video, vis_answer, vis_file, vis_task, vis_range],
                      outputs=vis_outputs, concurrency_id="render", concurrency_limit=2)
        timer.tick(on_status_tick, outputs=[model_status, timer], queue=False, show_progress="hidden")
        demo.load(on_status_tick, outputs=[model_status, timer], queue=False, show_progress="hidden")
        demo.unload(on_unload)
    return demo
