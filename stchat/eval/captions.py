"""ELC caption score exactly as the official ``eval_stvg`` computes it (docs/official_quirks.md#metrics).

pycocoevalcap 1.2: PTBTokenizer (Java CoreNLP), BLEU-1..4 (each stored as the *list* BLEU-1..n), METEOR
(Java), ROUGE-L, CIDEr-D; every number rounded to 3 decimals; SPICE off. Java is required; without it we
return an ``unavailable`` note instead of crashing.
"""

from __future__ import annotations

import collections
import contextlib
import shutil
import sys
from collections.abc import Sequence

UNAVAILABLE_KEY = "unavailable"


def pred_caption(outputs: str) -> str:
    """Official caption of an ELC answer: the raw text's first sentence, after its last comma."""
    return outputs.split(".")[0].split(",")[-1]


def java_available() -> bool:
    return shutil.which("java") is not None


def caption_score(gt_captions: Sequence[str], pred_captions: Sequence[str]) -> dict[str, object]:
    """``{"Bleu_1": [b1], ..., "Bleu_4": [b1..b4], "METEOR": m, "ROUGE_L": r, "CIDEr": c}``.

    Returns ``{"unavailable": reason}`` when Java or pycocoevalcap is missing, or when the Java tools fail.
    """
    if not java_available():
        return {UNAVAILABLE_KEY: "Java runtime not found on PATH (pycocoevalcap needs it for captions)"}
    try:
        from pycocoevalcap.bleu.bleu import Bleu
        from pycocoevalcap.cider.cider import Cider
        from pycocoevalcap.meteor.meteor import Meteor
        from pycocoevalcap.rouge.rouge import Rouge
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
    except ImportError:
        return {UNAVAILABLE_KEY: "pycocoevalcap is not installed (pip install 'stchat[captions]')"}

    gts: dict[int, list[dict[str, str]]] = collections.defaultdict(list)
    preds: dict[int, list[dict[str, str]]] = collections.defaultdict(list)
    for i, (g, p) in enumerate(zip(gt_captions, pred_captions, strict=True)):
        gts[i].append({"caption": g})
        preds[i].append({"caption": p})

    scores: dict[str, object] = {}
    # pycocoevalcap prints progress to stdout; keep stdout clean for the JSON our CLI may print.
    try:
        with contextlib.redirect_stdout(sys.stderr):
            tokenizer = PTBTokenizer()
            gts_tok = tokenizer.tokenize(gts)
            res_tok = tokenizer.tokenize(preds)
            scorers = [
                (Bleu(1), "Bleu_1"),
                (Bleu(2), "Bleu_2"),
                (Bleu(3), "Bleu_3"),
                (Bleu(4), "Bleu_4"),
                (Meteor(), "METEOR"),
                (Rouge(), "ROUGE_L"),
                (Cider(), "CIDEr"),
            ]
            for scorer, name in scorers:
                score, _ = scorer.compute_score(gts_tok, res_tok)
                # Round the object pycocoevalcap returned, as the official code does: ROUGE-L and CIDEr are
                # numpy floats, whose ``round`` (scale, round-half-even, unscale) can differ from Python's
                # correctly rounded ``round`` in the last digit.
                if isinstance(score, list):
                    scores[name] = [float(round(s, 3)) for s in score]
                else:
                    scores[name] = float(round(score, 3))
    except (OSError, ValueError, RuntimeError, AssertionError) as exc:  # the Java tools failed
        return {UNAVAILABLE_KEY: f"caption tools failed: {type(exc).__name__}: {exc}"}
    return scores
