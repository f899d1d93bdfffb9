#!/usr/bin/env python3
"""CPU and memory of a PostgreSQL cluster and the simulator during a benchmark.

    proc_sampler.py start STATE_FILE POSTMASTER_PID SIM_PID BACKEND_PID_FILE
    proc_sampler.py stop STATE_FILE       # prints JSON and exits

'start' runs in the background: it records the CPU time (user + system) of
every process of the cluster (the postmaster's children, plus the time of
children that have exited and were reaped: short-lived log writer workers)
and of the simulator, then samples the dispatching backend's private memory
(RssAnon) every 20 ms until 'stop' (a file next to STATE_FILE) appears.
"""
import json
import os
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


# utime, stime, cutime, cstime of a process in seconds (zeros when it is gone).
def cpu_times(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return (0.0, 0.0, 0.0, 0.0)
    # After "pid (comm)": state is fields[0]; utime is field 14 of the whole line.
    return tuple(int(fields[i]) / TICK for i in (11, 12, 13, 14))


# The pids whose parent is ppid.
def children(ppid):
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == ppid:
            out.append(int(name))
    return out


# CPU seconds of the cluster: every live child's own time, and the postmaster's
# own time plus that of its reaped children.
def cluster_cpu(postmaster, per_pid):
    u, s, cu, cs = cpu_times(postmaster)
    total = u + s + cu + cs
    for pid in children(postmaster):
        cu_, cs_, _, _ = cpu_times(pid)
        per_pid[pid] = cu_ + cs_
    return total


# RssAnon of pid in kB, or None.
def rss_anon_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def start(state_file, postmaster, sim, backend_pid_file):
    postmaster, sim = int(postmaster), int(sim)
    before = {}
    pm_before = cluster_cpu(postmaster, before)
    sim_before = sum(cpu_times(sim)[:2])
    t0 = time.time()
    backend = None
    backend_cpu = None   # last seen: the backend exits before 'stop' comes
    peak = base = None
    stop_file = state_file + ".stop"
    while not os.path.exists(stop_file):
        if backend is None and os.path.exists(backend_pid_file):
            with open(backend_pid_file) as f:
                text = f.read().strip()
            if text:
                backend = int(text)
                base = rss_anon_kb(backend)
        if backend is not None:
            kb = rss_anon_kb(backend)
            if kb is not None:
                peak = kb if peak is None else max(peak, kb)
                u, s, _, _ = cpu_times(backend)
                backend_cpu = u + s
        time.sleep(0.02)
    after = {}
    pm_after = cluster_cpu(postmaster, after)
    live = sum(after[p] - before.get(p, 0.0) for p in after)
    # A child that was alive at the start and exited since is in pm_after's cutime
    # in full: count only what it used after the start.
    gone = sum(v for p, v in before.items() if p not in after)
    if backend_cpu is not None:
        backend_cpu -= before.get(backend, 0.0)
    result = {
        "seconds": round(time.time() - t0, 3),
        "cluster_cpu_s": round(pm_after - pm_before + live - gone, 3),
        "backend_cpu_s": None if backend_cpu is None else round(backend_cpu, 3),
        "backend_rss_anon_base_kb": base,
        "backend_rss_anon_peak_kb": peak,
        "sim_cpu_s": round(sum(cpu_times(sim)[:2]) - sim_before, 3),
    }
    with open(state_file, "w") as f:
        json.dump(result, f)


def stop(state_file):
    open(state_file + ".stop", "w").close()
    for _ in range(500):
        if os.path.exists(state_file) and os.path.getsize(state_file) > 0:
            with open(state_file) as f:
                print(f.read())
            return
        time.sleep(0.02)
    sys.exit("proc_sampler: no result")


if __name__ == "__main__":
    if sys.argv[1] == "start":
        start(*sys.argv[2:6])
    else:
        stop(sys.argv[2])
