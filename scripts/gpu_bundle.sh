#!/usr/bin/env bash
# Build .gpu-bundle/ (git-ignored): what a call of the GPU machine must carry, since nothing can be
# fetched there. Run it here, before the call.
#
#   bash scripts/gpu_bundle.sh                                  # for benchmarks/gpu.sh: wheels + benchmark data
#   bash scripts/gpu_bundle.sh --corpus /work/nano-corpus      # also for scripts/gpu_pretrain.sh: + corpus + mixture
#
# wheels/             packages the GPU image lacks or has too old (its transformers is 5.17, softprompt
#                     needs >= 5.20; it has no datasets): the versions CI tests, for CPython 3.12 on x86-64.
# data/               (benchmarks) realdata_bench's files from ../shared/data (BoolQ and MultiRC
#                     validation, XSum test).
# corpus/             (--corpus) the nano corpus: train.bin.xz (xz-compressed), validation.bin, manifest.json;
# mixture.tar.xz      and the supervised mixture's rows as softprompt.nano.mixture caches them.
# Without --corpus a run removes an earlier run's corpus and mixture: the bundle is about 20 MiB for the
# benchmarks alone, 44 MiB for both scripts (one call can then run both).
#
# A call carries at most 64 MiB: the working tree plus the carried paths. The script prints what
# would travel and which folders of softprompt/assets the call does not need (set them aside for
# the call, e.g. `mv softprompt/assets/t5-nano-m /tmp/`, and restore them after with
# `git checkout -- softprompt/assets`). Then, e.g.: device run "bash benchmarks/gpu.sh", carry
# [".gpu-bundle"]; gpu.sh installs the wheels and reads the data from the bundle by itself.
set -euo pipefail

main() {
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bundle="$root/.gpu-bundle"
corpus=""
data="$root/../shared/data"
python="${PYTHON:-$(command -v python3 || command -v python)}"
while [ $# -gt 0 ]; do
  case "$1" in
    --corpus) corpus="$2"; shift 2 ;;
    --data) data="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_bundle.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
mkdir -p "$bundle/wheels"

# the versions tested here (CI's newest stage), as wheels for the GPU image's CPython 3.12
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$bundle/wheels" transformers==5.24.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 peft==0.21.2

for file in superglue/boolq/val.jsonl superglue/multirc/val.jsonl xsum/test.jsonl; do
  [ -f "$data/$file" ] || { echo "gpu_bundle.sh: no $data/$file (pass --data DIR)" >&2; exit 2; }
  mkdir -p "$bundle/data/$(dirname "$file")"
  cp "$data/$file" "$bundle/data/$file"
done
if [ -z "$corpus" ]; then
  rm -rf "$bundle/corpus" "$bundle/mixture.tar.xz"
else
  for file in train.bin validation.bin manifest.json; do
    [ -f "$corpus/$file" ] || { echo "gpu_bundle.sh: no $corpus/$file (build it: python -m softprompt.nano.corpus --out DIR)" >&2; exit 2; }
  done
  mkdir -p "$bundle/corpus"
  cp "$corpus/validation.bin" "$corpus/manifest.json" "$bundle/corpus/"
  xz -T2 -6 -c "$corpus/train.bin" > "$bundle/corpus/train.bin.xz"
  local cache
  cache="$(mktemp -d)"
  SOFTPROMPT_CACHE="$cache" "$python" -m softprompt.nano.mixture > /dev/null  # fetches and caches every source
  tar cJf "$bundle/mixture.tar.xz" -C "$cache" mixture
  rm -rf "$cache"
fi

tree=$(cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
carried=$(du -sb "$bundle" | cut -f1)
echo "travels: working tree $((tree / 1048576)) MiB + .gpu-bundle $((carried / 1048576)) MiB (limit 64 MiB)"
for dir in "$root"/softprompt/assets/t5-nano*; do
  echo "  set aside for the call if it does not need it: softprompt/assets/$(basename "$dir") ($(( $(du -sb "$dir" | cut -f1) / 1048576 )) MiB)"
done
}

main "$@"
