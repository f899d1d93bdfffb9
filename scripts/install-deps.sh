#!/usr/bin/env bash
# Installs everything vibescaling needs to build, test and run its demo on
# Debian bookworm (as root, or with sudo). Safe to run again.
set -euo pipefail

packages=(
  build-essential g++ make cmake pkg-config curl ca-certificates python3
  postgresql-15 postgresql-server-dev-15 postgresql-contrib
  postgresql-15-cron postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
  libcurl4-openssl-dev libjansson-dev libgtest-dev libcpp-httplib-dev
  libavformat-dev libavcodec-dev libavutil-dev ffmpeg
  clang-14 llvm-14
  nginx-light nghttp2-proxy openssl
  nodejs chromium fonts-dejavu-core
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# Debian ships npm apart from nodejs; NodeSource's nodejs (on some machines)
# has it inside and conflicts with Debian's npm package.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(npm)
fi
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
