"""The one table of tasks: what each LLaVA-ST task asks, reads back, draws and is scored with.

Every other module reads this table instead of keeping its own list: the question templates
(:mod:`stchat.processing.tasks`), the answer parser (:mod:`stchat.parse`), what an answer must carry to be
usable (:attr:`stchat.answer.ParsedAnswer.ok`), which tasks render on a video (:mod:`stchat.mapping`), the
CLI's ``--task`` choices, the app's task list, and the benchmark layout, readers and scorer
(:mod:`stchat.eval`). Adding a task is one :func:`register_task` call with its template (a function of
:class:`~stchat.processing.templates.TaskArgs`) and its parser (text, warnings -> answer fields); nothing
else needs to change (``tests/test_architecture_tasks.py`` proves it with a toy task).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from stchat import parsers
from stchat.errors import PromptError
from stchat.processing import templates
from stchat.processing.templates import TaskArgs

Template = Callable[[TaskArgs], str]
Parser = Callable[[str, list[str]], dict[str, Any]]

#: What an answer can show: keyframe boxes over time, a time span, one box, phrase boxes, plain text.
DRAWABLES = frozenset({"boxes", "span", "box", "phrases", "text"})
MODALITIES = ("video", "image")
#: Benchmark families: the result folder level, the annotation reader and the metric of the official
#: code (``st-align`` covers STVG, SVG and ELC, which share a reader and ``eval_stvg``).
EVAL_FAMILIES = ("st-align", "tvg", "rec")


@dataclass(frozen=True)
class EvalRoute:
    """How a task is benchmarked: its family (reader + metric + result folder) and its dataset folder."""

    family: str  # one of EVAL_FAMILIES
    dataset: str  # result-path dataset level (official set_args.py values)


@dataclass(frozen=True)
class TaskSpec:
    """One task. ``usable`` lists the answer fields any one of which makes an answer worth showing."""

    name: str
    title: str  # a few words for help texts and the app ("when + where"); shown with the name
    modality: str | None  # "video", "image", or None: either works (free questions)
    template: Template
    parser: Parser
    draws: frozenset[str]  # subset of DRAWABLES
    usable: tuple[str, ...]
    needs_span: bool = False
    needs_start: bool = False
    needs_region: bool = False
    takes_text: bool = True  # False: the question is fixed, the user's words have nowhere to go
    wraps_description: bool = False  # a plain description (no "?") gets the template, else sent verbatim
    markers: tuple[str, ...] = ()  # official instruction sentences: a query holding one is a full question
    span_fallback: bool = False  # the answer is about the asked span: use it when the answer names none
    eval: EvalRoute | None = None

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.lower() or not self.name.isidentifier():
            raise ValueError(f"task name {self.name!r} must be a lower-case identifier")
        if self.modality not in (*MODALITIES, None):
            raise ValueError(f"task {self.name}: modality must be video, image or None")
        if not self.draws <= DRAWABLES or not set(self.usable) <= DRAWABLES:
            raise ValueError(f"task {self.name}: draws/usable must be among {sorted(DRAWABLES)}")
        if self.span_fallback and not self.needs_span:
            raise ValueError(f"task {self.name}: a span fallback needs a task that asks about a span")
        if self.eval is not None and self.eval.family not in EVAL_FAMILIES:
            raise ValueError(f"task {self.name}: eval family must be one of {', '.join(EVAL_FAMILIES)}")

    @property
    def is_video(self) -> bool:
        """Answers placed on a video's frames (clip, annotated video, timing table)."""
        return self.modality == "video"


_REGISTRY: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec, *, replace: bool = False) -> TaskSpec:
    """Add ``spec`` to the table (``replace=True`` to redefine a name); returns it."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"task {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def unregister_task(name: str) -> None:
    """Remove a task (tests that register a toy task clean up with this)."""
    _REGISTRY.pop(name, None)


def get_task(name: object) -> TaskSpec:
    """The spec of ``name`` (case-insensitive); ``PromptError`` naming the choices when unknown."""
    key = str(name).lower()
    spec = _REGISTRY.get(key)
    if spec is None:
        raise PromptError(f"unknown task {key!r}: choose one of {', '.join(_REGISTRY)}")
    return spec


def find_task(name: object) -> TaskSpec | None:
    return _REGISTRY.get(str(name).lower())


def all_tasks() -> tuple[TaskSpec, ...]:
    """Every task, in registration order (the built-ins first: the order of help texts)."""
    return tuple(_REGISTRY.values())


def task_names(*, modality: str | None = None, family: str | None = None) -> tuple[str, ...]:
    """Names of the tasks of one ``modality`` and/or eval ``family`` (all when both are None)."""
    return tuple(t.name for t in _iter(modality, family))


def _iter(modality: str | None, family: str | None) -> Iterator[TaskSpec]:
    for t in _REGISTRY.values():
        if modality is not None and t.modality != modality:
            continue
        if family is not None and (t.eval is None or t.eval.family != family):
            continue
        yield t


def benchmark_tasks() -> tuple[str, ...]:
    """Tasks with a benchmark route (``stchat eval run --task``, the scorer)."""
    return tuple(t.name for t in _REGISTRY.values() if t.eval is not None)


def eval_family(name: object) -> str | None:
    """The benchmark family (``st-align``, ``tvg``, ``rec``) of a task; None: unknown or not benchmarked."""
    spec = _REGISTRY.get(str(name).lower())
    return None if spec is None or spec.eval is None else spec.eval.family


def video_tasks() -> tuple[str, ...]:
    """Tasks answered on a video (the app's task list, what ``render`` can draw)."""
    return task_names(modality="video")


def span_tasks() -> tuple[str, ...]:
    """Tasks whose question carries a time span the user gives."""
    return tuple(t.name for t in _REGISTRY.values() if t.needs_span)


# ---------------------------------------------------------------------------------------- built-ins
_ST_ALIGN = EvalRoute("st-align", "vidstg")

for _spec in (
    TaskSpec("stvg", "when + where", "video", templates.stvg,
             parsers.parse_stvg, frozenset({"span", "boxes"}), ("span", "boxes"), wraps_description=True,
             markers=(templates.STVG_SUFFIX,), eval=_ST_ALIGN),
    TaskSpec("svg", "where, in a time span you give", "video", templates.svg,
             parsers.parse_svg, frozenset({"span", "boxes"}), ("boxes", "span"), needs_span=True,
             markers=(templates.SVG_SUFFIX,), span_fallback=True, eval=_ST_ALIGN),
    TaskSpec("elc", "event in a region, official question", "video",
             templates.elc, parsers.parse_elc, frozenset({"span", "boxes", "text"}), ("boxes", "span"),
             needs_start=True, needs_region=True, takes_text=False, markers=(templates.ELC_SUFFIX,),
             eval=_ST_ALIGN),
    TaskSpec("tvg", "when only", "video", templates.tvg, parsers.parse_tvg,
             frozenset({"span"}), ("span",), wraps_description=True,
             markers=("Give you a textual query:",), eval=EvalRoute("tvg", "charades_sta")),
    TaskSpec("tr", "describe a time span you give", "video", templates.tr,
             parsers.parse_tr, frozenset({"span", "text"}), ("text",), needs_span=True, takes_text=False,
             span_fallback=True),
    TaskSpec("rec", "where in an image", "image", templates.rec,
             parsers.parse_rec, frozenset({"box"}), ("box",), wraps_description=True,
             markers=("in this image",), eval=EvalRoute("rec", "refcoco")),
    TaskSpec("reg", "what is in an image region", "image",
             templates.reg, parsers.parse_reg, frozenset({"box", "text"}), ("text",), needs_region=True,
             takes_text=False),
    TaskSpec("dgc", "describe an image, phrases boxed", "image",
             templates.dgc, parsers.parse_dgc, frozenset({"phrases"}), ("phrases",), takes_text=False),
    TaskSpec("caption", "a free question", None, templates.caption,
             parsers.parse_caption, frozenset({"text"}), ("text",)),
):
    register_task(_spec)
del _spec
