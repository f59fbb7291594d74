#!/usr/bin/env bash
# Scheduled sampling on Multi30k de->en, sequential (exact) vs parallel (two passes), measured
# on valid. The CPU recipe with the gold-token probability falling linearly from 1.0 to 0.75
# over the first 1,000 updates; 1,087 updates each, as the teacher-forced CPU row of docs/results.md.
# Usage: experiments/scheduled_sampling_multi30k.sh DATA_DIR OUT_DIR   (DATA_DIR: train/valid .de/.en)
set -euo pipefail
data=${1:?data directory}
out=${2:?output directory}
mkdir -p "$out"
for mode in parallel sequential; do
    seqcli train --config configs/multi30k-de-en-cpu.toml --train "$data/train" --valid "$data/valid" \
        --teacher-forcing linear --tf-start 1.0 --tf-min 0.75 --tf-slope 0.00025 \
        --scheduled-sampling "$mode" --max-steps 1087 --set train.max_minutes=0 \
        --out "$out/ss-$mode" 2> "$out/ss-$mode.log"
    tail -n 1 "$out/ss-$mode/log.jsonl"
done
