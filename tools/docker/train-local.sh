#!/usr/bin/env bash
# `make train-local`: run the pipeline (dvc repro) in the image on this repository, as you.
#
#   tools/docker/train-local.sh IMAGE [engine run flags...]
#
# The repository is mounted at /workspace and the container runs as the calling uid:gid, so
# every output belongs to you. MNIST_MIRROR is passed on: an http(s) URL as is; a local folder
# (or file:// URL) is mounted read-only at /mnist-mirror and the variable rewritten to that path.
# DOCKER names the engine's command (default docker; podman works too).
set -euo pipefail

[[ $# -ge 1 ]] || { echo "usage: $0 IMAGE [engine run flags...]" >&2; exit 2; }
image=$1
shift
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
read -ra engine <<<"${DOCKER:-docker}"

mirror=${MNIST_MIRROR:-}
extra=()
case $mirror in
    "") ;;
    http://* | https://*) extra=(-e "MNIST_MIRROR=$mirror") ;;
    *)
        dir=$(realpath -e -- "${mirror#file://}" 2>/dev/null) && [[ -d $dir ]] \
            || { echo "error: MNIST_MIRROR=$mirror: not a URL or an existing folder" >&2; exit 1; }
        extra=(-v "$dir:/mnist-mirror:ro" -e MNIST_MIRROR=/mnist-mirror) ;;
esac

set -x
"${engine[@]}" run --rm "$@" --user "$(id -u):$(id -g)" -v "$repo:/workspace" \
    "${extra[@]}" "$image" dvc repro
