#!/usr/bin/env bash
# Build .gpu-bundle/ (git-ignored) for installing and benchmarking on an air-gapped GPU host: run it on
# a machine with network access, then copy the repository with .gpu-bundle/ to the GPU host, where
# benchmarks/gpu.sh and tools/gpu_pretrain.sh install and read the bundle by themselves.
#
#   bash tools/gpu_bundle.sh                                  # for benchmarks/gpu.sh: wheels + benchmark data
#   bash tools/gpu_bundle.sh --corpus nano-corpus             # also for tools/gpu_pretrain.sh: + corpus + mixture
#
# wheels/             packages a GPU image often lacks or has too old (softprompt needs transformers
#                     >= 5.20; datasets; peft): the versions CI tests, for CPython 3.12 on x86-64.
# data/               (benchmarks) realdata_bench's files from ../shared/data, or --data DIR (BoolQ and
#                     MultiRC validation, XSum test).
# corpus/             (--corpus) the nano corpus: train.bin.xz (xz-compressed), validation.bin, manifest.json;
# mixture.tar.xz      and the supervised mixture's rows as softprompt.nano.mixture caches them.
# Without --corpus a run removes an earlier run's corpus and mixture: the bundle is about 20 MiB for the
# benchmarks alone, 44 MiB for both scripts. At the end the script prints the bundle's size and that of
# the embedded models (softprompt/assets), which the GPU scripts read only for gpu.sh --serve.
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
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
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
echo "to copy: the repository $((tree / 1048576)) MiB + .gpu-bundle $((carried / 1048576)) MiB"
for dir in "$root"/softprompt/assets/t5-nano*; do
  echo "  read only by gpu.sh --serve: softprompt/assets/$(basename "$dir") ($(( $(du -sb "$dir" | cut -f1) / 1048576 )) MiB)"
done
}

main "$@"
