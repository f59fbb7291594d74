#!/usr/bin/env bash
# One prepared check of seqcli on a GPU machine (device tests, a 5-minute Multi30k run and its
# BLEU, training and decoding speed), run from the checkout; see benchmarks/gpu_check.py.
#
#   benchmarks/gpu_check.sh --data data/multi30k-copy            # figures under $OUT
#   benchmarks/gpu_check.sh --device cpu --smoke --out /tmp/check  # the same steps, tiny, on a CPU
#
# PYTHON picks the interpreter (default python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python3}" benchmarks/gpu_check.py "$@"
