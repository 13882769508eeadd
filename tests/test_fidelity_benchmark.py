"""Benchmark prompt construction against values the official code produced (not covered by the goldens).

Every expected value below was produced once by running the official ``inference/src`` code (datasets and
``LocalDataset`` front-end) outside this repository on the stated inputs; only inputs and outputs are
stored here. The comparisons are on JSON text, so ``1`` vs ``1.0`` and key order count: result files are
JSON and the official evaluator and users' diff tools read them.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest

from stchat.eval.datasets import st_align_item
from stchat.processing.coords import format_conversations

FIXTURE = Path(__file__).parent / "fixtures" / "fidelity_st_align_official.json"

_EMPTY = {
    "temporal_input_locations": [],
    "temporal_output_locations": [],
    "spatial_height_input_locations": [],
    "spatial_height_output_locations": [],
    "spatial_width_input_locations": [],
    "spatial_width_output_locations": [],
}


def _vars(**kw: list) -> str:
    return json.dumps({**_EMPTY, **kw})


# (role, text) -> (official formatted text, official variables as JSON)
FRONT_END_CASES = [
    (
        ("human", "Between[1.2, 0.123, 1.2,1], who"),
        "Between [<WIDTH-INPUT><HEIGHT-INPUT><WIDTH-INPUT><HEIGHT-INPUT>], who",
        _vars(spatial_height_input_locations=[0.123, 1.0], spatial_width_input_locations=[1, 1]),
    ),
    (
        ("gpt", "x [1.2, 1,0.9995,0  ], who"),
        "x  [<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>], who",
        _vars(spatial_height_output_locations=[1.0, 0.0], spatial_width_output_locations=[1, 1.0]),
    ),
    (  # a negative number never matches: the whole box stays literal text
        ("human", "region [0.35, -0.1, 0.5, 0.8] and [ 0.1,0.2 ,0.3,0.4]"),
        "region [0.35, -0.1, 0.5, 0.8] and [ 0.1,0.2 ,0.3,0.4]",
        _vars(),
    ),
    (
        ("human", "At {0.5, 0.5}, then {0.1234,0.9996}."),
        "At {<error>}, then  {<TEMP-INPUT><TEMP-INPUT>} .",
        _vars(temporal_input_locations=[0.123, 1.0]),
    ),
    (
        ("human", "Starts in 1, where is [0,0,1,1]?"),
        " Starts in <TEMP-INPUT> , where is  [<WIDTH-INPUT><HEIGHT-INPUT><WIDTH-INPUT><HEIGHT-INPUT>]?",
        _vars(
            temporal_input_locations=[1.0],
            spatial_height_input_locations=[0.0, 1.0],
            spatial_width_input_locations=[0.0, 1.0],
        ),
    ),
    (  # spans are not clipped; the pair time outside a box is left alone
        ("gpt", "{1,2} and 1.00049,: [0.3,0.2,0.1,0.05]"),
        " {<TEMP-OUTPUT><TEMP-OUTPUT>}  and 1.00049,: "
        " [<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>]",
        _vars(
            temporal_output_locations=[1.0, 2.0],
            spatial_height_output_locations=[0.2, 0.05],
            spatial_width_output_locations=[0.3, 0.1],
        ),
    ),
]


@pytest.mark.parametrize(("turn", "text", "variables"), FRONT_END_CASES)
def test_benchmark_front_end_matches_official_text_and_variables_json(turn, text, variables):
    role, value = turn
    convs, got = format_conversations([{"from": role, "value": value}, {"from": "gpt", "value": None}],
                                      front_end="benchmark")
    assert convs[0]["value"] == text
    assert convs[1]["value"] is None
    # JSON text, not values: a clipped corner is the int 1 officially, and result files keep it so.
    assert json.dumps(got) == variables


@pytest.mark.parametrize("task", ["stvg", "svg", "elc"])
def test_st_align_records_equal_the_official_records(task):
    fix = json.loads(FIXTURE.read_text())
    # seed=None replays the official unseeded draws: two ``random.choice`` per item, items in order.
    random.seed(fix["seed"])
    got = [
        st_align_item(copy.deepcopy(ann), fix["data_folder"], task, i, None).record
        for i, ann in enumerate(fix["annotations"])
    ]
    expected = fix["records"][task]
    for g, e in zip(got, expected, strict=True):
        assert list(g) == list(e)  # field order of the written record
        assert json.dumps(g) == json.dumps(e)
