# Sourced by benchmarks/gpu.sh and scripts/gpu_pretrain.sh (not run on its own).
# use_bundle_wheels PYTHON BUNDLE DEVICE: on CUDA, install the wheels of BUNDLE/wheels (scripts/gpu_bundle.sh)
# into a temporary folder and put it first on PYTHONPATH, so that the GPU image's older packages are shadowed.
use_bundle_wheels() {
  local python="$1" bundle="$2" device="$3" site="${TMPDIR:-/tmp}/softprompt-site"
  [[ "$device" == cuda* ]] && compgen -G "$bundle/wheels/*.whl" > /dev/null || return 0
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
    "$bundle"/wheels/*.whl || { echo "cannot install $bundle/wheels" >&2; exit 2; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
}
