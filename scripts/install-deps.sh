#!/usr/bin/env bash
# Installs the Debian packages this project needs, and only the missing ones.
# Idempotent and silent when everything is present. Usage:
#   scripts/install-deps.sh          build + run (MPI, BLAS, image codecs, zstd)
#   scripts/install-deps.sh --test   also what the tests need (cmocka, PyTorch for parity, groff,
#                                    python3-onnx and node; ONNX Runtime from npm, see below)
#   scripts/install-deps.sh --demo   also the demo's data and plotting (Fashion-MNIST, gnuplot)
#   scripts/install-deps.sh --cluster  also the cluster tests and scaling study (Slurm, munge,
#                                      iproute2 for namespaces and tc, gnuplot)
#   scripts/install-deps.sh --fuzz     also make fuzz (clang and its libFuzzer runtime)
#   scripts/install-deps.sh --valgrind also make valgrind
set -euo pipefail

want_ort=0
pkgs=(build-essential pkg-config make libopenmpi-dev openmpi-bin libopenblas-dev
      libpng-dev libjpeg62-turbo-dev libzstd-dev)
for arg in "$@"; do
  case "$arg" in
    --test) pkgs+=(libcmocka-dev python3-torch python3-torchvision python3-numpy python3-pil python3-onnx nodejs groff-base)
            want_ort=1 ;;
    --demo) pkgs+=(dataset-fashion-mnist gnuplot-nox python3) ;;
    --cluster) pkgs+=(slurm-wlm munge iproute2 util-linux gnuplot-nox python3) ;;
    --fuzz) pkgs+=(clang-14 libclang-rt-14-dev) ;;
    --valgrind) pkgs+=(valgrind) ;;
    *) echo "install-deps.sh: unknown option '$arg' (use --test, --demo, --cluster, --fuzz or --valgrind)" >&2; exit 2 ;;
  esac
done

# Debian's npm; a nodejs from elsewhere (NodeSource) brings its own
[ "$want_ort" = 1 ] && ! command -v npm >/dev/null && pkgs+=(npm)

# ONNX Runtime for tests/test_onnx.sh: the npm package onnxruntime-node ships
# the CPU runtime inside it, so --ignore-scripts (no download at install time)
# is enough. Into a cache folder, never the source tree; pinned.
ort_install() {
  local dir=${GOOGLENET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/googlenet}/onnxruntime
  [ -f "$dir/node_modules/onnxruntime-node/package.json" ] && return 0
  echo "install-deps: installing onnxruntime-node@$ORT_VERSION into $dir"
  mkdir -p "$dir"
  (cd "$dir" && npm install --ignore-scripts --no-audit --no-fund --silent "onnxruntime-node@$ORT_VERSION") \
    >/tmp/install-deps-npm.log 2>&1 || {
    echo "install-deps: npm install onnxruntime-node failed; see /tmp/install-deps-npm.log" >&2
    tail -5 /tmp/install-deps-npm.log >&2; exit 1; }
}
ORT_VERSION=1.30.0

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  [ "$want_ort" = 1 ] && ort_install
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# The package lists may be absent on a fresh machine; refresh them once when an install fails.
if ! $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/install-deps.log 2>&1; then
  $sudo apt-get update -qq >>/tmp/install-deps.log 2>&1
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/install-deps.log 2>&1 || {
    echo "install-deps: apt-get failed; see /tmp/install-deps.log" >&2; tail -5 /tmp/install-deps.log >&2; exit 1; }
fi
[ "$want_ort" = 1 ] && ort_install
echo "install-deps: done"
