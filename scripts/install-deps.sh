#!/usr/bin/env bash
# Installs the Debian packages this project needs, and only the missing ones.
# Idempotent and silent when everything is present. Usage:
#   scripts/install-deps.sh          build + run (MPI, BLAS, image codecs, zstd)
#   scripts/install-deps.sh --test   also what the tests need (cmocka, PyTorch for parity)
#   scripts/install-deps.sh --demo   also the demo's data and plotting (Fashion-MNIST, gnuplot)
#   scripts/install-deps.sh --cluster  also the cluster tests and scaling study (Slurm, munge,
#                                      iproute2 for namespaces and tc, gnuplot)
#   scripts/install-deps.sh --fuzz     also make fuzz (clang and its libFuzzer runtime)
#   scripts/install-deps.sh --valgrind also make valgrind
set -euo pipefail

pkgs=(build-essential pkg-config make libopenmpi-dev openmpi-bin libopenblas-dev
      libpng-dev libjpeg62-turbo-dev libzstd-dev)
for arg in "$@"; do
  case "$arg" in
    --test) pkgs+=(libcmocka-dev python3-torch python3-torchvision python3-numpy python3-pil) ;;
    --demo) pkgs+=(dataset-fashion-mnist gnuplot-nox python3) ;;
    --cluster) pkgs+=(slurm-wlm munge iproute2 util-linux gnuplot-nox python3) ;;
    --fuzz) pkgs+=(clang-14 libclang-rt-14-dev) ;;
    --valgrind) pkgs+=(valgrind) ;;
    *) echo "install-deps.sh: unknown option '$arg' (use --test, --demo, --cluster, --fuzz or --valgrind)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

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
echo "install-deps: done"
