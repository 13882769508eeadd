"""The Gradio page: components, examples and event wiring. The work itself is in :mod:`stchat.ui.handlers`.

Element ids (``elem_id``) are part of the contract with the browser test (``tests/test_browser_app.py``).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.processing_utils import hash_file

from stchat.errors import StchatError
from stchat.request import DECODINGS, LIMITS
from stchat.tasks import span_tasks
from stchat.ui import handlers, present
from stchat.ui.config import AppConfig
from stchat.ui.model_holder import ModelHolder
from stchat.ui.sessions import SessionStore

TITLE = "stchat — when and where in a video"
INTRO = (
    "Upload a video (or pick an example), say what to find, and get the moment cut out with the object "
    "boxed, plus a timing table, or ask for a plain description. No model? Paste a model answer under "
    "“Visualise an answer”."
)
# System fonts only: the default theme pulls Google Fonts, which an offline host cannot reach.
_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
_MONO = ["ui-monospace", "monospace"]
# Gradio recognises a progress tracker by a ``gr.Progress`` default and gives each call its own events.
_PROGRESS = gr.Progress()
# Status lines are announced by screen readers: the element persists and its text changes.
_LIVE = "element.setAttribute('role', 'status'); element.setAttribute('aria-live', 'polite');"
# Phone widths: the two videos stack (their columns wrap) and the table keeps all columns on screen.
CSS = """
.stchat-status { min-height: 1.5em; }
@media (max-width: 640px) {
  .stchat-table th, .stchat-table th *, .stchat-table .body-cell, .stchat-table .body-cell * {
    font-size: 10.5px !important; padding: 1px !important; word-break: normal !important;
    overflow-wrap: anywhere; line-height: 1.25 !important; }
}
"""


# Gradio wraps each text box in a <label> that also holds its Copy button, so the box's accessible name
# becomes "Copy Model answer". Give every text box its own label text as its name, also for boxes that
# appear later (other tab, re-render).
JS = """
() => {
  const name = () => document.querySelectorAll('textarea:not([aria-label])').forEach(t => {
    const info = t.closest('label')?.querySelector('[data-testid=block-info]');
    if (info && info.textContent.trim()) t.setAttribute('aria-label', info.textContent.trim());
  });
  name();
  new MutationObserver(name).observe(document.body, {childList: true, subtree: true});
}
"""


def load_examples(assets_dir: Path) -> list[dict[str, Any]]:
    """Examples listed in ``assets/examples.json`` whose video is present, each with a short description."""
    listing = assets_dir / "examples.json"
    if not listing.is_file():
        return []
    items = json.loads(listing.read_text(encoding="utf-8")).get("examples", [])
    out = []
    for e in items:
        if not (assets_dir / e["file"]).is_file():
            continue
        title = str(e.get("title", e["file"]))
        # What a user would type: the plain description, not the official template around it.
        description = str(e.get("description") or title[:1].lower() + title[1:])
        out.append(dict(e, path=str(assets_dir / e["file"]), title=title, description=description))
    return out


def theme() -> gr.themes.Base:
    return gr.themes.Default(font=_FONTS, font_mono=_MONO)


def _status(elem_id: str) -> gr.HTML:
    return gr.HTML("", elem_id=elem_id, elem_classes="stchat-status", js_on_load=_LIVE)


def _output_panel(prefix: str) -> tuple[list[gr.components.Component], list[gr.Column]]:
    """Status, the two videos, the timing table, both answer texts and the downloads, in that order.

    Also returns the columns a description has no use for (videos, table, normalised answer, downloads).
    The full annotated video starts hidden: the clip is the product, the full video an option.
    """
    status = _status(f"{prefix}status")
    with gr.Column() as grounding_only:
        with gr.Row():
            with gr.Column(min_width=300):
                clip = gr.Video(label="Clip (the moment found, annotated)", elem_id=f"{prefix}clip-out",
                                interactive=False, buttons=["download"])
            with gr.Column(min_width=300):
                annotated = gr.Video(label="Full video, annotated", elem_id=f"{prefix}annotated-out",
                                     interactive=False, buttons=["download"], visible=False)
        timing = gr.Dataframe(value=present.empty_table(), label="Timing", elem_id=f"{prefix}timing-out",
                              headers=list(present.TABLE_COLUMNS), interactive=False, wrap=True,
                              column_widths=present.COLUMN_WIDTHS, elem_classes="stchat-table")
        gr.Markdown(present.TABLE_NOTE)
    with gr.Row():
        raw = gr.Textbox(label="Model answer", elem_id=f"{prefix}raw-out", lines=3, interactive=False,
                         buttons=["copy"])
        with gr.Column(min_width=300) as norm_col:
            norm = gr.Textbox(label="Model answer (normalised coordinates)", elem_id=f"{prefix}norm-out",
                              lines=3, interactive=False, buttons=["copy"])
    with gr.Column() as files_col:
        files = gr.File(label="Downloads", elem_id=f"{prefix}files-out", file_count="multiple",
                        interactive=False, height=100)
    return [status, clip, annotated, timing, raw, norm, files], [grounding_only, norm_col, files_col]


def to_outputs(result: handlers.RunResult) -> list[Any]:
    """A RunResult as values for :func:`_output_panel`'s components."""
    return [
        present.status_html(result.status),
        # The found moment as a WebVTT track of the clip's player (Gradio 6 takes subtitles as a prop).
        gr.Video(value=str(result.clip), subtitles=str(result.subtitles) if result.subtitles else None)
        if result.clip else None,
        str(result.annotated) if result.annotated else None,
        present.table_value(result.table),
        result.raw_answer,
        result.normalised_answer,
        [str(p) for p in result.downloads] or None,
    ]


class _Cancels:
    """One stop flag per browser session: Cancel sets it, the session's running job checks it per token."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flags: dict[str, threading.Event] = {}

    def fresh(self, session: str) -> threading.Event:
        with self._lock:
            flag = self._flags[session] = threading.Event()
            return flag

    def cancel(self, session: str) -> bool:
        with self._lock:
            flag = self._flags.get(session)
        if flag is None or flag.is_set():
            return False
        flag.set()
        return True

    def forget(self, session: str) -> None:
        with self._lock:
            self._flags.pop(session, None)


def build_app(config: AppConfig, holder: ModelHolder, store: SessionStore) -> gr.Blocks:
    examples = load_examples(config.assets_dir)
    example_dirs = {hash_file(e["path"]) for e in examples}  # where Gradio caches the example videos
    cancels = _Cancels()
    demo: gr.Blocks

    def progress_of(progress: gr.Progress) -> handlers.Progress:
        return lambda fraction, desc: progress(fraction, desc=desc)

    def session_of(request: gr.Request | None) -> str:
        return str(getattr(request, "session_hash", None) or "")

    def track(session: str, video: str | None) -> None:
        # Uploads (not examples, which are shared) belong to the session that used them; Gradio names
        # cached files by content, so an upload identical to an example must not take the example along.
        if not video or Path(video).parent.name in example_dirs:
            return
        if str(Path(video).resolve()) in {str(Path(p).resolve()) for p in demo.upload_file_set}:
            store.track_upload(session, video)

    def on_run(video: str | None, query: str, mode: str, task: str, frange: str, span: str, decoding: str,
               max_new_tokens: float, full: bool, request: gr.Request,
               progress: gr.Progress = _PROGRESS) -> list[Any]:
        session = session_of(request)
        track(session, video)
        flag = cancels.fresh(session)
        try:
            run_dir = store.new_run_dir(session)
        except StchatError as exc:
            return to_outputs(handlers.RunResult(f"{handlers.FAIL} {exc}"))
        return to_outputs(handlers.run_model(holder, video, query, mode, task, frange, decoding,
                                             max_new_tokens, run_dir, progress_of(progress), span,
                                             cancel=flag, full=full))

    def on_cancel(request: gr.Request) -> str:
        stopped = cancels.cancel(session_of(request))
        return present.status_html(f"{handlers.FAIL} Cancelled." if stopped else "Nothing is running.")

    def on_visualise(video: str | None, answer: str, answer_file: str | None, task: str, frange: str,
                     full: bool, request: gr.Request, progress: gr.Progress = _PROGRESS) -> list[Any]:
        session = session_of(request)
        track(session, video)
        try:
            run_dir = store.new_run_dir(session)
        except StchatError as exc:
            return to_outputs(handlers.RunResult(f"{handlers.FAIL} {exc}"))
        return to_outputs(handlers.visualise_answer(video, answer, answer_file, task, frange, run_dir,
                                                    progress_of(progress), full=full))

    def on_mode_input(new_mode: str, text: str, texts: dict[str, str]) -> tuple[Any, dict[str, str]]:
        # Each mode keeps its own text: switching never carries one mode's question into the other.
        old = handlers.DESCRIBE if new_mode == handlers.GROUNDING else handlers.GROUNDING
        texts = {**texts, old: text}
        return gr.Textbox(value=texts.get(new_mode, "")), texts

    def on_mode_change(new_mode: str) -> list[Any]:
        grounding = new_mode == handlers.GROUNDING
        return [gr.Column(visible=grounding)] * 5 + [
            gr.Textbox(placeholder=handlers.PLACEHOLDERS[new_mode], info=handlers.HINTS[new_mode])]

    def on_task(task: str) -> Any:
        return gr.Textbox(visible=task in span_tasks())

    def on_full(full: bool) -> list[Any]:
        return [gr.Column(visible=full), gr.Column(visible=full)]

    def on_status_tick() -> list[Any]:
        st = holder.status()
        return [present.status_html(st.text()), gr.Timer(active=not st.settled)]

    def on_load(request: gr.Request) -> list[Any]:
        store.open_page(session_of(request))
        return on_status_tick()

    def on_unload(request: gr.Request) -> None:
        session = session_of(request)
        cancels.cancel(session)
        cancels.forget(session)
        store.end_session(session)

    def on_upload(video: str | None, request: gr.Request) -> None:
        track(session_of(request), video)

    with gr.Blocks(title=TITLE, delete_cache=(300, int(config.session_max_age_s))) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        model_status = _status("model-status")
        timer = gr.Timer(1.0)
        texts = gr.State({})
        with gr.Tabs():
            with gr.Tab("Ask the model", id="ask"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        video = gr.Video(label="Video", sources=["upload"], elem_id="input-video")
                    with gr.Column(scale=1, min_width=300):
                        mode = gr.Radio(list(handlers.MODES), value=handlers.GROUNDING, label="Mode",
                                        elem_id="mode")
                        query = gr.Textbox(label="Question", lines=1, max_lines=4, elem_id="query",
                                           placeholder=handlers.PLACEHOLDERS[handlers.GROUNDING],
                                           info=handlers.HINTS[handlers.GROUNDING], submit_btn=False)
                        with gr.Column(visible=True) as task_box:
                            task = gr.Dropdown(handlers.task_choices(),
                                               value="stvg", label="What to find", elem_id="task")
                            span = gr.Textbox(label="Time span (s): start, end", placeholder="e.g. 2, 7",
                                              elem_id="time-span", visible=False)
                        with gr.Accordion("Advanced options", open=False, elem_id="advanced"):
                            frange = gr.Textbox(label="Frame range (first, last; empty = whole video)",
                                                placeholder="e.g. 0, 829", elem_id="frame-range")
                            decoding = gr.Radio(list(DECODINGS), value="greedy", label="Decoding",
                                                info="official = the official demo's sampling at "
                                                     "temperature 0.01 (not reproducible run to run)")
                            max_new = gr.Slider(16, LIMITS.slider_max_new_tokens,
                                                value=LIMITS.default_max_new_tokens,
                                                step=16, label="Max new tokens",
                                                elem_id="max-new-tokens")
                            with gr.Column(visible=True) as full_box:
                                full = gr.Checkbox(False, label="Also make the full annotated video (slower)",
                                                   elem_id="full-video")
                        with gr.Row():
                            run = gr.Button("Run", variant="primary", elem_id="run-btn", min_width=100)
                            cancel = gr.Button("Cancel", variant="stop", elem_id="cancel-btn", min_width=100)
                if examples:
                    rows = [[e["path"], handlers.GROUNDING, e["description"], e["task"]] for e in examples]
                    gr.Examples(rows,
                                inputs=[video, mode, query, task], label="Examples",
                                example_labels=[e["title"] for e in examples], api_visibility="private")
                ask_outputs, ask_grounding = _output_panel("")
            with gr.Tab("Visualise an answer", id="visualise"):
                gr.Markdown("Draw a model answer you already have (from `stchat ground`, the official demo, "
                            "or a colleague) on its video. No model needed.")
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        vis_video = gr.Video(label="Video", sources=["upload"], elem_id="vis-video")
                    with gr.Column(scale=1, min_width=300):
                        vis_answer = gr.Textbox(label="Model answer", lines=4, elem_id="vis-answer",
                                                placeholder="e.g. {<TEMP-025><TEMP-074>} <TEMP-025>: "
                                                            "[<WIDTH-002><HEIGHT-040><WIDTH-014><HEIGHT-059>]")
                        vis_file = gr.File(label="…or an answer file (.txt / .json)",
                                           file_types=[".txt", ".json"], elem_id="vis-file")
                        vis_task = gr.Dropdown(handlers.task_choices(),
                                               value="stvg", label="Task of the answer", elem_id="vis-task")
                        vis_range = gr.Textbox(label="Frame range the answer refers to (empty = whole video)",
                                               placeholder="e.g. 0, 829")
                        vis_full = gr.Checkbox(False, label="Also make the full annotated video (slower)",
                                               elem_id="vis-full-video")
                        vis_run = gr.Button("Visualise", variant="primary", elem_id="vis-btn")
                if examples:
                    gr.Examples([[e["path"], e["example_answer"], e["task"]] for e in examples],
                                inputs=[vis_video, vis_answer, vis_task], label="Examples (true answers)",
                                example_labels=[e["title"] for e in examples], api_visibility="private")
                vis_outputs, _ = _output_panel("vis-")

        # The API page lists only the two operations a client may script: /ground (the Run button) and
        # /visualise. Every other event is the page's own plumbing: "private" hides it from the API info
        # and from gradio_client; the browser still calls it by index.
        page_only = {"api_visibility": "private"}
        mode.input(on_mode_input, inputs=[mode, query, texts], outputs=[query, texts], queue=False,
                   **page_only)
        mode.change(on_mode_change, inputs=mode,
                    outputs=[task_box, *ask_grounding, full_box, query],
                    queue=False, **page_only)
        task.change(on_task, inputs=task, outputs=span, queue=False, **page_only)
        full.change(lambda f: gr.Video(visible=f), inputs=full, outputs=ask_outputs[2], queue=False,
                    **page_only)
        vis_full.change(lambda f: gr.Video(visible=f), inputs=vis_full, outputs=vis_outputs[2], queue=False,
                        **page_only)
        video.upload(on_upload, inputs=video, queue=False, **page_only)
        vis_video.upload(on_upload, inputs=vis_video, queue=False, **page_only)
        # One model, one GPU: every event that touches the model shares a queue slot of size 1.
        run_inputs = [video, query, mode, task, frange, span, decoding, max_new, full]
        run_events = [
            run.click(on_run, inputs=run_inputs, outputs=ask_outputs, concurrency_id="model",
                      concurrency_limit=1, api_name="ground",
                      api_description="Ask the model about a video (the Run button of 'Ask the model')."),
            query.submit(on_run, inputs=run_inputs, outputs=ask_outputs, concurrency_id="model",
                         concurrency_limit=1, **page_only),  # Enter in the box: the same as /ground
        ]
        cancel.click(on_cancel, outputs=ask_outputs[0], queue=False, cancels=run_events, **page_only)
        vis_run.click(on_visualise, inputs=[vis_video, vis_answer, vis_file, vis_task, vis_range, vis_full],
                      outputs=vis_outputs, concurrency_id="render", concurrency_limit=2, api_name="visualise",
                      api_description="Draw a model answer you already have on its video (no model needed).")
        timer.tick(on_status_tick, outputs=[model_status, timer], queue=False, show_progress="hidden",
                   **page_only)
        demo.load(on_load, outputs=[model_status, timer], queue=False, show_progress="hidden", **page_only)
        demo.unload(on_unload)
    return demo
