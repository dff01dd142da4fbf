#!/usr/bin/env bash
# The SPoT experiment of the README ("Prompt transfer and task similarity"): on the embedded t5-nano,
# 3 source tasks (review sentiment, RTE, headline sarcasm), then an SST-2 target from (a) class-label
# init and (b) the library prompt retrieved by `--init-from auto`, plus two fixed-source controls;
# similarity heatmaps, dev balanced accuracy, learning curves. Every run: 1 input prompt x 20 tokens +
# a deep prefix x 20 positions (input prompt: Adafactor 0.3, prefix: AdamW 3e-4), batch 16, 300 steps.
# About 1 h on 2 shared CPU cores (1 thread per run, niced).
#
# Data: ../shared/data (SST-2, RTE) and the review-sentiment / headline-sarcasm files of the nano
# pre-training mixture cache (~/.cache/softprompt/mixture, written by softprompt.nano.mixture).
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/spot}
S=../shared/data
M=${SOFTPROMPT_CACHE:-$HOME/.cache/softprompt}/mixture
D=$work/data R=$work/runs
mkdir -p "$D" "$R" docs
export OMP_NUM_THREADS=1

python - "$M" "$D" "$S" <<'PY'
import json, random, sys
mixture, out, shared = sys.argv[1:]
def dump(path, rows): open(path, "w").write("".join(json.dumps({"text": t, "label": l}) + "\n" for t, l in rows))
rows = [json.loads(l) for l in open(f"{mixture}/review-sentiment.jsonl")]
random.Random(0).shuffle(rows)
neg, pos = [r for r in rows if r[1] == 0], [r for r in rows if r[1] == 1]
train, val = neg[:1500] + pos[:1500], neg[1500:1650] + pos[1500:1650]  # balanced (the file is 88% positive)
random.Random(1).shuffle(train); random.Random(2).shuffle(val)
dump(f"{out}/review_train.jsonl", train); dump(f"{out}/review_val.jsonl", val)
rows = [json.loads(l) for l in open(f"{mixture}/headline-sarcasm.jsonl")]
random.Random(0).shuffle(rows)
dump(f"{out}/sarcasm_train.jsonl", rows[:3000]); dump(f"{out}/sarcasm_val.jsonl", rows[3000:3300])
lines = open(f"{shared}/glue/sst2/train.tsv").readlines()
open(f"{out}/sst2_train.tsv", "w").write("".join(lines[:60001]))  # header + 60,000 sentences to sample from
open(f"{out}/sst2_select.tsv", "w").write(lines[0] + "".join(lines[-300:]))  # 300 held-out ones for the curves
PY

train() {  # train NAME ARGS...
  local name=$1; shift
  nice -n 19 softprompt train --model t5-nano --n-prompts 1 --prompt-length 20 --deep-prefix --prefix-length 20 \
    --batch-size 16 --steps 300 --eval-every 50 --checkpoint-every 50 --max-source-length 128 --quiet \
    --output-dir "$R/$name" --resume "$@"
}
train review --seed 1 --task custom --input-template "review sentiment: {text}" --label-column label \
  --label-words 0=negative,1=positive --train-file "$D/review_train.jsonl" --validation-file "$D/review_val.jsonl"
train rte --seed 2 --task rte --train-file $S/superglue/rte/train.jsonl --validation-file $S/superglue/rte/val.jsonl
train sarcasm --seed 3 --task custom --input-template "Is this headline sarcastic? {text}" --label-column label \
  --label-words 0=no,1=yes --train-file "$D/sarcasm_train.jsonl" --validation-file "$D/sarcasm_val.jsonl"

sst2=(--task sst2 --train-file "$D/sst2_train.tsv" --validation-file "$D/sst2_select.tsv" --train-size 3000)
train sst2-classlabel "${sst2[@]}"
train sst2-spot "${sst2[@]}" --init-from auto --library "$R/review" --library "$R/rte" --library "$R/sarcasm" --probe-steps 50
train sst2-from-sarcasm "${sst2[@]}" --init-from "$R/sarcasm"
train sst2-from-rte "${sst2[@]}" --init-from "$R/rte"
for seed in 1 2; do
  train sst2-classlabel-s$seed "${sst2[@]}" --seed $seed
  train sst2-from-review-s$seed "${sst2[@]}" --seed $seed --init-from "$R/review"
done

for bank in prompts prefixes; do
  softprompt similarity "$R"/{review,rte,sarcasm,sst2-classlabel,sst2-spot} --bank $bank \
    --output "$work/sim_$bank.json" --plot docs/spot_similarity_$bank.png
done
for run in sst2-classlabel sst2-spot sst2-from-sarcasm sst2-from-rte sst2-{classlabel,from-review}-s{1,2}; do
  nice -n 19 softprompt ensemble-eval --prompts "$R/$run" --task sst2 --data-file $S/glue/sst2/dev.tsv \
    --output "$work/eval_$run.json" --quiet
done
nice -n 19 softprompt ensemble-eval --prompts "$R/review" --task sst2 --transfer --data-file $S/glue/sst2/dev.tsv \
  --output "$work/eval_review_zeroshot.json" --quiet
python scripts/spot_curves.py "$R" docs/spot_sst2_curves.png
