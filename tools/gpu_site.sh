# Sourced by benchmarks/gpu.sh and tools/gpu_pretrain.sh, or by a shell on the GPU host (not run on its own).
# use_bundle_wheels PYTHON BUNDLE DEVICE: on CUDA, install the wheels of BUNDLE/wheels (tools/gpu_bundle.sh)
# into a temporary folder and put it first on PYTHONPATH, so that the GPU image's older packages are shadowed.
use_bundle_wheels() {
  local python="$1" bundle="$2" device="$3" site="${TMPDIR:-/tmp}/softprompt-site"
  [[ "$device" == cuda* ]] && compgen -G "$bundle/wheels/*.whl" > /dev/null || return 0
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$bundle"/wheels/*.whl || { echo "cannot install $bundle/wheels" >&2; exit 2; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
}

# unpack_bundle_corpus BUNDLE: print the folder of BUNDLE/corpus unpacked for softprompt.nano (its train.bin
# decompressed outside the bundle, which stays as it travels)
unpack_bundle_corpus() {
  local bundle="$1" corpus="${TMPDIR:-/tmp}/softprompt-corpus"
  mkdir -p "$corpus" && cp "$bundle/corpus/validation.bin" "$bundle/corpus/manifest.json" "$corpus/" \
    && xz -d -T0 -c "$bundle/corpus/train.bin.xz" > "$corpus/train.bin" || { echo "cannot unpack $bundle/corpus" >&2; exit 2; }
  echo "$corpus"
}
