#!/usr/bin/env bash
# `make test-docker`: build docker/Dockerfile with a real container engine, run the DVC pipeline
# inside the image on synthetic MNIST served from a local mirror folder, and check the outputs
# (every stage ran, files belong to the calling uid, accuracy above chance, metrics and model
# byte-identical to the same pipeline run in the virtual environment).
#
# Engine: a Docker daemon that answers (`docker info`), else podman (installed with apt-get when
# missing and running as root), configured in a temp folder: runc, cgroupfs, host network, and
# its image store in the cache folder. Override with ENGINE=docker|podman.
# Base: the Dockerfile's default base when it can be pulled; otherwise a stand-in built from a
# debootstrapped Debian bookworm with python3 + venv that trusts the host's extra CA certificates
# (/usr/local/share/ca-certificates). Rootfs and images are cached in $MNIST_REPRO_CACHE
# (default ~/.cache/mnist-repro), so a warm run takes seconds.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${MNIST_REPRO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mnist-repro}
PY=${PYTHON:-$REPO/.venv/bin/python}
REAL_BASE=$(sed -n 's/^ARG BASE=//p' "$REPO/docker/Dockerfile")
TAG=$(cd "$REPO/docker" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum \
    | sha256sum | cut -c1-12)
IMAGE=mnist-repro:$TAG
NAME=mnist-repro-test-$$
# Root runs the container as an arbitrary uid that owns the repo copy and has no passwd entry
# in the image; anyone else runs it as themselves, like `make train-local`.
if [[ $(id -u) == 0 ]]; then RUN_UID=${TEST_DOCKER_UID:-54321}; else RUN_UID=$(id -u); fi
RUN_GID=$RUN_UID; [[ $(id -u) == 0 ]] || RUN_GID=$(id -g)

START=$SECONDS
LAST=$SECONDS
stage() {
    printf '==> [%3ds, total %3ds] %s\n' $((SECONDS - LAST)) $((SECONDS - START)) "$*"
    LAST=$SECONDS
}
die() { echo "test-docker: error: $*" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/mnist-repro-docker.XXXXXX")
STARTED_CONTAINER=
cleanup() {
    local rc=$?
    if [[ -n $STARTED_CONTAINER ]]; then
        "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true
    fi
    if [[ -n ${KEEP:-} ]]; then echo "KEEP: left $WORK"; else rm -rf "$WORK"; fi
    if [[ $rc == 0 ]]; then stage "test-docker passed"; else echo "test-docker FAILED (exit $rc)" >&2; fi
}
trap cleanup EXIT

apt_install() {
    [[ $(id -u) == 0 ]] || die "need $* (apt-get install $*): run as root or install them"
    echo "installing $* with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# --- engine -----------------------------------------------------------------------------------
# Written to the cache folder, so that you can reuse it: export CONTAINERS_CONF=<cache>/containers/
# containers.conf CONTAINERS_STORAGE_CONF=<cache>/containers/storage.conf; make ... DOCKER=podman
podman_config() {
    local conf=$CACHE/containers runroot nofile
    # Run state (locks, mounts) beside the store it belongs to: one runroot per cache folder.
    runroot=${XDG_RUNTIME_DIR:-/run}/mnist-repro-containers-$(printf %s "$CACHE" | sha256sum | cut -c1-8)
    nofile=$(ulimit -Hn)
    mkdir -p "$conf" "$runroot"
    cat >"$WORK/containers.conf" <<EOF
# podman settings that work on a root-run CI machine with cgroup v1 (written by test-docker.sh)
[containers]
netns = "host"
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
tmp_dir = "$runroot/libpod"
EOF
    cat >"$WORK/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$conf/storage"
runroot = "$runroot/storage"
EOF
    mv "$WORK/containers.conf" "$WORK/storage.conf" "$conf/"
    export CONTAINERS_CONF=$conf/containers.conf CONTAINERS_STORAGE_CONF=$conf/storage.conf
    export BUILDAH_ISOLATION=chroot
}

if [[ -z ${ENGINE:-} ]]; then
    if command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then
        ENGINE=docker
    else
        ENGINE=podman
    fi
fi
case $ENGINE in
    docker) timeout 20 docker info >/dev/null 2>&1 || die "ENGINE=docker but no Docker daemon answers" ;;
    podman)
        command -v podman >/dev/null && command -v runc >/dev/null || apt_install podman runc
        podman_config ;;
    *) die "ENGINE must be docker or podman, not '$ENGINE'" ;;
esac
stage "engine: $ENGINE ($("$ENGINE" --version)); cache $CACHE"

image_exists() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }

# --- base image ---------------------------------------------------------------------------------
# The stand-in's name carries a hash of its recipe and of the CA certificates it trusts.
build_standin() {
    local rootfs_tar=$CACHE/debian-bookworm-minbase.tar debian=localhost/mnist-repro-debian:bookworm
    if [[ ! -s $rootfs_tar ]]; then
        command -v debootstrap >/dev/null || apt_install debootstrap
        [[ $(id -u) == 0 ]] || die "debootstrap needs root"
        mkdir -p "$CACHE"
        # debootstrap's default mirror: Debian's package servers, which this machine reaches.
        debootstrap --variant=minbase bookworm "$WORK/rootfs" >"$WORK/debootstrap.log" 2>&1 \
            || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
        tar -C "$WORK/rootfs" -cf "$rootfs_tar.tmp" . && mv "$rootfs_tar.tmp" "$rootfs_tar"
        rm -rf "$WORK/rootfs"
        stage "debootstrap: Debian bookworm minbase rootfs -> $rootfs_tar ($(du -h "$rootfs_tar" | cut -f1))"
    fi
    if ! image_exists "$debian"; then
        "$ENGINE" import "$rootfs_tar" "$debian" >/dev/null 2>&1
        stage "import: $debian"
    fi
    local ctx=$WORK/standin
    mkdir -p "$ctx/certs"
    cp /usr/local/share/ca-certificates/*.crt "$ctx/certs/" 2>/dev/null || true
    cat >"$ctx/Dockerfile" <<'EOF'
ARG DEBIAN
FROM ${DEBIAN}
# Stand-in for the python:3.11-slim base: Debian's python3 in a venv that is first on PATH.
# It trusts the host's extra CA certificates (HTTPS here passes a TLS-intercepting proxy).
COPY certs/ /usr/local/share/ca-certificates/
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* \
    && update-ca-certificates \
    && python3 -m venv /opt/python
ENV PATH=/opt/python/bin:$PATH \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
EOF
    local hash
    hash=$(cd "$ctx" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
    BASE=localhost/mnist-repro-standin:$hash
    if ! image_exists "$BASE"; then
        "$ENGINE" build --network host --build-arg "DEBIAN=$debian" -t "$BASE" "$ctx" \
            >"$WORK/standin.log" 2>&1 || { tail -30 "$WORK/standin.log" >&2; die "stand-in build failed"; }
        stage "stand-in base built: $BASE"
    fi
}

if [[ -n ${BASE:-} ]]; then
    :
elif image_exists "$REAL_BASE" || timeout 60 "$ENGINE" pull -q "$REAL_BASE" >/dev/null 2>&1; then
    BASE=$REAL_BASE
else
    echo "cannot pull $REAL_BASE (no registry reachable): using a local stand-in base"
    build_standin
fi
stage "base: $BASE"

# --- project image ------------------------------------------------------------------------------
if image_exists "$IMAGE" && [[ -z ${REBUILD:-} ]] \
    && [[ $("$ENGINE" image inspect -f '{{index .Config.Labels "mnist-repro.base"}}' "$IMAGE") == "$BASE" ]]; then
    stage "image: $IMAGE (cached)"
else
    "$ENGINE" build --network host --build-arg "BASE=$BASE" --label "mnist-repro.base=$BASE" \
        -t "$IMAGE" "$REPO/docker" >"$WORK/build.log" 2>&1 \
        || { tail -40 "$WORK/build.log" >&2; die "building docker/Dockerfile failed"; }
    stage "image: built $IMAGE"
fi
if [[ $ENGINE == podman ]]; then
    # The podman store is this script's own cache: drop images of older docker/ contents.
    "$ENGINE" images --format '{{.Repository}}:{{.Tag}}' \
        | grep -E '^localhost/mnist-repro(-standin)?:' \
        | grep -vxF -e "localhost/$IMAGE" -e "$BASE" \
        | xargs -r "$ENGINE" rmi >/dev/null 2>&1 || true
    "$ENGINE" image prune -f >/dev/null 2>&1 || true
fi
SIZE=$("$ENGINE" image inspect -f '{{.Size}}' "$IMAGE")
echo "image size: $((SIZE / 1000000)) MB ($IMAGE, base $BASE)"

# --- data and repo copies -----------------------------------------------------------------------
"$PY" "$REPO/tools/docker/prepare.py" "$WORK/repo" "$WORK/mirror"
"$PY" "$REPO/tools/docker/prepare.py" "$WORK/venv-repo" "$WORK/mirror" >/dev/null
chmod -R a+rX "$WORK/mirror"   # the synthetic files are written 0600 (temp file + rename)
[[ $(id -u) == 0 ]] && chown -R "$RUN_UID:$RUN_GID" "$WORK/repo"
stage "synthetic MNIST mirror and repo copies ready"

# --- the pipeline inside the image ------------------------------------------------------------
# podman adds a passwd entry for an unknown --user uid by default; Docker does not: run as Docker.
RUN_FLAGS=(--rm --name "$NAME" --network host)
[[ $ENGINE == podman ]] && RUN_FLAGS+=(--passwd=false)
STARTED_CONTAINER=1
"$ENGINE" run "${RUN_FLAGS[@]}" --user "$RUN_UID:$RUN_GID" \
    -v "$WORK/repo:/workspace" -v "$WORK/mirror:/mnist-mirror:ro" -e MNIST_MIRROR=/mnist-mirror \
    "$IMAGE" dvc repro 2>&1 | sed 's/^/    | /'
stage "dvc repro inside the image as uid $RUN_UID:$RUN_GID"

# The same pipeline in the virtual environment, for the byte-for-byte comparison.
(cd "$WORK/venv-repo" && PATH=$(dirname "$PY"):$PATH DVC_NO_ANALYTICS=1 MNIST_MIRROR=$WORK/mirror \
    dvc repro >"$WORK/venv-repro.log" 2>&1) || { tail -40 "$WORK/venv-repro.log" >&2; die "dvc repro in the venv failed"; }
stage "dvc repro in the virtual environment (for comparison)"

"$PY" "$REPO/tools/docker/check_outputs.py" "$WORK/repo" "$RUN_UID" --same-as "$WORK/venv-repo"
# The image runs as root by default (as Azure ML runs it): run as a uid, it must leave nothing
# owned by root in the checkout.
ROOT_OWNED=$(find "$WORK/repo" -xdev -uid 0 -print | head -5)
[[ -z $ROOT_OWNED ]] || die "root-owned files in the checkout after the run: $ROOT_OWNED"
stage "no root-owned file in the checkout"

# The Azure ML job's command in the image: code folder read-only, the raw files as an input
# mount, outputs elsewhere, run metrics to MLflow (a local file store stands in for the job's).
mkdir -p "$WORK/job"
[[ $(id -u) == 0 ]] && chown "$RUN_UID:$RUN_GID" "$WORK/job"
"$ENGINE" run "${RUN_FLAGS[@]}" --user "$RUN_UID:$RUN_GID" -v "$WORK/repo:/workspace:ro" \
    -v "$WORK/mirror:/inputs/data:ro" -v "$WORK/job:/outputs" \
    -e MLFLOW_TRACKING_URI=file:///outputs/mlruns -e MLFLOW_ALLOW_FILE_STORE=true \
    "$IMAGE" python -m mnist_repro train --data /inputs/data --out /outputs/model 2>&1 | sed 's/^/    | /'
cmp -s "$WORK/job/model/model.skops" "$WORK/repo/models/model.skops" \
    || die "the job command's model.skops differs from the one dvc repro made"
for metric in accuracy "regularization rate"; do
    logged=$(cat "$WORK/job/mlruns/"*/*/metrics/"$metric" 2>/dev/null) \
        || die "no '$metric' run metric in MLflow ($WORK/job/mlruns)"
    echo "MLflow run metric '$metric': $(cut -d' ' -f2 <<<"$logged")"
done
stage "Azure ML job command in the image (read-only code, MLflow): same model.skops"

# A plain `docker run` (root, no --user) on the checkout: the entrypoint runs the command as the
# checkout's owner, so what it writes is not root's.
"$ENGINE" run "${RUN_FLAGS[@]}" -v "$WORK/repo:/workspace" "$IMAGE" \
    sh -c 'touch .made-by-a-root-run && dvc status >/dev/null' 2>&1 | sed 's/^/    | /'
MADE_BY=$(stat -c %u "$WORK/repo/.made-by-a-root-run") || die "the root run wrote nothing"
rm -f "$WORK/repo/.made-by-a-root-run"
[[ $MADE_BY == "$(stat -c %u "$WORK/repo")" ]] || die "a root run wrote a file owned by uid $MADE_BY"
ROOT_OWNED=$(find "$WORK/repo" -xdev -uid 0 -print | head -5)
[[ -z $ROOT_OWNED ]] || die "root-owned files in the checkout after a root run: $ROOT_OWNED"
stage "a root run (no --user) writes as the checkout's owner"

# DVC and git on a repository owned by another uid (root here, or 0 vs the caller's uid).
STATUS=$("$ENGINE" run "${RUN_FLAGS[@]}" --user 0:0 -e MNIST_REPRO_STAY_ROOT=1 -v "$WORK/repo:/workspace" \
    "$IMAGE" sh -c 'git rev-parse --short HEAD && dvc status' 2>&1) || die "dvc status as another uid failed: $STATUS"
grep -q "up to date" <<<"$STATUS" || die "dvc status after the run is not clean: $STATUS"
stage "dvc status as another uid: up to date"
