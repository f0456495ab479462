#!/usr/bin/env bash
# `make train-local`: run the pipeline (dvc repro) in the image on this repository, as you.
#
#   tools/docker/train-local.sh IMAGE [engine run flags...]
#
# The repository is mounted at /workspace and the container always runs as the calling uid:gid
# (with podman also --userns=keep-id), so every output belongs to you, never to root. MNIST_MIRROR is passed on: an http(s) URL as is; a local folder
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

# The image runs as root (as Azure ML runs it); here it always runs as you. Rootless podman maps
# --user to a subordinate uid on the host unless the user namespace keeps your id.
user=(--user "$(id -u):$(id -g)")
[[ $(basename -- "${engine[0]}") == podman ]] && user+=(--userns=keep-id)

set -x
"${engine[@]}" run --rm "$@" "${user[@]}" -v "$repo:/workspace" \
    "${extra[@]}" "$image" dvc repro
