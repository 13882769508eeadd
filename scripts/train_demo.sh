#!/usr/bin/env bash
# Reproduce the embedded demo model from scratch (issue #9), seeded end to end and resumable (re-running
# continues from the latest checkpoint of the stage it is in):
#   untrained checkpoint -> training data -> stage 1 (REC on frames, configs/demo_rec.yaml) -> export ->
#   stage 2 (every task, configs/demo.yaml) -> export into the package (stchat/demo/model) -> a held-out
#   benchmark score.
#   bash scripts/train_demo.sh                    # the shipped recipe (CPU: see the README for the wall time)
#   REC_STEPS=N STEPS=M bash scripts/train_demo.sh  # other stage lengths
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=runs/demo
[ -f "$OUT/init/config.json" ] || $PY -m stchat.demo init "$OUT/init"
[ -f "$OUT/data/rec.json" ] || $PY -m stchat.demo train-data "$OUT/data" --clips 800 --per-clip 3 --images-per-clip 2
# Stage 1. The schedule is constant, so the extension past the config's 1,500 steps (resumed exactly) is
# the same run as one long one; the shipped model's stage 1 stopped at REC_STEPS.
$PY -m stchat.cli train run configs/demo_rec.yaml --resume auto
$PY -m stchat.cli train run configs/demo_rec.yaml --resume auto --max-steps "${REC_STEPS:-1800}"
[ -f "$OUT/stage1/config.json" ] || $PY -m stchat.demo export "$OUT/rec/checkpoint-${REC_STEPS:-1800}" \
  "$OUT/stage1" --base "$OUT/init"
# Stage 2: every task, video and image records, from the stage-1 model.
$PY -m stchat.cli train run configs/demo.yaml --resume auto ${STEPS:+--max-steps "$STEPS"} --stop-after-steps "${STOP2:-500}"
LAST=$(ls -d "$OUT"/train/checkpoint-* | sort -t- -k2 -n | tail -1)
# The base is the stage-1 model: its special tokens are already in the official order (stchat.demo.export).
$PY -m stchat.demo export "$LAST" stchat/demo/model --base "$OUT/stage1"
[ -f "$OUT/bench/benchmark.json" ] || $PY -m stchat.demo bench "$OUT/bench" --clips 50
STCHAT_MODEL=stchat/demo/model $PY -m stchat.cli eval run --benchmark "$OUT/bench/benchmark.json" \
  --save-dir "$OUT/eval" --no-progress
$PY -m stchat.cli eval score --result-dir "$OUT/eval"
