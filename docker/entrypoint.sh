#!/bin/sh
# Runs every command of the image. A plain `docker run -v "$PWD:/workspace" <image> dvc repro`
# runs as root (the image has no USER: Azure ML runs images as root), which would leave
# root-owned files in the mounted checkout. So, as root, when the workspace folder belongs to
# someone else, the command runs as that owner instead (setpriv, from util-linux). On Azure ML
# the folder is the image's own, owned by root, and nothing changes.
# MNIST_REPRO_WORKSPACE: the folder to look at (/workspace); MNIST_REPRO_STAY_ROOT=1 keeps root.
set -eu
workspace="${MNIST_REPRO_WORKSPACE:-/workspace}"
if [ "$(id -u)" = 0 ] && [ -z "${MNIST_REPRO_STAY_ROOT:-}" ] && [ -d "$workspace" ]; then
    owner="$(stat -c %u "$workspace")"
    if [ "$owner" != 0 ]; then
        exec setpriv --reuid="$owner" --regid="$(stat -c %g "$workspace")" --clear-groups -- "$@"
    fi
fi
exec "$@"
