#!/bin/sh
# Fetches ONNX's operator tests (Debian package libonnx-testdata) into .cache/onnx-testdata, with
# no root: apt-get download + dpkg-deb -x. src/onnx/testdata.ts looks there (and in /usr/share).
set -eu
cd "$(dirname "$0")/.."
dest=.cache/onnx-testdata
data=$dest/usr/share/libonnx-testdata/data
mkdir -p "$dest"

if [ ! -d "$data/node" ]; then
  cd "$dest"
  if ! ls libonnx-testdata_*.deb >/dev/null 2>&1; then
    if ! apt-get download libonnx-testdata; then
      # A fresh machine may have no package lists yet; only root can refresh them.
      if [ "$(id -u)" = 0 ]; then
        { apt-get update && apt-get download libonnx-testdata; } || exit 1
      else
        echo "apt-get download failed; as root, run 'apt-get update' and try again" >&2
        exit 1
      fi
    fi
  fi
  # Unpacked beside, then moved into place: an interrupted run never leaves half the data looking whole.
  rm -rf .unpack && dpkg-deb -x libonnx-testdata_*.deb .unpack
  rm -rf usr && mv .unpack/usr usr && rm -rf .unpack
  cd - >/dev/null
fi

echo "ONNX test data in $(pwd)/$data:"
for pattern in 'test_lstm_*' 'test_gru_*' 'test_gemm*' 'test_conv*' 'test_basic_conv*' 'test_Conv*' 'test_operator_conv*'; do
  echo "  $pattern:"
  find "$data" -mindepth 2 -maxdepth 2 -type d -name "$pattern" | sort | sed 's/^/    /'
done
