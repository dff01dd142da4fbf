#!/usr/bin/env bash
# Run every benchmark on one GPU: bf16 on random t5-base- (and t5-large-) shaped models (no hub
# download), fp32 where a comparison needs it (realdata's exact prediction check, t5-base), and
# write each benchmark's RESULT line, as JSON, to OUT_DIR/<name>.json (its full output beside it
# in <name>.log), with env.txt (GPU, versions, date) and summary.txt. On an H200 the t5-base shape
# takes about 7.5 minutes (17-102 s per benchmark, about 13 s of each starting Python and CUDA);
# the t5-large shape's ensemble, prefix and generate benchmarks took 50 / 16 / 33 s.
#
#   bash benchmarks/gpu.sh                          # CUDA, t5-base shape, results in ./gpu-results
#   bash benchmarks/gpu.sh --shapes large           # t5-large shape
#   bash benchmarks/gpu.sh --only prefix,train --pack   # some benchmarks, results in one archive
#   bash benchmarks/gpu.sh --device cpu --quick     # smoke run on the CPU, tiny model, ~2 min
#
# Options: --device DEV (cuda), --quick (tiny model and sizes: the benchmarks' --quick),
# --shapes LIST (base; or large, or base,large; ignored with --quick), --only LIST (some of ensemble, generate,
# prefix, train, variants, realdata, serve: run only those benchmarks; default all), --out DIR (default ./gpu-results),
# --data DIR (realdata_bench's data, default ../shared/data; skipped when absent),
# --serve (also serve_bench.py, whose servers run on the CPU), --python PY (default python3, else python),
# --pack (at the end, move the results into OUT_DIR/gpu-results.tar.gz beside summary.txt: one file to copy).
# Exit status: 0 when every benchmark wrote its RESULT, 1 otherwise (see OUT_DIR/summary.txt).
# On an air-gapped GPU host: build .gpu-bundle/ on a machine with network access (bash
# tools/gpu_bundle.sh) and copy it with the repository; on CUDA, gpu.sh then installs its wheels
# (softprompt's transformers, datasets, peft) into a temporary folder, and reads its data when
# ../shared/data is absent.
set -uo pipefail

# every command lives in functions, so bash has parsed the whole file before it runs any of it
# (editing the script during a run cannot derail that run)
main() {
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
device=cuda
quick=0
shapes=base
only=""
results=./gpu-results
data="$root/../shared/data"
[ -d "$data" ] || data="$root/.gpu-bundle/data"
serve=0
pack=0
python="${PYTHON:-$(command -v python3 || command -v python)}"
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --quick) quick=1; shift ;;
    --shapes) shapes="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --out) results="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    --serve) serve=1; shift ;;
    --pack) pack=1; shift ;;
    --python) python="$2"; shift 2 ;;
    -h|--help) sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
source "$root/tools/gpu_site.sh"
use_bundle_wheels "$python" "$root/.gpu-bundle" "$device"
mkdir -p "$results" || exit 2
results="$(cd "$results" && pwd)"
: > "$results/summary.txt"
started=$(date +%s)

if [[ "$device" == cuda* ]]; then
  gpu="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1)"
  [ -n "$gpu" ] || gpu="$("$python" -c 'import torch; print(torch.cuda.get_device_name())' 2>/dev/null)"
  [ -n "$gpu" ] || { echo "gpu.sh: no CUDA device found; use --device cpu for a CPU run" >&2; exit 2; }
else
  gpu="none ($device)"
fi
{
  echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "gpu: $gpu"
  echo "device: $device, quick: $quick, shapes: $([ $quick = 1 ] && echo tiny || echo "$shapes")"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$root" diff --quiet 2>/dev/null || echo ' (modified)')"
  "$python" -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} CPU threads")'
} | tee "$results/env.txt"

failures=0
written=(env.txt)  # what --pack moves into the archive
# run NAME SCRIPT ARGS...: one benchmark; its RESULT JSON to $results/NAME.json, its output to NAME.log
run() {
  local name="$1" script="$2"; shift 2
  local t0 rc line
  [ -z "$only" ] || [[ ",$only," == *",${script%_bench.py},"* ]] || return 0
  t0=$(date +%s)
  written+=("$name.log")
  (cd "$root" && "$python" -m "benchmarks.${script%.py}" "$@") > "$results/$name.log" 2>&1
  rc=$?
  line="$(grep '^RESULT ' "$results/$name.log" | tail -1)"
  if [ $rc -eq 0 ] && [ -n "$line" ]; then
    printf '%s\n' "${line#RESULT }" > "$results/$name.json"
    written+=("$name.json")
    printf '%-28s ok      %4ss  %s\n' "$name" $(( $(date +%s) - t0 )) "$name.json" | tee -a "$results/summary.txt"
  else
    failures=$((failures + 1))
    rm -f "$results/$name.json"
    printf '%-28s FAILED  %4ss  rc %s, see %s.log:\n' "$name" $(( $(date +%s) - t0 )) "$rc" "$name" | tee -a "$results/summary.txt"
    tail -5 "$results/$name.log" | sed 's/^/    /' | tee -a "$results/summary.txt"
  fi
}

have_data=0
[ -f "$data/superglue/boolq/val.jsonl" ] && have_data=1
[ $have_data = 1 ] || echo "note: no benchmark data at $data: realdata_bench skipped" | tee -a "$results/summary.txt"

if [ $quick = 1 ]; then
  # the benchmarks' own --quick sizes on the tiny model; bf16 as on the GPU, fp32 for the exact check
  q=(--quick --device "$device")
  run ensemble_tiny_bf16 ensemble_bench.py "${q[@]}" --dtype bfloat16
  run generate_tiny_bf16 generate_bench.py "${q[@]}" --dtype bfloat16
  run prefix_tiny_bf16 prefix_bench.py "${q[@]}" --dtype bfloat16 --no-reparam
  run train_tiny_bf16 train_bench.py "${q[@]}" --dtype bfloat16
  run variants_tiny_bf16 variants_bench.py "${q[@]}" --dtype bfloat16
  if [ $have_data = 1 ]; then
    # memory subprocesses (each a fresh interpreter) only for one task, to keep the smoke run short
    run realdata_tiny_bf16 realdata_bench.py "${q[@]}" --dtype bfloat16 --data "$data" \
      --boolq-examples 24 --multirc-examples 24 --xsum-examples 4 --max-length 96 --mem-runs 0
    run realdata_tiny_fp32 realdata_bench.py "${q[@]}" --dtype float32 --data "$data" --tasks boolq \
      --boolq-examples 24 --max-length 96 --mem-runs 1
  fi
  [ $serve = 1 ] && run serve_tiny_cpu serve_bench.py --quick --requests 100
else
  IFS=',' read -r -a shape_list <<< "$shapes"
  for shape in "${shape_list[@]}"; do
    m=(--device "$device" --shape "$shape")
    run "ensemble_${shape}_bf16" ensemble_bench.py "${m[@]}" --dtype bfloat16 --repeats 3 \
      --sweep 8192,16384,32768,65536,131072 --sweep-batches 128 --generate-sweep 32,16
    run "generate_${shape}_bf16" generate_bench.py "${m[@]}" --dtype bfloat16 --repeats 3
    run "prefix_${shape}_bf16" prefix_bench.py "${m[@]}" --dtype bfloat16 --repeats 5
    run "train_${shape}_bf16" train_bench.py "${m[@]}" --dtype bfloat16 --repeats 3 --mem-runs 1
    run "variants_${shape}_bf16" variants_bench.py "${m[@]}" --dtype bfloat16 --repeats 5
    if [ $have_data = 1 ]; then
      # one timed round after the checking round (a round of the PEFT loop takes 39 s on t5-base)
      run "realdata_${shape}_bf16" realdata_bench.py "${m[@]}" --dtype bfloat16 --data "$data" --repeats 1
    fi
  done
  # fp32 where a comparison needs it: realdata's predictions must then match exactly (t5-base shape)
  if [ $have_data = 1 ]; then
    run realdata_base_fp32 realdata_bench.py --device "$device" --shape base --dtype float32 --data "$data" --repeats 1 \
      --mem-runs 0 --boolq-examples 300 --multirc-examples 200 --xsum-examples 50
  fi
  [ $serve = 1 ] && run serve_cpu serve_bench.py --requests 400
fi

echo "total $(( $(date +%s) - started )) s; $failures failed; results in $results" | tee -a "$results/summary.txt"
if [ $pack = 1 ]; then
  tar czf "$results/gpu-results.tar.gz" -C "$results" "${written[@]}" && (cd "$results" && rm -f "${written[@]}") \
    && echo "packed into $results/gpu-results.tar.gz" | tee -a "$results/summary.txt"
fi
[ $failures -eq 0 ]
}

main "$@"
exit
