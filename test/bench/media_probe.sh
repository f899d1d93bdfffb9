#!/usr/bin/env bash
# Media probe benchmark: what a media check costs before a publish. ffmpeg
# makes a video of SECONDS (default 120) at 1080x1920, 30 fps, H.264, twice:
# with its moov atom at the end (ffmpeg's default) and at the front
# (faststart). Each goes into a large object; _media_facts probes it RUNS
# times (default 7). Prints, per file, its size, the bytes the probe read,
# the median and the slowest probe, and ffprobe's time on the whole file
# beside it. Needs no simulator.
#   test/bench/media_probe.sh [SECONDS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-120}
runs=${2:-7}

scripts/install-deps.sh >/dev/null
make -j2 >/dev/null
make install >/dev/null

dir=$(mktemp -d /tmp/vibescaling-mediabench.XXXXXX)
chmod 755 "$dir"
trap 'rm -rf "$dir"' EXIT
echo "# making a ${seconds} s 1080x1920 30 fps H.264 video, moov at the end and at the front"
ffmpeg -v error -y -f lavfi -i "testsrc2=size=1080x1920:rate=30" -t "$seconds" -c:v libx264 -preset ultrafast \
  -pix_fmt yuv420p "$dir/moov_end.mp4"
ffmpeg -v error -y -i "$dir/moov_end.mp4" -c copy -movflags +faststart "$dir/moov_front.mp4"

VS_BENCH_DIR="$dir" VS_BENCH_RUNS="$runs" scripts/pg-cluster.sh vs_mediabench sh -c '
  createdb vs_mediabench
  psql -X -qAt -d vs_mediabench -c "CREATE EXTENSION vibescaling CASCADE" >/dev/null
  for f in moov_end moov_front; do
    psql -X -qAt -d vs_mediabench -v file="$VS_BENCH_DIR/$f.mp4" -v name="$f" -v runs="$VS_BENCH_RUNS" \
      -f test/bench/media_probe.sql
  done'
for f in moov_end moov_front; do
  start=$(date +%s%N)
  ffprobe -v error -show_streams -show_format -of json "$dir/$f.mp4" >/dev/null
  echo "$f: ffprobe reading the whole file: $(( ($(date +%s%N) - start) / 1000000 )) ms"
done
