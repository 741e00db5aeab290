#!/usr/bin/env bash
# Builds the Loupe image from ./Dockerfile with Debian's buildah (as `docker build` or `podman build` would),
# then checks what the manifests rely on: the entrypoint, the non-root user, `loupe` and `px` running as that
# user, and the private data directory.
#
# Where the Dockerfile's base images cannot be pulled (no registry reachable, as in this project's sandbox,
# where docker.io is closed), it first makes stand-ins under the same names from Debian packages:
#   docker.io/library/debian:bookworm-slim      debootstrap --variant=minbase bookworm
#   docker.io/library/rust:<ver>-slim-bookworm  the same, plus gcc and this machine's Rust toolchain
# so the Dockerfile itself is built unchanged, build stage included (a cold release build: about 30 minutes
# on 2 cores; crates come from crates.io inside the build).
#
# Usage (as root): bash scripts/build-image.sh [tag]          (default loupe:dev)
#   LOUPE_IMAGE_STANDINS=1   make the stand-ins even where pulling works
#   LOUPE_IMAGE_WORK=DIR     where the stand-ins' root filesystems are made (default /var/tmp/loupe-image)
# Needs: buildah, debootstrap (installed here from Debian when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-loupe:dev}
work=${LOUPE_IMAGE_WORK:-/var/tmp/loupe-image}
rust_version=$(sed -n 's/^ARG RUST_VERSION=//p' Dockerfile)
debian_image=docker.io/library/debian:bookworm-slim
rust_image=docker.io/library/rust:${rust_version}-slim-bookworm

[[ $(id -u) == 0 ]] || { echo "build-image.sh: run as root (buildah with chroot isolation)" >&2; exit 2; }
for tool in buildah debootstrap; do
  command -v $tool >/dev/null || { apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah debootstrap >/dev/null; }
done
export STORAGE_DRIVER=${STORAGE_DRIVER:-vfs}
export BUILDAH_ISOLATION=chroot
step() { echo "== $*"; }

have() { buildah inspect --type image "$1" >/dev/null 2>&1; }
pulls() { timeout 60 buildah pull --quiet "$1" >/dev/null 2>&1; }

if [[ ${LOUPE_IMAGE_STANDINS:-0} == 1 ]] || ! { have "$debian_image" || pulls "$debian_image"; } || ! { have "$rust_image" || pulls "$rust_image"; }; then
  step "base images not reachable: making stand-ins from Debian packages in $work"
  mkdir -p "$work"
  if [[ ! -x $work/debian/bin/sh ]]; then
    rm -rf "$work/debian"
    debootstrap --variant=minbase bookworm "$work/debian" http://deb.debian.org/debian >/dev/null
    chroot "$work/debian" apt-get clean
  fi
  commit_rootfs() { # rootfs image [extra buildah config args...]
    local c
    c=$(buildah from scratch)
    buildah copy --quiet "$c" "$1" / >/dev/null
    buildah config --env PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --cmd /bin/bash "${@:3}" "$c"
    buildah commit --quiet --rm "$c" "$2" >/dev/null
  }
  commit_rootfs "$work/debian" "$debian_image"
  if [[ ! -x $work/rust/usr/local/rust/bin/cargo ]]; then
    rm -rf "$work/rust"
    cp -a "$work/debian" "$work/rust"
    chroot "$work/rust" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev ca-certificates >/dev/null && apt-get clean'
    # This machine's own CA certificates too: where the way to crates.io is an inspecting proxy, its CA is one.
    cp /usr/local/share/ca-certificates/*.crt "$work/rust/usr/local/share/ca-certificates/" 2>/dev/null || true
    chroot "$work/rust" update-ca-certificates >/dev/null
    toolchain=$(rustc --print sysroot)
    mkdir -p "$work/rust/usr/local/rust" "$work/rust/usr/local/cargo/bin"
    cp -a "$toolchain/bin" "$toolchain/lib" "$work/rust/usr/local/rust/"
    rm -rf "$work/rust/usr/local/rust/lib/rustlib/"*/share
    for b in "$work/rust/usr/local/rust/bin/"*; do ln -sf "/usr/local/rust/bin/$(basename "$b")" "$work/rust/usr/local/cargo/bin/"; done
  fi
  commit_rootfs "$work/rust" "$rust_image" --env CARGO_HOME=/usr/local/cargo
fi

step "building $tag from ./Dockerfile"
start=$(date +%s)
buildah bud --pull-never --layers -t "$tag" . 
echo "built in $(( $(date +%s) - start )) s"

step "checking $tag"
fail() { echo "FAIL: $*" >&2; exit 1; }
user=$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$tag")
entry=$(buildah inspect --type image --format '{{.OCIv1.Config.Entrypoint}}' "$tag")
[[ $user == 65532:65532 ]] || fail "user is '$user', not 65532:65532"
[[ $entry == '[/usr/local/bin/loupe]' ]] || fail "entrypoint is $entry"
c=$(buildah from "$tag")
trap 'buildah umount "$c" >/dev/null 2>&1; buildah rm "$c" >/dev/null 2>&1' EXIT
mnt=$(buildah mount "$c")
chroot --userspec=65532:65532 "$mnt" /usr/local/bin/loupe --version || fail "loupe does not run as 65532"
chroot --userspec=65532:65532 "$mnt" /usr/local/bin/px --version || fail "px does not run as 65532"
[[ $(stat -c '%u:%g %a' "$mnt/var/lib/loupe") == '65532:65532 700' ]] || fail "/var/lib/loupe is $(stat -c '%u:%g %a' "$mnt/var/lib/loupe")"
[[ -s $mnt/etc/ssl/certs/ca-certificates.crt ]] || fail "no CA certificates"
size=$(du -sm "$mnt" | cut -f1)
echo "image $tag: user 65532:65532, entrypoint /usr/local/bin/loupe, loupe and px run as that user, ${size} MiB unpacked"
