# lib.sh: the prologue the tests/test_*.sh scripts share. Sourced first thing
# after a script's opening comment, never run:
#     . "$(dirname "$0")/lib.sh" fail-fast [mpi]   # fail ends the script
#     . "$(dirname "$0")/lib.sh" keep-going [mpi]  # fail records; the script ends with `exit $failed`
# It sets BIN (the binary), B (the build directory), PY (Debian's python3) and
# T (a new temporary directory, removed at exit after test_cleanup, when the
# script defines one, has stopped what the script started); fail and ok; and
# one thread for OpenBLAS and OpenMP unless the caller chose. With `mpi`:
# mpirun may run as root, and leak reports are off (Open MPI's own
# allocations are never freed; the sanitizer build checks the rest).
set -u
case ${1:-} in
  fail-fast) test_fail_fast=1 ;;
  keep-going) test_fail_fast=0 ;;
  *) echo "tests/lib.sh: source it with fail-fast or keep-going, got '${1:-}'" >&2; exit 2 ;;
esac
BIN=${GOOGLENET_BIN:-bin/googlenet}
B=${TEST_BUILD:-build/release}
PY=/usr/bin/python3
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ "${2:-}" = mpi ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0}
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/$(basename "$0" .sh).XXXXXX")
trap 'declare -F test_cleanup >/dev/null && test_cleanup; rm -rf "$T"' EXIT
failed=0
fail() { echo "FAIL: $*"; failed=1; [ "$test_fail_fast" = 0 ] || exit 1; }
ok() { echo "ok: $*"; }
# Damages byte OFFSET of FILE for sure: its bits inverted (writing a fixed value
# leaves the file as it was where the byte already had that value).
flip_byte() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  [ -n "$b" ] || { echo "flip_byte: $1 has no byte $2" >&2; return 1; }
  printf "\\x$(printf %02x $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
