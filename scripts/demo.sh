#!/usr/bin/env bash
# The main job: set up, build, and run the default `divqat flow` (Fashion-MNIST,
# small-cnn, W8A8): train FP, fine-tune QAT and DivQAT, evaluate them on the float,
# fake-quant and integer backends, compile them for a 2x2 accelerator sized for the
# iCEBreaker, simulate its RTL bit-exactly against the integer reference, steal both
# victims with KnockoffNets (with and without reverse sigmoid), synthesize for the
# board, and write the report: $DIVQAT_RUNS/report.html and report.md
# (default runs/flow).
# Re-runnable: finished steps are skipped, an interrupted step resumes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/setup.sh
cargo build --release -q --bin divqat
runs="${DIVQAT_RUNS:-runs/flow}"
target/release/divqat flow --out "$runs"
