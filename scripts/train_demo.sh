#!/usr/bin/env bash
# Reproduce the embedded demo model from scratch (issue #9): untrained checkpoint, training data,
# `stchat train run configs/demo.yaml` (resumable: re-running continues from the latest checkpoint),
# export into the package (stchat/demo/model) and a held-out benchmark score. Seeded end to end.
#   bash scripts/train_demo.sh            # everything (CPU: see the README for the wall time)
#   STEPS=N bash scripts/train_demo.sh    # train to N optimizer steps instead of the config's max_steps
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=runs/demo
[ -f "$OUT/init/config.json" ] || $PY -m stchat.demo init "$OUT/init"
[ -f "$OUT/data/rec.json" ] || $PY -m stchat.demo train-data "$OUT/data" --clips 800 --per-clip 3 --images-per-clip 2
# Stage 1: REC on the clips' frames (configs/demo_rec.yaml). The schedule is constant, so the extension
# past the config's 3,000 steps (resumed exactly) is the same run as one long one, warm-up aside.
$PY -m stchat.cli train run configs/demo_rec.yaml --resume auto
$PY -m stchat.cli train run configs/demo_rec.yaml --resume auto --max-steps "${REC_STEPS:-REC_TOTAL}"
REC=$(ls -d "$OUT"/rec/checkpoint-* | sort -t- -k2 -n | tail -1)
[ -f "$OUT/stage1/config.json" ] || $PY -m stchat.demo export "$REC" "$OUT/stage1" --base "$OUT/init"
# Stage 2: every task, video and image records (configs/demo.yaml), from the stage-1 model.
$PY -m stchat.cli train run configs/demo.yaml --resume auto ${STEPS:+--max-steps "$STEPS"}
LAST=$(ls -d "$OUT"/train/checkpoint-* | sort -t- -k2 -n | tail -1)
$PY -m stchat.demo export "$LAST" stchat/demo/model --base "$OUT/init"
[ -f "$OUT/bench/benchmark.json" ] || $PY -m stchat.demo bench "$OUT/bench" --clips 50
STCHAT_MODEL=stchat/demo/model $PY -m stchat.cli eval run --benchmark "$OUT/bench/benchmark.json" \
  --save-dir "$OUT/eval" --no-progress
$PY -m stchat.cli eval score --result-dir "$OUT/eval"
