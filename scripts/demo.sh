#!/usr/bin/env bash
# The main job until `divqat flow` exists: set up, then train a full-precision
# small CNN on Fashion-MNIST, fine-tune it with QAT and with DivQAT (W8A8),
# export both integer models, evaluate them with the integer reference, compile
# them for an 8x8 accelerator, run them on the ISA-level functional model, and
# simulate the generated RTL in Verilator on a sample of test images (every logit
# checked against the reference).
# Re-runnable: finished runs are only re-evaluated (--resume), an interrupted one
# continues from its last epoch. Runs land in $DIVQAT_RUNS (default runs/demo).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
cargo build -q --bin divqat
divqat=target/debug/divqat
runs="${DIVQAT_RUNS:-runs/demo}"

"$divqat" data list
"$divqat" train --mode fp --resume --out "$runs/fp"
"$divqat" train --mode qat --teacher "$runs/fp" --resume --out "$runs/qat"
"$divqat" train --mode divqat --teacher "$runs/fp" --resume --out "$runs/divqat"
"$divqat" inspect --model "$runs/qat/model.qnn"
for victim in qat divqat; do
  "$divqat" eval --model "$runs/$victim/model.qnn" --dataset fashion-mnist
  "$divqat" compile --model "$runs/$victim/model.qnn" --hw 8x8 --out "$runs/$victim/build-8x8"
  "$divqat" eval --model "$runs/$victim/model.qnn" --backend functional --hw 8x8 --limit 2000
  "$divqat" sim --model "$runs/$victim/model.qnn" --hw 8x8 --limit 50
done
echo "demo: runs, metrics and integer models are in $runs/" >&2
