import json

import pytest

from stchat.processing.decode import replace_and_normalize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{<TEMP-010><TEMP-050>}", "{0.10101,0.50505}"),
        ("[<WIDTH-010><HEIGHT-020><WIDTH-030><HEIGHT-040>]", "[0.10101,0.20202,0.30303,0.40404]"),
        ("<TEMP-011>: [<WIDTH-001>]", "0.11111,: [0.01010]"),
        ("no tokens", "no tokens"),
    ],
)
def test_reference_examples(text, expected):
    assert replace_and_normalize(text) == expected


def test_return_token():
    assert replace_and_normalize("<TEMP-011>: [<WIDTH-001><HEIGHT-099>]", return_token=True) == "11,: [1,99]"


def test_golden_cases(golden_dir):
    for path in sorted((golden_dir / "cases").glob("*.json")):
        case = json.loads(path.read_text())
        assert replace_and_normalize(case["output_text_without_im_end"]) == case[
            "output_text_replace_and_normalize"
        ], path.name
