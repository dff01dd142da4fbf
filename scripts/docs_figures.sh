#!/usr/bin/env bash
# Rebuilds docs/scale_random_rte.png and docs/neighbors_random_rte.png from a real (small) run:
# three RANDOM T5s of growing width, 3 prompts each, on real SuperGLUE RTE from ../shared/data.
# Random backbones score at chance: the pictures show what the tools draw, not a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/softprompt-docs}
data=../shared/data/superglue/rte
mkdir -p "$work/models" docs
python - "$work/models" <<'PY'
import sys
from softprompt.models import random_t5, save_model_dir
for d in (32, 64, 128):
    save_model_dir(random_t5(d_model=d, d_ff=2 * d, d_kv=d // 4, num_heads=4, num_layers=2), f"{sys.argv[1]}/random-t5-d{d}")
PY
models=$(printf "$work/models/random-t5-d%s," 32 64 128)
softprompt sweep --models "${models%,}" --task rte --train-file $data/train.jsonl --validation-file $data/val.jsonl \
    --eval-size 100 --train-sizes 500 --prompt-lengths 10 --n-prompts 3 --steps 60 --batch-size 8 --eval-every 30 \
    --max-source-length 128 --out-dir "$work/sweep" --quiet
softprompt plot-scale "$work"/sweep/results/*.json --metric accuracy --out docs/scale_random_rte.png \
    --title "RTE, 3 prompts on RANDOM T5s (tool demo, chance-level by construction)"
softprompt neighbors "$work"/sweep/runs/random-t5-d128__*/ --prompt all --top-k 5 --plot docs/neighbors_random_rte.png > docs/neighbors_random_rte.txt
