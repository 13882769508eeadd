"""Both official coordinate front-ends and get_variables (docs/official_quirks.md#coordinates-in-prompts,
Q16)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stchat.errors import PromptError
from stchat.processing.coords import (
    VARIABLE_KEYS,
    format_benchmark_text,
    format_conversations,
    format_demo_text,
    format_query,
    get_variables,
)

CASES = ["video_stvg", "video_svg", "video_elc", "image_rec", "image_reg"]


@pytest.mark.parametrize("name", CASES)
def test_demo_front_end_matches_golden_conversations(golden_dir, name):
    case = json.loads((golden_dir / "cases" / f"{name}.json").read_text())
    text, variables = format_query(case["query_with_media_tag"], "demo")
    assert text == case["conversations_after_format"][0]["value"]
    assert variables == case["variables"]
    assert list(variables) == list(VARIABLE_KEYS)


def test_demo_values_are_rounded_to_three_decimals_and_keep_surrounding_text():
    out = format_demo_text("<t1> [<w0.12345>, <h0>]")
    assert out == "<TEMP-INPUT1.0> [<WIDTH-INPUT0.123>, <HEIGHT-INPUT0.0>]"
    text, v = format_query("at <t0.9996>, box [<w0.1>,<h0.2>,<w0.3>,<h0.4>]")
    assert text == "at <TEMP-INPUT>, box [<WIDTH-INPUT>,<HEIGHT-INPUT>,<WIDTH-INPUT>,<HEIGHT-INPUT>]"
    assert v["temporal_input_locations"] == [1.0]
    assert v["spatial_width_input_locations"] == [0.1, 0.3]
    assert v["spatial_height_input_locations"] == [0.2, 0.4]


@pytest.mark.parametrize(
    "query",
    ["from <t0.5 on", "at <t-0.2>", "at <t.5>", "box <w0.3.4>", "at <t 0.5>", "at <t1.5>", "at <h2>"],
)
def test_malformed_or_out_of_range_demo_coordinates_raise(query):
    with pytest.raises(PromptError) as err:
        format_query(query, "demo")
    assert "\n" not in str(err.value)


def test_text_that_only_resembles_coordinates_is_left_alone():
    text, v = format_query("<the cat> <what> <hello> a<b")
    assert text == "<the cat> <what> <hello> a<b"
    assert all(vals == [] for vals in v.values())


def test_benchmark_span_box_and_starts_in_forms():
    text, v = format_query("<video>\nBetween {0.087,0.581}, who is there?", "benchmark")
    assert text == "<video>\nBetween  {<TEMP-INPUT><TEMP-INPUT>} , who is there?"
    assert v["temporal_input_locations"] == [0.087, 0.581]

    text, v = format_query("Starts in 0.591, in region [0.352, 0.442, 0.505, 0.827]?", "benchmark")
    assert text == (
        " Starts in <TEMP-INPUT> , in region  [<WIDTH-INPUT><HEIGHT-INPUT><WIDTH-INPUT><HEIGHT-INPUT>]?"
    )
    assert v["temporal_input_locations"] == [0.591]
    assert v["spatial_width_input_locations"] == [0.352, 0.505]
    assert v["spatial_height_input_locations"] == [0.442, 0.827]


def test_benchmark_box_values_are_clipped_to_integers_and_negatives_do_not_match():
    assert format_benchmark_text("[0.1, 0.2, 1.5, 0.4]") == (
        " [<WIDTH-INPUT0.1><HEIGHT-INPUT0.2><WIDTH-INPUT1><HEIGHT-INPUT0.4>]"
    )
    _, v = format_query("[0.1, 0.2, 1.5, 0.4]", "benchmark")
    assert v["spatial_width_input_locations"] == [0.1, 1.0]
    assert format_benchmark_text("[-0.1, 0.2, 0.3, 0.4]") == "[-0.1, 0.2, 0.3, 0.4]"


def test_benchmark_reversed_span_becomes_error_literal():
    text, v = format_query("During {0.6, 0.2} what?", "benchmark")
    assert text == "During {<error>} what?"
    assert v["temporal_input_locations"] == []
    text, _ = format_query("During {0.3, 0.3} what?", "benchmark")
    assert "{<error>}" in text


def test_get_variables_orders_by_turn_then_position_and_maps_roles():
    convs = [
        {"from": "human", "value": "<t0.2> then <t0.1> [<w0.5>,<h0.6>,<w0.7>,<h0.8>]"},
        {"from": "gpt", "value": "<t0.3>: [<w0.1>,<h0.2>,<w0.3>,<h0.4>]"},
        {"from": "human", "value": "<t0.9>"},
        {"from": "gpt", "value": None},
    ]
    out, v = format_conversations(convs, "demo")
    assert v["temporal_input_locations"] == [0.2, 0.1, 0.9]
    assert v["temporal_output_locations"] == [0.3]
    assert v["spatial_width_output_locations"] == [0.1, 0.3]
    assert v["spatial_height_input_locations"] == [0.6, 0.8]
    assert out[1]["value"] == "<TEMP-OUTPUT>: [<WIDTH-OUTPUT>,<HEIGHT-OUTPUT>,<WIDTH-OUTPUT>,<HEIGHT-OUTPUT>]"
    assert out[3]["value"] is None
    assert convs[0]["value"].startswith("<t0.2>")  # inputs are not mutated


@pytest.mark.parametrize(
    "value",
    [
        "<TEMP-INPUT__import__('os').system('true')>",
        "<TEMP-INPUT>",
        "<HEIGHT-INPUT[1]>",
        "<WIDTH-INPUT1e999>",
    ],
)
def test_get_variables_never_evaluates_code_and_rejects_non_numbers(value):
    with pytest.raises(PromptError):
        get_variables([{"from": "human", "value": value}])


def test_unknown_front_end_raises():
    with pytest.raises(PromptError, match="front-end"):
        format_query("x", "fancy")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("twh"), st.floats(0, 1, allow_nan=False)), max_size=8))
def test_demo_values_round_trip_in_order(coords):
    query = " and ".join(f"<{k}{v!r}>" if "e" not in repr(v) else f"<{k}0>" for k, v in coords)
    _, variables = format_query(query, "demo")
    names = {"t": "temporal_input_locations", "w": "spatial_width_input_locations",
             "h": "spatial_height_input_locations"}
    for kind, name in names.items():
        expect = [round(float(v), 3) if "e" not in repr(v) else 0.0 for k, v in coords if k == kind]
        assert variables[name] == expect
