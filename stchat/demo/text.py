"""Words of the demo world: queries, captions, and answers in the released model's grammar.

Answers are written in stchat's friendly training format (plain normalised numbers, turned into
``*-OUTPUT`` placeholders by ``stchat.train.friendly``): STVG ``{s,e}, t: [x1,y1,x2,y2], ...`` with one
pair for **every** sampled frame inside the span (what the released 7B emits), TVG ``{s,e}``, SVG the
pairs only, and a one-sentence caption for free questions ("describe" mode). Times are sampled-frame
positions ``k/99`` of the 100 frames the model sees; boxes are the target's exact box at that frame.
"""

from __future__ import annotations

import random

from stchat.demo.world import Scene, WorldObject, object_box, target_box
from stchat.video.sampling import official_frame_indices

# The official task wording (docs/official_quirks.md#task-questions; the same strings as stchat's prompt
# templates). Kept here so
# the demo data does not move when the prompt modules are reorganised.
STVG_SUFFIX = (
    "Please firstly give the timestamps, and then give the spatial bounding box corresponding to each "
    "timestamp in the time period."
)
SVG_SUFFIX = "Please give the spatial bounding box corresponding to each timestamp in the time period."
LOCATE_IN_VIDEO = "Please describe the location of the corresponding subject/object in this video."
TVG_TEMPLATE = (
    "Give you a textual query: '<event>'. When does the described content occur in the video? "
    "Please return the start and end timestamps."
)

MOTION_PHRASE = {"left": "moving left", "right": "moving right", "up": "moving up", "down": "moving down",
                 "still": "standing still"}
MOTION_VERB = {"left": "moves left", "right": "moves right", "up": "moves up", "down": "moves down",
               "still": "stands still"}
DESCRIBE_QUESTIONS = (
    "Describe what happens in this video.",
    "Describe the video.",
    "What happens in this video?",
    "What do you see in this video?",
    "Describe this video briefly.",
    "What is in the video?",
    "Describe what you see.",
    "Can you describe this video?",
)
SVG_QUESTIONS = ("where is {p}?", "where can we see {p}?", "find {p}.")
# The official REC prompts (docs/official_quirks.md#task-questions, ``ref_prompts``).
REC_QUESTIONS = ("Where can I find <event> in this image?", "What part of this image contains <event>?",
                 "Where does <event> appear in this image?", "Where is <event> situated within this image?")


def article(word: str, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.4:
        return "the"
    return "an" if word[0] in "aeiou" else "a"


def phrase(colour: str, shape: str, motion: str | None, rng: random.Random) -> str:
    """``a/an/the <colour> <shape>`` optionally followed by the motion."""
    text = f"{article(colour, rng)} {colour} {shape}"
    if motion is not None:
        text += f" {MOTION_PHRASE[motion]}"
    return text


def caption(scene: Scene) -> str:
    """One sentence naming every object and its motion, in order of appearance."""
    objs = sorted(scene.objects, key=lambda o: (o.start, o.colour))
    parts = [f"{'an' if o.colour[0] in 'aeiou' else 'a'} {o.colour} {o.shape} {MOTION_VERB[o.motion]}"
             for o in objs]
    if len(parts) == 1:
        return parts[0][0].upper() + parts[0][1:] + "."
    rest = parts[1:]
    tail = rest[0] if len(rest) == 1 else ", ".join(rest[:-1]) + " and " + rest[-1]
    text = f"{parts[0]} while {tail}."
    return text[0].upper() + text[1:]


def sampled_track(scene: Scene) -> tuple[list[int], list[int]]:
    """(source frame of each of the 100 sampled frames, the sampled positions k where the target shows)."""
    idx = official_frame_indices(scene.n_frames)
    visible = [k for k, f in enumerate(idx) if scene.target.start <= f <= scene.target.end]
    return idx, visible


def _num(v: float) -> str:
    return f"{v:.5f}"


def _pairs(scene: Scene, idx: list[int], ks: list[int]) -> str:
    out = []
    for k in ks:
        box = target_box(scene, idx[k])
        assert box is not None
        out.append(f"{_num(k / 99)}: [{','.join(_num(v) for v in box)}]")
    return ", ".join(out)


def stvg_answer(scene: Scene) -> str:
    idx, vis = sampled_track(scene)
    return f"{{{_num(vis[0] / 99)},{_num(vis[-1] / 99)}}}, {_pairs(scene, idx, vis)}"


def _span_text(first: int, last: int) -> str:
    return f"{{{_num(first / 99)},{_num(last / 99)}}}"


def tvg_answer(scene: Scene) -> str:
    _, vis = sampled_track(scene)
    return _span_text(vis[0], vis[-1])


def object_span(scene: Scene, obj: WorldObject) -> tuple[int, int] | None:
    """First and last sampled position where ``obj`` shows (None if it shows in fewer than two)."""
    shown = [k for k, f in enumerate(official_frame_indices(scene.n_frames)) if obj.start <= f <= obj.end]
    return (shown[0], shown[-1]) if len(shown) >= 2 else None


def stvg_question(p: str) -> str:
    return f"At which time interval in the video can we see {p} occurring? {LOCATE_IN_VIDEO}{STVG_SUFFIX}"


def tvg_question(p: str) -> str:
    return TVG_TEMPLATE.replace("<event>", p.lower())


def turns_for(scene: Scene, rng: random.Random, tasks: list[str]) -> list[dict[str, str]]:
    """Human/gpt turns (friendly format) for ``tasks`` about this scene; the video tag opens the first."""
    t = scene.target
    conv: list[dict[str, str]] = []
    idx, vis = sampled_track(scene)
    for task in tasks:
        motion = t.motion if rng.random() < 0.5 else None
        p = phrase(t.colour, t.shape, motion, rng)
        if task == "stvg":
            q, a = stvg_question(p), stvg_answer(scene)
        elif task == "tvg":
            q, a = tvg_question(p), tvg_answer(scene)
        elif task == "svg":
            # A span around (or inside) the visible one; the answer holds the visible frames in it.
            s = rng.randint(max(vis[0] - 5, 0), vis[0] + (vis[-1] - vis[0]) // 3)
            e = rng.randint(vis[-1] - (vis[-1] - vis[0]) // 3, min(vis[-1] + 5, 99))
            if e <= s:
                s, e = vis[0], vis[-1]
            inside = [k for k in vis if s <= k <= e] or vis
            question = rng.choice(SVG_QUESTIONS).format(p=p)
            span = f"{{{round(s / 99, 3)}, {round(e / 99, 3)}}}"
            q = f"Between {span}, {question} {LOCATE_IN_VIDEO}{SVG_SUFFIX}"
            a = _pairs(scene, idx, inside)
        elif task == "caption":
            q, a = rng.choice(DESCRIBE_QUESTIONS), caption(scene)
        else:
            raise ValueError(f"unknown demo task {task!r}")
        conv += [{"from": "human", "value": q}, {"from": "gpt", "value": a}]
    conv[0]["value"] = "<video>\n" + conv[0]["value"]
    return conv


def _pair_starts(scene: Scene, obj: WorldObject, idx: list[int]) -> list[int]:
    """Sampled positions k where ``obj`` shows at k and at k + 1."""
    shown = [object_box(scene, obj, f) is not None for f in idx]
    return [k for k in range(len(idx) - 1) if shown[k] and shown[k + 1]]


def boxes_at_turn(scene: Scene, obj: WorldObject, k: int, idx: list[int], rng: random.Random
                  ) -> list[dict[str, str]]:
    """An SVG question on the two-frame span ``{k/99, (k+1)/99}`` (``obj`` shows in both), answered with
    ``obj``'s box at each: the times are given, so the box coordinates need the video. Two frames, not
    one: a span with start >= end becomes the literal ``{<error>}`` in the official front-end (Q16), so a
    one-frame question would carry no time at all. ``idx``: the source frame of each sampled position."""
    p = phrase(obj.colour, obj.shape, obj.motion if rng.random() < 0.3 else None, rng)
    span = f"{{{round(k / 99, 3)}, {round((k + 1) / 99, 3)}}}"
    q = f"Between {span}, {rng.choice(SVG_QUESTIONS).format(p=p)} {LOCATE_IN_VIDEO}{SVG_SUFFIX}"
    pairs = []
    for j in (k, k + 1):
        box = object_box(scene, obj, idx[j])
        assert box is not None
        pairs.append(f"{_num(j / 99)}: [{','.join(_num(v) for v in box)}]")
    return [{"from": "human", "value": q}, {"from": "gpt", "value": ", ".join(pairs)}]


def lesson_turns(scene: Scene, rng: random.Random) -> list[dict[str, str]]:
    """A video record in which the answers need the video (issue #9): the target's boxes at two moments
    where it shows, one distractor's at a moment where *it* shows, and the target's span (TVG), in random
    order. In an STVG answer most tokens follow from the previous box, so a model can lower its loss
    without looking; measured in checkpoints/demo_rec/README.md."""
    idx = official_frame_indices(scene.n_frames)
    starts = _pair_starts(scene, scene.target, idx)
    turns = [boxes_at_turn(scene, scene.target, k, idx, rng) for k in rng.sample(starts, min(2, len(starts)))]
    others = [(o, ks) for o in scene.objects if o is not scene.target and (ks := _pair_starts(scene, o, idx))]
    if others:
        o, ks = rng.choice(others)
        turns.append(boxes_at_turn(scene, o, rng.choice(ks), idx, rng))
    t = scene.target
    p = phrase(t.colour, t.shape, t.motion if rng.random() < 0.5 else None, rng)
    turns.append([{"from": "human", "value": tvg_question(p)}, {"from": "gpt", "value": tvg_answer(scene)}])
    rng.shuffle(turns)
    conv = [m for turn in turns for m in turn]
    conv[0]["value"] = "<video>\n" + conv[0]["value"]
    return conv


def span_turns(scene: Scene, rng: random.Random) -> list[dict[str, str]]:
    """A video record of TVG turns, one per object that shows (the target and each distractor), in random
    order (issue #9, session 14). The span is the one answer read from the video over time, and with one
    question per record a model lowers its loss by answering every clip with the same span (measured:
    one distinct start for 20 clips after thousands of steps). Here the same video gets a different span
    for each colour asked, so only reading the video for the asked colour lowers the loss."""
    turns = []
    for obj in scene.objects:
        span = object_span(scene, obj)
        if span is None:
            continue
        p = phrase(obj.colour, obj.shape, obj.motion if rng.random() < 0.5 else None, rng)
        turns.append([{"from": "human", "value": tvg_question(p)},
                      {"from": "gpt", "value": _span_text(*span)}])
    rng.shuffle(turns)
    conv = [m for turn in turns for m in turn]
    conv[0]["value"] = "<video>\n" + conv[0]["value"]
    return conv


def image_turns(scene: Scene, frame: int, rng: random.Random) -> list[dict[str, str]]:
    """REC turns about one frame: one question per visible object (target and distractors, in random
    order), each answered with its box ``[x1,y1,x2,y2]``; the image tag opens the first."""
    boxed = [(o, box) for o in scene.objects if (box := object_box(scene, o, frame)) is not None]
    rng.shuffle(boxed)
    conv: list[dict[str, str]] = []
    for o, box in boxed:
        q = rng.choice(REC_QUESTIONS).replace("<event>", phrase(o.colour, o.shape, None, rng))
        answer = "[" + ",".join(_num(v) for v in box) + "]"
        conv += [{"from": "human", "value": q}, {"from": "gpt", "value": answer}]
    conv[0]["value"] = "<image>\n" + conv[0]["value"]
    return conv
