"""Model output ids -> text, and the official coordinate-token normalisation.

``replace_and_normalize`` reproduces the official ``inference/src/utils.py`` function character for
character, because the official parsers and the evaluator read its quirky output: every
``<WIDTH-n>``, ``<HEIGHT-n>``, ``<TEMP-n>`` becomes ``n/99`` with five decimals **followed by a comma**,
and only the commas right before ``]`` and ``}`` are removed afterwards. So ``<TEMP-011>: [..]``
becomes ``0.11111,: [..]`` -- the stray comma before the colon is what the ST pair parser expects.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_COORD_TOKEN = re.compile(r"<(WIDTH|HEIGHT|TEMP)-(\d+)>")
IM_END = "<|im_end|>"


def replace_and_normalize(text: str, return_token: bool = False) -> str:
    """Official coordinate-token normalisation (``return_token=True`` writes the integer index instead)."""

    def _sub(m: re.Match[str]) -> str:
        k = int(m.group(2))
        return f"{k}," if return_token else f"{k / 99:.5f},"

    out = _COORD_TOKEN.sub(_sub, text)
    return out.replace(",]", "]").replace(",}", "}")


def decode_output(tokenizer, output_ids: Sequence[int]) -> tuple[str, str]:
    """Decode generated ids as the official code does: ``(outputs, converted_outputs)``.

    ``outputs`` = ``batch_decode(skip_special_tokens=False)`` with the literal ``<|im_end|>`` removed;
    ``converted_outputs`` = ``replace_and_normalize(outputs)``.
    """
    raw = tokenizer.decode(list(output_ids), skip_special_tokens=False)
    raw = raw.replace(IM_END, "")
    return raw, replace_and_normalize(raw)
