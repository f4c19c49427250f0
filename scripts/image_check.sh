#!/usr/bin/env bash
# Build the production image from the Dockerfile without a Docker engine and run it (make image-check):
#   1. a Debian bookworm base (Python 3.11, like python:3.11-slim) made with mmdebstrap, since base images
#      cannot be pulled here; the registry build keeps FROM python:3.11-slim (ARG BASE_IMAGE);
#   2. `buildah bud --storage-driver vfs --isolation chroot` builds both stages of the Dockerfile on it, with the
#      commit as GIT_COMMIT; torch's CPU wheel comes from PIP_FIND_LINKS (/opt/wheels) when that folder exists;
#   3. inside the image: the user is non-root (uid 10001), a day (validate, daily, report) on the synthetic
#      universe succeeds on the kernels the warm-up compiled (it compiles none), so does a daily run on one symbol
#      (its one-column panels use the same kernels), and each archived manifest records the commit; the image
#      size is printed.
# Needs root and apt-get (installs buildah and mmdebstrap when missing). Storage under $IMAGE_CHECK_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${IMAGE_CHECK_DIR:-/var/tmp/strategy-engine-image}
TAG=localhost/strategy-engine:check
BASE=localhost/strategy-engine-base:bookworm
COMMIT=$(git rev-parse HEAD)
mkdir -p "$DIR"
say() { printf '%s image-check: %s\n' "$(date -u +%H:%M:%S)" "$*"; }
fail() { echo "image-check: FAILED: $*" >&2; exit 1; }

missing=""; for t in buildah mmdebstrap; do command -v "$t" >/dev/null || missing="$missing $t"; done
if [ -n "$missing" ]; then
  [ "$(id -u)" = 0 ] || fail "needs$missing (apt-get install$missing) and root"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi
B=(buildah --root "$DIR/storage" --runroot "$DIR/run" --storage-driver vfs)

# 1. The base: Debian bookworm minbase + python3, pip and venv; the machine's CA bundle so pip reaches the
#    package index through this machine's TLS proxy; pip allowed to install into the system Python (PEP 668).
if ! "${B[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then
  say "mmdebstrap bookworm base"
  mmdebstrap --quiet --variant=minbase --include=python3,python3-pip,python3-venv,python-is-python3,ca-certificates \
    --aptopt='Acquire::Check-Valid-Until "false"' bookworm "$DIR/base.tar" http://deb.debian.org/debian
  ctr=$("${B[@]}" from scratch)
  "${B[@]}" add "$ctr" "$DIR/base.tar" /
  "${B[@]}" copy "$ctr" /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/host-ca-bundle.crt
  "${B[@]}" config --env PIP_BREAK_SYSTEM_PACKAGES=1 --env PIP_CERT=/etc/ssl/certs/host-ca-bundle.crt \
    --env PIP_DISABLE_PIP_VERSION_CHECK=1 --env PIP_DEFAULT_TIMEOUT=180 \
    --env PIP_FIND_LINKS=/opt/wheels --cmd /bin/bash "$ctr"
  "${B[@]}" commit --quiet "$ctr" "$BASE" >/dev/null
  "${B[@]}" rm "$ctr" >/dev/null
  rm -f "$DIR/base.tar"
fi

# 2. The image, from the repository's Dockerfile.
say "buildah bud (commit $COMMIT)"
wheels=(); [ -d /opt/wheels ] && wheels=(--volume /opt/wheels:/opt/wheels:ro)
t0=$(date +%s)
"${B[@]}" bud --isolation chroot --layers=false "${wheels[@]}" \
  --build-arg BASE_IMAGE="$BASE" --build-arg TORCH_INDEX_URL=https://pypi.org/simple \
  --build-arg GIT_COMMIT="$COMMIT" -t "$TAG" -f Dockerfile . > "$DIR/build.log" 2>&1 \
  || { tail -40 "$DIR/build.log"; fail "buildah bud (log: $DIR/build.log)"; }
say "built in $(( $(date +%s) - t0 )) s"

# 3. Run it.
ctr=$("${B[@]}" from "$TAG")
# On exit: the container goes, and so do images no tag names any more (each build leaves the previous one behind).
trap '"${B[@]}" rm "$ctr" >/dev/null 2>&1; "${B[@]}" rmi --prune >/dev/null 2>&1 || true' EXIT
run() { "${B[@]}" run --isolation chroot "$ctr" -- "$@"; }
uid=$(run id -u); user=$(run id -un)
[ "$uid" = 10001 ] && [ "$user" = engine ] || fail "the image runs as uid $uid ($user), expected 10001 (engine)"
say "runs as $user (uid $uid)"
# The Dockerfile's warm-up compiled the scheduled stages' numba kernels into $NUMBA_CACHE_DIR: the day below must
# find them all (a kernel it compiles is one more compiled file there).
compiled() { run sh -c 'find "$NUMBA_CACHE_DIR" -name "*.nbc" | wc -l'; }
warmed=$(compiled) || fail "cannot read the image's numba cache"
[ "$warmed" -ge 5 ] || fail "the warm-up left $warmed compiled kernel(s) in the numba cache, expected the daily job's"
t0=$(date +%s)
out=$(run strategy-engine run day --as-of latest --data synthetic --archive /tmp/check \
        --warehouse duckdb:////tmp/check/wh.duckdb --no-alerts 2>&1) || { echo "$out"; fail "the day failed"; }
say "a day in the image: $(echo "$out" | grep -c "^succeeded:") stage(s) succeeded [$(( $(date +%s) - t0 )) s wall]"
[ "$(echo "$out" | grep -c "^succeeded:")" = 3 ] || { echo "$out"; fail "validate, daily and report did not all succeed"; }
after=$(compiled)
[ "$after" = "$warmed" ] || fail "the image's day compiled $((after - warmed)) numba kernel(s) the warm-up did not"
say "numba cache: $warmed compiled kernels from the warm-up, none compiled by the day"
# One symbol: its panels are a single column, which numba alone would type C and compile again (49 s; issue 14).
t0=$(date +%s)
out=$(run strategy-engine run daily --as-of latest --data synthetic --symbols SYN000 --archive /tmp/check-one \
        --warehouse duckdb:////tmp/check-one/wh.duckdb --no-alerts 2>&1) \
  || { echo "$out"; fail "the daily run on one symbol failed"; }
after=$(compiled)
[ "$after" = "$warmed" ] || fail "a daily run on one symbol compiled $((after - warmed)) kernel(s) the warm-up did not"
say "a daily run on one symbol in the image: compiled nothing [$(( $(date +%s) - t0 )) s wall]"
recorded=$(run python -c 'import glob, json
ms = glob.glob("/tmp/check/**/manifest.json", recursive=True)
assert len(ms) == 3, ms
print(" ".join(sorted({json.load(open(m))["git_commit"] for m in ms})))') \
  || fail "not one manifest.json per stage archived by the day"
[ "$recorded" = "$COMMIT" ] || fail "the manifests record commit(s) '$recorded', expected $COMMIT"
say "the day's three manifests record git commit $recorded"
env_commit=$(run printenv STRATEGY_ENGINE_GIT_COMMIT) || true
[ "$env_commit" = "$COMMIT" ] || fail "STRATEGY_ENGINE_GIT_COMMIT in the image is '$env_commit', expected $COMMIT"
layer=$(run python -c 'import numba, numpy as np
@numba.njit(parallel=True)
def total(x):
    s = 0.0
    for i in numba.prange(x.shape[0]): s += x[i]
    return s
total(np.ones(1000)); print(numba.threading_layer())') || fail "numba's parallel kernels do not run in the image"
[ "$layer" != workqueue ] || fail "numba's threading layer in the image is workqueue (not thread-safe): libgomp1?"
say "numba's threading layer in the image: $layer"
size=$("${B[@]}" images --format '{{.Size}}' "$TAG" | head -1)
say "image $TAG: $size"
echo "image-check: ok (non-root uid $uid, a day succeeded compiling nothing, commit recorded, size $size)"
