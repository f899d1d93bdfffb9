#!/usr/bin/env bash
# Builds the Debian package postgresql-15-vibescaling (debian/, pg_buildext)
# from the committed tree, HEAD, exported with git archive into a temporary
# directory (the work tree is never built in, so it stays clean), and
# copies the .deb (and its -dbgsym .deb) to OUTDIR, printing the .deb's
# path. First installs, with apt-get, whatever build dependency of
# debian/control is missing (safe to run again: nothing is fetched when
# all are there). Does not install the package. Debian bookworm, as root
# or with sudo.
#   scripts/build-deb.sh [OUTDIR]        (default: build/deb in the repo)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
outdir=${1:-$repo/build/deb}
mkdir -p "$outdir"
outdir=$(cd "$outdir" && pwd)
cd "$repo"
start=$(date +%s)

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=no
apt_install() {
  [ "$apt_updated" = yes ] || { $SUDO apt-get update -qq; apt_updated=yes; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get "$@" -y -qq --no-install-recommends >/dev/null
}

# What this script itself runs; the package's build dependencies follow.
tools=(git dpkg-dev build-essential)
missing=()
for p in "${tools[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "build-deb: installing ${missing[*]}"
  apt_install install "${missing[@]}"
fi

version=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" vibescaling.control)
[ -n "$version" ] || { echo "build-deb: no default_version in vibescaling.control" >&2; exit 1; }
rev=$(git rev-parse --short HEAD)
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "build-deb: warning: uncommitted changes are not in the package (it is built from HEAD, $rev)" >&2
fi

tmp=$(mktemp -d /tmp/vibescaling-deb.XXXXXX)
src=$tmp/vibescaling-$version
mkdir "$src"
git archive --format=tar HEAD | tar -x -C "$src"

# Build dependencies, read from debian/control (the one list of them).
if ! (cd "$src" && dpkg-checkbuilddeps) >/dev/null 2>&1; then
  echo "build-deb: installing the build dependencies of debian/control"
  apt_install build-dep "$src"
fi

log=$outdir/build.log
echo "build-deb: building vibescaling $version ($rev) in $src (log: $log)"
if ! (cd "$src" && dpkg-buildpackage -us -uc -b -J"$(nproc)") >"$log" 2>&1; then
  tail -n 60 "$log" >&2
  echo "build-deb: FAILED after $(( $(date +%s) - start ))s; sources and output kept in $tmp" >&2
  exit 1
fi

shopt -s nullglob
debs=("$tmp"/postgresql-*-vibescaling_*.deb)
[ ${#debs[@]} -gt 0 ] || { echo "build-deb: no .deb produced (see $log)" >&2; exit 1; }
# Every extension file must be in the package: the control file, the
# current version's script, every frozen release script, the library.
want=(vibescaling.control "vibescaling--$version.sql")
for f in src/sql/releases/vibescaling--*.sql; do want+=("$(basename "$f")"); done
for deb in "${debs[@]}"; do
  listing=$(dpkg-deb -c "$deb")
  for f in "${want[@]}"; do
    grep -q "/extension/$f\$" <<<"$listing" || { echo "build-deb: $f is missing from $deb" >&2; exit 1; }
  done
  grep -q '/lib/vibescaling\.so$' <<<"$listing" || { echo "build-deb: vibescaling.so is missing from $deb" >&2; exit 1; }
done

cp "${debs[@]}" "$tmp"/postgresql-*-vibescaling-dbgsym_*.deb "$outdir"/
rm -rf "$tmp"
echo "build-deb: built in $(( $(date +%s) - start ))s; every extension file is in the package"
for deb in "${debs[@]}"; do echo "$outdir/$(basename "$deb")"; done
