"""The task table is the only list of tasks: a toy task registered here (an entry, a parser, a template,
nothing else) is available to ``stchat ground``, the renderer, the app's task list and the scorer."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from stchat.answer import GroundingResult, ParsedAnswer
from stchat.cli import build_parser, main
from stchat.errors import PromptError
from stchat.eval.score import score_records
from stchat.eval.sources import kind_layout
from stchat.parse import parse_answer, result_from_text
from stchat.processing.templates import TaskArgs
from stchat.request import GroundingRequest, TimeSpan
from stchat.tasks import EvalRoute, TaskSpec, all_tasks, get_task, register_task, unregister_task, video_tasks

CLIP = "syn_a_640x360_25fps_tone.mp4"
_SPAN = re.compile(r"from\s+(\d*\.?\d+)\s+to\s+(\d*\.?\d+)")


def toy_template(args: TaskArgs) -> str:
    what = " ".join(args.query.split())
    if not what:
        raise PromptError("task 'toy' needs something to look for")
    return f"Tell me from when to when {what} can be seen, as 'from a to b'."


def toy_parser(text: str, warnings: list[str]) -> dict:
    m = _SPAN.search(text)
    if m is None:
        warnings.append("no 'from a to b' found")
        return {}
    return {"span": (float(m.group(1)), float(m.group(2)))}


@pytest.fixture
def toy() -> Iterator[TaskSpec]:
    spec = register_task(TaskSpec(
        "toy", "a toy span task", "video", toy_template, toy_parser, frozenset({"span"}), ("span",),
        wraps_description=True, eval=EvalRoute("tvg", "toyset")))
    yield spec
    unregister_task("toy")


def test_toy_task_in_the_table_parser_and_request(toy: TaskSpec) -> None:
    assert get_task("TOY") is toy and "toy" in video_tasks() and toy in all_tasks()
    parsed = parse_answer("It is there from 0.25 to 0.5.", "toy")
    assert parsed.span == (0.25, 0.5) and parsed.ok and not parsed.warnings
    assert not parse_answer("no idea", "toy").ok
    req = GroundingRequest("clip.mp4", "toy", "a red square")
    assert req.question() == "Tell me from when to when a red square can be seen, as 'from a to b'."
    with pytest.raises(PromptError, match="only used by tasks svg, tr"):
        GroundingRequest("clip.mp4", "toy", "x", span=TimeSpan(0.1, 0.2))
    # Round trip of a result of the new task through answer.json.
    result = result_from_text("from 0.1 to 0.3", "toy", media="clip.mp4")
    assert GroundingResult.from_dict(json.loads(result.to_json())) == result


def test_toy_task_is_a_choice_of_ground_and_render(toy: TaskSpec) -> None:
    args = build_parser(["ground"]).parse_args(["ground", "v.mp4", "a dog", "--task", "toy"])
    assert args.task == "toy"
    args = build_parser(["render"]).parse_args(["render", "v.mp4", "--answer", "x", "--task", "toy",
                                                "--out", "o"])
    assert args.task == "toy"


def test_toy_task_is_scored_by_its_eval_family(toy: TaskSpec) -> None:
    records = [{"gt": [0.0, 0.5], "outputs": "x", "converted_outputs": "{0.0,0.5}"},
               {"gt": [0.2, 0.4], "outputs": "x", "converted_outputs": "no"}]
    toy_score = score_records(records, "toy")
    assert toy_score.official == score_records(records, "tvg").official
    assert [r.tiou for r in toy_score.records] == [1.0, 0.0]
    assert kind_layout("toy") == ("tvg", "toyset")
    args = build_parser(["eval", "run"]).parse_args(
        ["eval", "run", "--annotations", "a.json", "--task", "toy", "--media-root", "m"])
    assert args.task == "toy"


@pytest.mark.slow
def test_toy_task_runs_through_stchat_ground(toy: TaskSpec, synthetic_dir: Path, golden_model_dir: Path,
                                             tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["ground", str(synthetic_dir / CLIP), "a red square", "--task", "toy", "--model",
                 str(golden_model_dir), "--device", "cpu", "--dtype", "float32", "--max-new-tokens", "3",
                 "--out", str(tmp_path), "--no-render"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "question: Tell me from when to when a red square can be seen" in out
    record = json.loads((tmp_path / "answer.json").read_text())
    assert record["task"] == "toy" and record["parsed"]["task"] == "toy"
    assert isinstance(GroundingResult.from_dict(record).parsed, ParsedAnswer)


def test_toy_task_is_in_the_apps_task_list(toy: TaskSpec, tmp_path: Path) -> None:
    pytest.importorskip("gradio")
    from stchat.ui.config import AppConfig
    from stchat.ui.layout import build_app
    from stchat.ui.model_holder import ModelHolder
    from stchat.ui.sessions import SessionStore

    holder = ModelHolder("not-loaded", loader=lambda: pytest.fail("building the page must not load it"))
    demo = build_app(AppConfig(work_dir=tmp_path), holder, SessionStore(tmp_path / "s", 60))
    dropdown = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "task")
    assert "toy" in [c[1] if isinstance(c, tuple | list) else c for c in dropdown.choices]


# Names of the built-in tasks: a tuple, list, set or dict of several of them anywhere else in the
# package is a second task list (the table is the only one).
_BUILTIN = {"stvg", "svg", "elc", "tvg", "tr", "rec", "reg", "dgc", "caption"}
# Tables keyed by the official benchmark *file* names (``--all_name``), three of which are task names.
_OFFICIAL_NAME_TABLES = {"BENCHMARKS", "OFFICIAL_FILES"}


def _task_lists(tree: ast.AST) -> list[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        target = node.target if isinstance(node, ast.AnnAssign) else (
            node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id in _OFFICIAL_NAME_TABLES and node.value is not None:
            skip.add(id(node.value))
    lines = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else (
            node.keys if isinstance(node, ast.Dict) else [])
        names = {e.value for e in items if isinstance(e, ast.Constant) and isinstance(e.value, str)}
        if len(names & _BUILTIN) >= 3:
            lines.append(node.lineno)
    return lines


def test_the_list_detector_finds_a_task_list() -> None:
    source = "X = ('stvg', 'svg', 'tvg')\nBENCHMARKS = {'stvg': 1, 'svg': 2, 'elc': 3}\nY = ('stvg', 'a')"
    assert _task_lists(ast.parse(source)) == [1]


def test_no_other_module_keeps_a_list_of_tasks() -> None:
    root = Path(__file__).resolve().parents[1]
    table = root / "stchat" / "tasks.py"
    offenders = [
        f"{path.relative_to(root).as_posix()}:{line}"
        for path in sorted((root / "stchat").rglob("*.py")) if path != table
        for line in _task_lists(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not offenders, "task lists outside stchat/tasks.py: " + ", ".join(offenders)
