#!/usr/bin/env bash
# Pre-train one t5-nano size on a GPU within a time budget (softprompt.nano.lineage: the shipped sizes'
# five-stage recipe, or --steps-scale K times each stage's steps), and write to --out DIR the stage it
# reached: the latest stage's float32 weights in 15 MiB parts (model.safetensors.partN) and their SHA-256
# (model.sha256), every stage's state, config and log in lineage.tar.gz (with the SHA-256 of every stage's
# weights, taken where they were trained), and summary.txt. --join rebuilds run folders from those files.
#
#   once, with network access:  python -m softprompt.nano.corpus --out nano-corpus
#                               bash tools/gpu_bundle.sh --corpus nano-corpus      (for an air-gapped GPU host)
#   on the GPU host:            bash tools/gpu_pretrain.sh --size t5-nano-m --minutes 8 --out results
#   back here:                  bash tools/gpu_pretrain.sh --join results nano-gpu --corpus nano-corpus
#                               python -m softprompt.nano.gate --model nano-gpu/stageN/model --json gate.json
#                               python -m softprompt.nano.export --model nano-gpu/stageN/model --gate gate.json ...
#
# Options: --size NAME (t5-nano), --minutes M (8: the lineage's budget; packing takes seconds more),
# --steps-scale K (1), --batch-scale K (1: K times the batch in 1/K of the steps, lr x sqrt(K); the
# GPU's lever, see below; or one K per stage, e.g. 4,1,1,1,1), --device DEV (cuda), --corpus DIR (default
# .gpu-bundle/corpus, its train.bin unpacked from train.bin.xz; with --join: the corpus here, for export),
# --work DIR (default a temporary folder), --out DIR (required), --join RESULTS DEST (instead of a run: RESULTS is a run's --out folder).
# The bundle's mixture rows are unpacked into a temporary SOFTPROMPT_CACHE when present. No optimiser state is
# written: a stage the budget cut short cannot be resumed from these files, only gated, tuned, compared and
# exported. Only the latest stage's weights are written; at export the earlier stages' SHA-256, taken on the GPU
# host, stand in for theirs. --join (softprompt.nano.join) also points the stages' recorded paths here: init_from,
# and with --corpus the corpus.
# Measured on an H200: at the recipe's batch of 64 the five stages (13,200 steps) take 10-13 minutes;
# --batch-scale 4 --steps-scale 2 (batch 256, twice the recipe's tokens) ran the whole t5-nano lineage in
# 333 s, and batch 256 beat 64 at equal GPU time (softprompt.nano.batch_pilot; docs/t5-nano.md).
set -euo pipefail

main() {
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="$root/.gpu-bundle"
size=t5-nano minutes=8 scale=1 batch_scale=1 device=cuda corpus="" work="" out="" join=""
python="${PYTHON:-$(command -v python3 || command -v python)}"
while [ $# -gt 0 ]; do
  case "$1" in
    --size) size="$2"; shift 2 ;;
    --minutes) minutes="$2"; shift 2 ;;
    --steps-scale) scale="$2"; shift 2 ;;
    --batch-scale) batch_scale="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --corpus) corpus="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --join) join="$2"; out="$3"; shift 3 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_pretrain.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "gpu_pretrain.sh: no output folder: pass --out DIR (or --join RESULTS DEST)" >&2; exit 2; }
if [ -n "$join" ]; then
  unpack "$root" "$python" "$join" "$out" "$corpus"
else
  pack_run "$root" "$bundle" "$size" "$minutes" "$scale" "$device" "$corpus" "$work" "$out" "$python" "$batch_scale"
fi
}

# pack_run ...: unpack the bundle, run the lineage, write the latest stage to $out
pack_run() {
local root="$1" bundle="$2" size="$3" minutes="$4" scale="$5" device="$6" corpus="$7" work="$8" out="$9" python="${10}" batch_scale="${11}"
source "$root/tools/gpu_site.sh"
use_bundle_wheels "$python" "$bundle" "$device"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -f "$bundle/mixture.tar.xz" ]; then
  export SOFTPROMPT_CACHE="${TMPDIR:-/tmp}/softprompt-cache"
  mkdir -p "$SOFTPROMPT_CACHE" && tar xJf "$bundle/mixture.tar.xz" -C "$SOFTPROMPT_CACHE"
fi
[ -n "$corpus" ] || corpus="$(unpack_bundle_corpus "$bundle")"
[ -n "$work" ] || work="$(mktemp -d "${TMPDIR:-/tmp}/gpu-lineage.XXXXXX")"
mkdir -p "$work"
mkdir -p "$out"
local started=$SECONDS rc
set +e  # a failed lineage still returns what it wrote (its log is in lineage.tar.gz), then the exit status says so
"$python" -m softprompt.nano.lineage --size "$size" --corpus "$corpus" --out "$work" --minutes "$minutes" \
  --device "$device" --steps-scale "$scale" --batch-scale "$batch_scale" --checkpoint-minutes 1000 2>&1 | tee "$work/lineage.log" | grep -v '"phase"'
rc=${PIPESTATUS[0]}
set -e
local stage
stage="$(cd "$work" && ls -d stage*/model 2>/dev/null | sort -V | tail -1)"
if [ -z "$stage" ]; then
  { echo "gpu_pretrain.sh: the lineage wrote no checkpoint; the end of its log:"; tail -20 "$work/lineage.log"; } | tee "$out/summary.txt" >&2
  exit 1
fi
stage="${stage%/model}"
(cd "$work" && sha256sum "$stage/model/model.safetensors") > "$out/model.sha256"
(cd "$work" && sha256sum stage*/model/model.safetensors) > "$work/weights.sha256"  # every stage's, taken here: export checks them
split -b 15M -d -a 1 "$work/$stage/model/model.safetensors" "$out/model.safetensors.part"
[ "$(ls "$out"/model.safetensors.part* | wc -l)" -le 5 ] || { echo "gpu_pretrain.sh: the weights need more than 5 parts of 15 MiB" >&2; exit 1; }
tar czf "$out/lineage.tar.gz" -C "$work" --exclude model.safetensors --exclude optimizer.safetensors .
{
  echo "size: $size, steps scale: $scale, batch scale: $batch_scale, device: $device ($("$python" -c 'import torch; print(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu")'))"
  echo "budget: $minutes min; ran $((SECONDS - started)) s, exit status $rc; latest stage: $stage"
  "$python" -c 'import json, sys
for line in open(sys.argv[1]).read().splitlines()[-1:]:
    print("last log record:", line)
print("state:", json.dumps({k: v for k, v in json.load(open(sys.argv[2])).items() if k in ("step", "total_steps", "tokens_seen", "eval")}))' \
    "$work/$stage/log.jsonl" "$work/$stage/model/state.json"
} > "$out/summary.txt"
cat "$out/summary.txt"
return "$rc"
}

# unpack ROOT PYTHON SRC DEST [CORPUS]: rebuild the run folders from the files a GPU run wrote (softprompt.nano.join)
unpack() {
PYTHONPATH="$1${PYTHONPATH:+:$PYTHONPATH}" "$2" -m softprompt.nano.join "$3" "$4" ${5:+--corpus "$5"}
}

main "$@"
