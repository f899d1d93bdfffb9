#!/usr/bin/env python3
"""Load probe for the TikTok simulator: a publishing burst over many keep-alive connections.

Opens C connections (default 256) and sends N pairs (default 5000) of
creator_info + video_init (PULL_FROM_URL, Direct Post) as fast as the connections
allow, pair i with user i's token.  The users come from one
POST /_sim/users/bulk {"count": N, "prefix": ...} (or, against an older simulator
without it, one POST /_sim/users each), so every token publishes once and TikTok's
per-token rate limits (kept ON) are never reached.  Python 3.11 standard library
only (asyncio, raw HTTP/1.1 over asyncio streams).

    # start a simulator itself (port 18600, --latency-ms 250, rate limits on), probe, stop it
    python3 sim/load_probe.py --spawn [--port 18600] [--latency-ms 250] [-c 256] [-n 5000]
    # probe a simulator that is already running (give its pid for its CPU seconds)
    python3 sim/load_probe.py --port 18443 --pid 12345 [-c 512] [-n 5000]

Prints calls/s, p50/p99/max latency, connect times (a 1 s+ connect means a dropped
SYN), non-ok replies, the simulator's CPU seconds (utime+stime from /proc/<pid>/stat)
over the load phase and per 1000 calls, and the probe's own CPU seconds: both run on
the same cores.  --no-keepalive opens a new connection for every call instead.
Exit status 0 when every call was answered 200 with error.code "ok", else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CREATOR_INFO = "/v2/post/publish/creator_info/query/"
VIDEO_INIT = "/v2/post/publish/video/init/"
VIDEO_URL = "https://verified.example/clip.mp4"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# utime + stime of a process in seconds (None when unknown).
def process_cpu(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK_TCK   # fields 14 and 15 of stat(5)


# One serialized HTTP/1.1 request.
def http_request(method: str, path: str, host: str, body: bytes = b"",
                 token: str | None = None, close: bool = False) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}",
             "Content-Type: application/json; charset=UTF-8", f"Content-Length: {len(body)}"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


# Read one reply; returns (status, body).  Needs Content-Length (the simulator always sends it).
async def read_reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


class Probe:
    """The load phase: C workers taking pairs from a shared counter."""

    # Remember the target and the run's parameters.
    def __init__(self, host: str, port: int, connections: int, pairs: int, prefix: str,
                 keepalive: bool = True):
        self.host, self.port = host, port
        self.hostport = f"{host}:{port}"
        self.connections, self.pairs, self.prefix = connections, pairs, prefix
        self.keepalive = keepalive
        self.next_pair = 0
        self.latencies: list[float] = []
        self.connect_times: list[float] = []
        self.failures: dict[str, int] = {}
        self.failure_sample: list[str] = []

    # Count a non-ok reply (or a transport error).
    def fail(self, what: str, detail: str = "") -> None:
        self.failures[what] = self.failures.get(what, 0) + 1
        if len(self.failure_sample) < 5:
            self.failure_sample.append(f"{what} {detail[:200]}")

    # Open one connection, timing the connect (a dropped SYN shows as >= 1 s).
    async def connect(self):
        t0 = time.monotonic()
        conn = await asyncio.open_connection(self.host, self.port)
        self.connect_times.append(time.monotonic() - t0)
        return conn

    # One call on a connection; checks for HTTP 200 and error.code ok.
    async def call(self, conn, path: str, body: bytes, token: str) -> bool:
        reader, writer = conn
        t0 = time.monotonic()
        writer.write(http_request("POST", path, self.hostport, body, token,
                                  close=not self.keepalive))
        status, reply = await read_reply(reader)
        self.latencies.append(time.monotonic() - t0)
        try:
            code = json.loads(reply)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = "unparsable"
        if status != 200 or code != "ok":
            self.fail(f"{status}/{code}", reply.decode("utf-8", "replace"))
            return False
        return True

    # One worker: take the next pair until none is left.
    async def worker(self, conn) -> None:
        while self.next_pair < self.pairs:
            self.next_pair += 1
            i = self.next_pair
            token = f"act.{self.prefix}-{i}"
            video = json.dumps({
                "post_info": {"title": f"probe post {i} #load", "privacy_level": "SELF_ONLY",
                              "disable_comment": False, "disable_duet": False,
                              "disable_stitch": False},
                "source_info": {"source": "PULL_FROM_URL", "video_url": VIDEO_URL}}).encode()
            try:
                if not self.keepalive:
                    conn = await self.connect()
                ok = await self.call(conn, CREATOR_INFO, b"{}", token)
                if ok:
                    if not self.keepalive:
                        conn[1].close()
                        conn = await self.connect()
                    await self.call(conn, VIDEO_INIT, video, token)
                if not self.keepalive:
                    conn[1].close()
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self.fail("transport", repr(exc))
                conn[1].close()
                conn = await self.connect()
        if conn:
            conn[1].close()

    # Connect everything first, then run the workers; returns the load phase's wall time.
    async def run(self) -> float:
        count = min(self.connections, self.pairs)
        if self.keepalive:
            conns = await asyncio.gather(*(self.connect() for _ in range(count)))
        else:
            conns = [None] * count
        t0 = time.monotonic()
        await asyncio.gather(*(self.worker(c) for c in conns))
        return time.monotonic() - t0


# A blocking JSON call to the control API on a fresh connection.
def control(host: str, port: int, method: str, path: str, body=None) -> tuple[int, dict]:
    import http.client
    conn = http.client.HTTPConnection(host, port, timeout=120)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, {"raw": raw[:200].decode("latin-1")}
    finally:
        conn.close()


# Create users <prefix>-1..N: one bulk call, or (older simulator) one call per user.
def create_users(host: str, port: int, prefix: str, count: int) -> tuple[str, float]:
    t0 = time.monotonic()
    status, body = control(host, port, "POST", "/_sim/users/bulk",
                           {"count": count, "prefix": prefix})
    if status == 200 and body.get("created") == count:
        return "bulk", time.monotonic() - t0
    if status != 404:
        raise SystemExit(f"bulk user creation failed: {status} {body}")
    for i in range(1, count + 1):
        status, body = control(host, port, "POST", "/_sim/users", {
            "access_token": f"act.{prefix}-{i}", "open_id": f"{prefix}-{i}",
            "refresh_token": f"rft.{prefix}-{i}"})
        if status != 200:
            raise SystemExit(f"user creation failed: {status} {body}")
    return "one by one", time.monotonic() - t0


# Start a simulator; returns the process once it prints its listening line.
def spawn(script: str, host: str, port: int, latency_ms: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, script, "--host", host, "--port", str(port),
                             "--latency-ms", str(latency_ms), "--quiet"],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening" not in line:
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc


# Percentile (nearest rank) of sorted values, in milliseconds.
def pct(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index] * 1000


# Parse the command line.
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18600)
    parser.add_argument("-c", "--connections", type=int, default=256)
    parser.add_argument("-n", "--pairs", type=int, default=5000)
    parser.add_argument("--prefix", default=None, help="user prefix (default: probe<pid>)")
    parser.add_argument("--pid", type=int, help="pid of an already running simulator")
    parser.add_argument("--spawn", action="store_true", help="start (and stop) a simulator")
    parser.add_argument("--sim", default=os.path.join(HERE, "tiktok_sim.py"),
                        help="simulator script for --spawn")
    parser.add_argument("--latency-ms", type=float, default=250, help="for --spawn")
    parser.add_argument("--no-keepalive", action="store_true",
                        help="a new connection per call")
    parser.add_argument("--json", action="store_true", help="also print one JSON summary line")
    return parser.parse_args(argv)


# Set up users, run the burst, print the figures.
def main(argv=None) -> int:
    args = parse_args(argv)
    proc = spawn(args.sim, args.host, args.port, args.latency_ms) if args.spawn else None
    pid = proc.pid if proc else args.pid
    prefix = args.prefix or f"probe{os.getpid()}"
    try:
        how, setup_s = create_users(args.host, args.port, prefix, args.pairs)
        probe = Probe(args.host, args.port, args.connections, args.pairs, prefix,
                      keepalive=not args.no_keepalive)
        sim_cpu0, own0 = process_cpu(pid), os.times()
        wall = asyncio.run(probe.run())
        sim_cpu1, own1 = process_cpu(pid), os.times()
    finally:
        if proc:
            proc.terminate()
            proc.wait(timeout=10)
    calls = len(probe.latencies)
    lat = sorted(probe.latencies)
    conn_t = sorted(probe.connect_times)
    sim_cpu = sim_cpu1 - sim_cpu0 if sim_cpu0 is not None and sim_cpu1 is not None else None
    own_cpu = (own1.user + own1.system) - (own0.user + own0.system)
    summary = {
        "connections": args.connections, "pairs": args.pairs, "keepalive": not args.no_keepalive,
        "users_created": how, "user_setup_s": round(setup_s, 3),
        "calls": calls, "wall_s": round(wall, 3), "calls_per_s": round(calls / wall, 1),
        "p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1),
        "max_ms": round(pct(lat, 100), 1),
        "connect_max_ms": round(pct(conn_t, 100), 1),
        "connects_over_1s": sum(1 for t in conn_t if t >= 1.0),
        "failures": probe.failures,
        "sim_cpu_s": round(sim_cpu, 2) if sim_cpu is not None else None,
        "sim_cpu_s_per_1000_calls": round(sim_cpu / calls * 1000, 3) if sim_cpu and calls else None,
        "probe_cpu_s": round(own_cpu, 2),
    }
    print(f"{calls} calls over {summary['connections']} "
          f"{'keep-alive ' if summary['keepalive'] else 'one-shot '}connections in "
          f"{wall:.2f} s: {summary['calls_per_s']} calls/s; latency p50 {summary['p50_ms']} ms, "
          f"p99 {summary['p99_ms']} ms, max {summary['max_ms']} ms")
    print(f"connect: max {summary['connect_max_ms']} ms, {summary['connects_over_1s']} took >= 1 s;"
          f" users: {how} in {setup_s:.2f} s")
    print(f"simulator CPU: {summary['sim_cpu_s']} s "
          f"({summary['sim_cpu_s_per_1000_calls']} s per 1000 calls); probe CPU: {own_cpu:.2f} s")
    if probe.failures:
        print(f"NOT OK: {probe.failures}; e.g. {probe.failure_sample}")
    if args.json:
        print(json.dumps(summary))
    return 1 if probe.failures or calls != 2 * args.pairs else 0


if __name__ == "__main__":
    sys.exit(main())
