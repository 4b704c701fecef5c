#!/usr/bin/env bash
# napari needs an X server even in tests (offscreen Qt crashes when a layer is added):
# make sure Xvfb and the xcb libraries Qt needs are there, installing them when we can.
set -euo pipefail
packages="xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0"
missing=""
command -v Xvfb >/dev/null 2>&1 || missing="yes"
for lib in libxcb-icccm.so.4 libxcb-keysyms.so.1 libxcb-xinerama.so.0; do
  ldconfig -p 2>/dev/null | grep -q "$lib" || missing="yes"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Xvfb and Qt's xcb libraries: $packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq $packages >/dev/null
else
  echo "The tests need an X server. Install these Debian/Ubuntu packages first:" >&2
  echo "  sudo apt-get install $packages" >&2
  exit 1
fi
