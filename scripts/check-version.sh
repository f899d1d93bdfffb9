#!/usr/bin/env bash
# The version is written once, in vibescaling.control (default_version).
# debian/changelog and META.json must repeat it; this fails when they do
# not: the upstream part of the newest debian/changelog entry (no epoch,
# no Debian revision), META.json's version and each version under its
# provides. Quick and needs only sed and python3; .ci/run runs it.
#   scripts/check-version.sh
set -euo pipefail
cd "$(dirname "$0")/.."

want=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" vibescaling.control)
if [ -z "$want" ]; then
  echo "check-version: no default_version in vibescaling.control" >&2
  exit 1
fi

bad=0
complain() { echo "check-version: $1 is $2, vibescaling.control's default_version is $want" >&2; bad=1; }

# First line: "vibescaling (EPOCH:UPSTREAM-REVISION) DIST; urgency=...".
deb=$(sed -n '1s/^[^ ]* (\([^)]*\)).*/\1/p' debian/changelog)
upstream=${deb#*:}
upstream=${upstream%-*}
[ "$upstream" = "$want" ] || complain "debian/changelog's upstream version (of ${deb:-an unreadable first line})" "${upstream:-missing}"

# (An unreadable META.json fails here, under set -e.)
meta=$(python3 -c '
import json
m = json.load(open("META.json"))
print("version\t%s" % m.get("version", "missing"))
provides = m.get("provides") or {}
if not provides:
    print("provides\tmissing")
for ext, p in provides.items():
    print("provides.%s.version\t%s" % (ext, p.get("version", "missing")))
')
while IFS=$'\t' read -r where got; do
  [ "$got" = "$want" ] || complain "META.json's $where" "$got"
done <<<"$meta"

[ "$bad" -eq 0 ] || exit 1
echo "check-version: $want in vibescaling.control, debian/changelog and META.json"
