#!/usr/bin/env bash
# A Debian 12 base image made from Debian's own packages, for machines that reach Debian's
# mirror but no container registry: mmdebstrap builds a minimal root file system (apt, dpkg,
# bash, coreutils; no documentation or translations but the copyright files), and podman
# imports it as an image. The Dockerfile builds on it with BASE_IMAGE=<this image's name>.
#
#   deploy/base-image.sh [IMAGE]      (default localhost/debian-base:bookworm)
#
# Needs mmdebstrap and podman (Debian packages) and root. About 86 MB, 15-60 s.
set -euo pipefail
image="${1:-localhost/debian-base:bookworm}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# apt inside the image as in Docker's Debian images: no recommended packages, no cached
# .deb files or package lists left in a layer.
# Merged /usr by symlinks, as debootstrap (and so Docker's Debian images) make it: the
# usrmerge package would bring Perl along, 40 MB.
mmdebstrap --variant=minbase --quiet \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --aptopt='APT::Install-Recommends "false"' \
  --aptopt='APT::Install-Suggests "false"' \
  --aptopt='DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; }' \
  --aptopt='Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
  bookworm "$work/rootfs.tar"

podman import --quiet \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV LANG=C.UTF-8' \
  "$work/rootfs.tar" "$image" >/dev/null
echo "$image"
