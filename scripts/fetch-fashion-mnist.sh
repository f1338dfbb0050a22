#!/bin/sh
# Fetches Fashion-MNIST (Debian package dataset-fashion-mnist, ~31 MB) into .cache/fashion-mnist,
# with no root: apt-get download + dpkg-deb -x. src/data/images.ts looks there, and in
# /usr/share/datasets/fashion-mnist when the package is installed system-wide.
set -eu
cd "$(dirname "$0")/.."
dest=.cache/fashion-mnist
data=$dest/usr/share/datasets/fashion-mnist
mkdir -p "$dest"

if [ ! -d "$data" ]; then
  cd "$dest"
  if ! ls dataset-fashion-mnist_*.deb >/dev/null 2>&1; then
    if ! apt-get download dataset-fashion-mnist; then
      # A fresh machine may have no package lists yet; only root can refresh them.
      if [ "$(id -u)" = 0 ]; then
        { apt-get update && apt-get download dataset-fashion-mnist; } || exit 1
      else
        echo "apt-get download failed; as root, run 'apt-get update' and try again" >&2
        exit 1
      fi
    fi
  fi
  # Unpacked beside, then moved into place: an interrupted run never leaves half the data looking whole.
  rm -rf .unpack && dpkg-deb -x dataset-fashion-mnist_*.deb .unpack
  rm -rf usr && mv .unpack/usr usr && rm -rf .unpack
  cd - >/dev/null
fi

echo "Fashion-MNIST in $(pwd)/$data:"
ls -l "$data"
