#!/usr/bin/env bash
# Rebuilds docs/scale_t5nano_sst2.png (+ .svg) and docs/neighbors_t5nano_sst2.png (+ .txt): input
# prompts on the three embedded sizes of one pre-training recipe (t5-nano-s, t5-nano, t5-nano-m;
# softprompt.nano.lineage), real SST-2 from ../shared/data. 5 prompts of 20 tokens per size,
# class-label init, Adafactor 0.3, 500 steps x 32, scored once at the end on all 872 dev examples
# (no checkpoint selection on dev); then the nearest tokens of the default t5-nano's five trained
# prompts. Resumable: a rerun skips finished cells. STEPS=1000 trains longer and draws
# docs/scale_t5nano_sst2_1000steps.png instead (no neighbour table).
#   bash scripts/scale_curve.sh [WORK]        MODELS=t5-nano bash scripts/scale_curve.sh  (a subset)
#   STEPS=1000 bash scripts/scale_curve.sh runs/scale-sst2-1000
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-runs/scale-sst2}
models=${MODELS:-t5-nano-s,t5-nano,t5-nano-m}
steps=${STEPS:-500}
figure=docs/scale_t5nano_sst2$([[ $steps == 500 ]] || echo "_${steps}steps").png
data=../shared/data/glue/sst2
softprompt sweep --models "$models" --task sst2 --train-file $data/train.tsv --validation-file $data/dev.tsv \
    --prompt-lengths 20 --inits class-label --n-prompts 5 --steps $steps --batch-size 32 --eval-every $steps \
    --max-source-length 64 --output-dir "$work" --quiet
python - "$work" $data/dev.tsv > "$work/majority.csv" <<'PY'  # the floor: always answering dev's most frequent label
import collections, csv, glob, json, sys
labels = [row["label"] for row in csv.DictReader(open(sys.argv[2], encoding="utf-8"), delimiter="\t")]
floor = collections.Counter(labels).most_common(1)[0][1] / len(labels)
print("label,x,y")
for path in sorted(glob.glob(f"{sys.argv[1]}/results/*.json")):
    print(f"majority class,{json.load(open(path))['settings']['model_params']},{floor}")
PY
softprompt plot-scale "$work"/results/*.json --metric accuracy --reference "$work/majority.csv" --output "$figure" \
    --title "SST-2 dev, 5 input prompts (P=20, $steps steps) on ${models//,/ / } (one recipe)"
if [[ ",$models," == *,t5-nano,* && $steps == 500 ]]; then
    softprompt neighbors "$work"/runs/t5-nano__P20__*/ --prompt all --top-k 5 --plot docs/neighbors_t5nano_sst2.png \
        > docs/neighbors_t5nano_sst2.txt
fi
