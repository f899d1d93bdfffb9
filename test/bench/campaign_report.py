#!/usr/bin/env python3
"""The campaign benchmark's checks and tables (test/bench/campaign_in_cluster.sh).

    campaign_report.py check-day DAY MODE WORK   # one JSON line: a dispatched day's checks
    campaign_report.py report WORK               # the tables; exit 1 if a check failed

check-day compares the database's side of a dispatched day (WORK/dayN.db.json,
campaign_check_day.sql) with the simulator's own record of the same minutes
(its request log, users, publishes and config, read right after the day's
runs; the simulator's state was reset before them):
- every post of the day is posted, with one publish record and one init in
  the dispatch log that was sent (the extension's own refusals, such as its
  rate limiter's, are rows too), accepted;
- the simulator received exactly one init per post (by the publish_id it
  answered), and no (creator, title) Direct Post twice;
- the simulator's publishes are the day's publish records, no more;
- no request was refused: no spam_risk_too_many_posts,
  spam_risk_too_many_pending_share, reached_active_user_cap, unaudited
  refusal, rate_limit_exceeded or any other error code;
- per creator, the simulator's Direct Posts of the last 24 hours are the
  day's Direct Posts of the account and at most its daily_post_cap (15), and
  its pending inbox drafts at most pending_share_limit (5); the simulator ran
  with those caps on and the app audited;
- nothing outside the dispatched days was sent.
"""
import json
import os
import re
import statistics
import sys
from collections import Counter

INITS = ("video_init", "inbox_video_init", "content_init")
CAP_CODES = ("spam_risk_too_many_posts", "spam_risk_too_many_pending_share", "reached_active_user_cap",
             "unaudited_client_can_only_post_to_private_accounts", "spam_risk_user_banned_from_posting",
             "rate_limit_exceeded")


def load(path):
    with open(path) as f:
        return json.load(f)


def check_day(day, mode, work):
    db = load(f"{work}/day{day}.db.json")
    requests = load(f"{work}/day{day}.requests.json")["requests"]
    users = {u["open_id"]: u for u in load(f"{work}/day{day}.users.json")["users"]}
    publishes = load(f"{work}/day{day}.publishes.json")["publishes"]
    config = load(f"{work}/day{day}.config.json")
    posts = db["posts"] or []
    n = len(posts)
    by_publish = {}
    for p in posts:
        for pid in p["publish_ids"]:
            by_publish[pid] = p["id"]
    inits = [r for r in requests if r["endpoint"] in INITS and r["http_status"] == 200 and r["error_code"] == "ok"]
    refused_inits = [r for r in requests if r["endpoint"] in INITS and r not in inits]
    init_ids = Counter(r["publish_id"] for r in inits)
    errors = Counter(r["error_code"] for r in requests if r["error_code"] not in (None, "ok"))
    titles = Counter((r["open_id"], ((r["body"] or {}).get("post_info") or {}).get("title"))
                     for r in inits if r["endpoint"] == "video_init")
    direct_by_account = Counter(p["open_id"] for p in posts if p["mode"] == "direct")
    expected_titles = Counter((p["open_id"], p["caption"]) for p in posts if p["mode"] == "direct")
    sim_publish_ids = Counter(p["publish_id"] for p in publishes)
    day_users = {p["open_id"] for p in posts}
    over_cap = {o: u["direct_posts_24h"] for o, u in users.items()
                if u["direct_posts_24h"] > u["daily_post_cap"]}
    direct_mismatch = {o: (users.get(o, {}).get("direct_posts_24h"), direct_by_account[o]) for o in day_users
                       if users.get(o, {}).get("direct_posts_24h") != direct_by_account[o]}
    pending_over = {o: u["pending_shares"] for o, u in users.items()
                    if u["pending_shares"] > config["pending_share_limit"]}
    checks = {
        "the simulator ran with its caps on (daily_post_cap 15, pending_share_limit 5, audited)":
            config["audited"] is True and config["pending_share_limit"] == 5
            and config["active_user_cap"] is None and config["rate_limits"] is True
            and all(users.get(o, {}).get("daily_post_cap") == 15 for o in day_users),
        "every post of the day posted": n > 0 and all(p["status"] == "posted" for p in posts),
        "one publish record per post": all(len(p["publish_ids"]) == 1 for p in posts),
        "one accepted init per post in the dispatch log, and as many sent as TikTok received for it":
            all(p["init_success"] == 1 for p in posts)
            and sum(p["init_sent"] for p in posts) == len(inits) + len(refused_inits),
        "the simulator accepted one init per post (by publish_id), none other":
            len(inits) == n and len(init_ids) == n and set(init_ids) == set(by_publish)
            and all(c == 1 for c in init_ids.values()),
        "no Direct Post title accepted twice for a creator":
            all(c == 1 for c in titles.values()) and titles == expected_titles,
        "the simulator's publishes are the day's publish records":
            set(sim_publish_ids) == set(by_publish) and all(c == 1 for c in sim_publish_ids.values()),
        "no cap refusal from the simulator (daily Direct Posts, pending inbox, active users, unaudited, ban)":
            not any(errors.get(c) for c in CAP_CODES if c != "rate_limit_exceeded"),
        "no other refusal or error from the simulator than rate_limit_exceeded (reported apart)":
            not (set(errors) - {"rate_limit_exceeded"}),
        "per creator, Direct Posts in 24 h within daily_post_cap, as many as the day's": not over_cap
            and not direct_mismatch,
        "per creator, pending inbox drafts within pending_share_limit": not pending_over,
        "nothing outside the dispatched days was sent": db["sent_outside_dispatched_days"] == 0,
        "the simulator's request log is whole (under its 20,000 entries)": len(requests) < 20000,
    }
    print(json.dumps({
        "day": int(day), "mode": mode, "posts": n,
        "by_kind": Counter(p["kind"] for p in posts), "by_mode": Counter(p["mode"] for p in posts),
        "posted": sum(p["status"] == "posted" for p in posts),
        "not_posted": Counter(f"{p['status']}: {(p['last_error'] or '')[:120]}" for p in posts
                              if p["status"] != "posted"),
        "retried": sum(p["attempts"] > 0 for p in posts),
        "init_rows_not_sent": sum(p["init_rows"] - p["init_sent"] for p in posts),
        "max_direct_per_creator_24h": max((u["direct_posts_24h"] for o, u in users.items() if o in day_users),
                                          default=0),
        "max_pending_inbox": max((u["pending_shares"] for o, u in users.items() if o in day_users), default=0),
        "sim_requests": Counter(f"{r['endpoint']}/{r['http_status']}/{r['error_code']}" for r in requests),
        "sim_errors": errors, "cap_refusals": {c: errors.get(c, 0) for c in CAP_CODES},
        "over_cap": over_cap, "direct_mismatch": direct_mismatch, "pending_over": pending_over,
        "titles_sent_twice": [list(k) for k, c in titles.items() if c > 1][:10],
        "refused_inits": Counter(f"{r['endpoint']}/{r['http_status']}/{r['error_code']}" for r in refused_inits),
        "rate_limit_429s": [rate_limit_story(r, requests, db["init_log"]) for r in refused_inits
                            if r["error_code"] == "rate_limit_exceeded"][:5],
        "log": db["log"], "checks": checks}))


# Why TikTok answered an init with 429 although the extension's rate
# limiter let it go: the creator's inits TikTok counted in the 60 s before
# (their arrival times at the simulator), against the times the extension's
# log holds for the same calls (by publish_id), relative to the 429's
# arrival.
def rate_limit_story(r, requests, init_log):
    logged = {x["publish_id"]: x["created_at"] for x in init_log if x["publish_id"]}
    window = [x for x in requests if x["endpoint"] in INITS and x["open_id"] == r["open_id"]
              and x["http_status"] == 200 and r["time"] - 60 < x["time"] < r["time"]]
    return {"open_id": r["open_id"], "at": r["time_iso"], "inits_in_window_at_tiktok": len(window),
            "oldest_arrived_s_before": round(r["time"] - min((x["time"] for x in window), default=r["time"]), 3),
            "oldest_logged_s_before": round(r["time"] - min((logged.get(x["publish_id"], r["time"]) for x in window),
                                                            default=r["time"]), 3)}


def fmt(x, digits=3):
    return "-" if x is None else f"{x:.{digits}f}"


def report(work, patch=None):
    steps = {}
    for line in open(f"{work}/results.jsonl"):
        r = json.loads(line)
        steps[r["step"]] = r
    days = [json.loads(line) for line in open(f"{work}/days.jsonl")] if _exists(f"{work}/days.jsonl") else []
    shape_doc = load(f"{work}/shape.json")
    shape = shape_doc["shape"]
    sched = load(f"{work}/schedule_check.json")
    plain_rows = int(open(f"{work}/plain_rows").read().strip())
    ok = True
    print()
    if patch:
        print(f"PATCHED: {patch} was run after the set-up; these figures are not the installed build's.")
    print(f"Plan: {shape['accounts']} accounts x {shape['posts']} posts = {shape['accounts'] * shape['posts']} posts,"
          f" from {shape['d1']} over {shape_doc['plan_days']} UTC days; per account {shape['targets']} campaign"
          f" targets, {shape['queued']} queued, {shape['rules']} recurrences x 5 occurrences;"
          f" {shape_doc['slots_per_week']} weekly slots per account.")
    print()
    print("Scheduling (one statement per call, each its own transaction; CPU from /proc):")
    print()
    p = steps["plain"]
    plain_cpu = p["cluster_cpu_s"] / plain_rows
    print("| path | calls | posts scheduled | refused | wall | posts/s | calls/s | database CPU per post"
          " | of which the backend | x plain INSERT's CPU per post | simulator CPU |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    paths = [("schedule_recur", "repeat_post (recurrences)", "recur"),
             ("schedule_targets", "schedule_targets (one draft, every account)", "targets"),
             ("schedule_queue", "add_to_queue (next free slot), JIT as the server has it", "queue"),
             ("schedule_queue_jit_off", "add_to_queue, the rest, JIT off in the session", "queue")]
    total_posts = total_wall = total_cpu = total_backend = 0.0
    for step, label, key in paths:
        if step not in steps:
            continue
        r = steps[step]
        if key == "queue":
            # add_to_queue raises when it refuses: each ERROR is a refusal.
            done, refused = r["calls"] - r["errors"], r["errors"]
        else:
            done = sched["scheduled_by_path"].get(key, 0)
            refused = sched["refused_by_path"].get(key, 0)
        total_posts += done
        total_wall += r["wall_s"]
        total_cpu += r["cluster_cpu_s"]
        total_backend += r["backend_cpu_s"] or 0
        print(f"| {label} | {r['calls']} | {done} | {refused} | {r['wall_s']:.1f} s | {done / r['wall_s']:.0f}"
              f" | {r['calls'] / r['wall_s']:.1f} | {1000 * r['cluster_cpu_s'] / max(done, 1):.3f} ms"
              f" | {1000 * (r['backend_cpu_s'] or 0) / max(done, 1):.3f} ms"
              f" | {r['cluster_cpu_s'] / max(done, 1) / plain_cpu:.0f} | {r['sim_cpu_s']:.1f} s |")
    print(f"| all three | | {int(total_posts)} | {sum(sched['refused_by_path'].values())} | {total_wall:.1f} s"
          f" | {total_posts / total_wall:.0f} | | {1000 * total_cpu / total_posts:.3f} ms"
          f" | {1000 * total_backend / total_posts:.3f} ms | {total_cpu / total_posts / plain_cpu:.0f} | |")
    e = steps["schedule_expand"]
    print(f"| expand_recurrences() (the 15-minute job; its week already scheduled) | 1 | 0 | | {e['wall_s']:.3f} s"
          f" | | | {e['cluster_cpu_s']:.2f} s in all | | | |")
    print(f"| plain INSERTs into an application's table (no checks) | {p['calls']} | {plain_rows} | | {p['wall_s']:.1f} s"
          f" | {plain_rows / p['wall_s']:.0f} | {p['calls'] / p['wall_s']:.1f}"
          f" | {1000 * p['cluster_cpu_s'] / plain_rows:.3f} ms | {1000 * (p['backend_cpu_s'] or 0) / plain_rows:.3f} ms"
          f" | 1 | |")
    print()
    print(f"What the checks cost: the three paths took {total_wall / p['wall_s']:.1f} x the plain INSERTs' wall time"
          f" for as many posts, and {total_cpu / max(total_posts, 1) / plain_cpu:.0f} x their database CPU per post.")
    for step in ("schedule_recur", "schedule_targets", "schedule_queue", "schedule_queue_jit_off",
                 "schedule_expand", "plain"):
        if step in steps:
            print_step_notes(step, steps[step])
    print()
    schecks = {
        "every planned post scheduled (no refusal)": sched["scheduled"] == sched["planned"]
            and not sched["refused_by_path"],
        "every scheduled post where the plan put it (a queued one: on a slot of its account)":
            sched["off_plan"] == 0 and sched["matching_plan"] == sched["scheduled"],
        "no account over 15 Direct Posts in a UTC day": sched["max_direct_per_account_utc_day"] <= 15,
        "no account over 5 inbox uploads in 24 hours": sched["max_inbox_per_account_24h"] <= 5,
        "the plain INSERTs wrote the same number of posts": plain_rows == sched["planned"],
        "no psql ERROR in the scheduling steps but the refusals counted above":
            sum(steps[s]["errors"] for s in ("schedule_recur", "schedule_targets", "schedule_expand", "plain")) == 0
            and sum(steps[s]["errors"] for s in ("schedule_queue", "schedule_queue_jit_off") if s in steps)
            == sched["refused_by_path"].get("queue", 0),
    }
    print(f"Schedule: {sched['scheduled']} of {sched['planned']} planned posts scheduled"
          f" ({json.dumps(sched['scheduled_by_path'])}), {sched['inbox_scheduled']} of them inbox uploads, over"
          f" {sched['utc_days']} UTC days; refusals {json.dumps(sched['refusals'])}; most Direct Posts of an account"
          f" in a UTC day {sched['max_direct_per_account_utc_day']}, most inbox uploads in 24 h"
          f" {sched['max_inbox_per_account_24h']}; queued posts in the hole planned for them"
          f" {sched['queued_in_planned_hole']} of {sched['planned_by_path'].get('queue', 0)}.")
    for name, good in schecks.items():
        print(f"  check {name}: {'ok' if good else 'FAILED'}")
        ok = ok and good
    print()
    if days:
        print("Dispatch (database CPU: every process of the cluster; the backend: the session that CALLs;"
              " the simulator's CPU apart):")
        print()
        print("| day | mode | posts (target/queue/recurrence, inbox) | runs (+ follow-ups) | wall (main runs)"
              " | database CPU per post"
              " | of which the calling backend | simulator CPU | retried | load before -> after |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for d in days:
            r = steps[f"dispatch_day{d['day']}_{d['mode']}"]
            k = d["by_kind"]
            print(f"| {d['day']} | {d['mode']} | {d['posts']} ({k.get('target', 0)}/{k.get('queue', 0)}/"
                  f"{k.get('rec', 0)}, {d['by_mode'].get('inbox', 0)}) | {r['runs']} + {r['followup_runs']}"
                  f" | {r['wall_s']:.1f} s ({r['main_wall_s']:.1f} s) | {1000 * r['cluster_cpu_s'] / d['posts']:.3f} ms"
                  f" | {1000 * (r['backend_cpu_s'] or 0) / d['posts']:.3f} ms | {r['sim_cpu_s']:.1f} s"
                  f" | {d['retried']} | {r['load_before']} -> {r['load_after']} |")
        print()
        for d in days:
            print_step_notes(f"dispatch_day{d['day']}_{d['mode']}", steps[f"dispatch_day{d['day']}_{d['mode']}"])
        print()
        for mode in sorted({d["mode"] for d in days}):
            ds = [d for d in days if d["mode"] == mode]
            rs = [steps[f"dispatch_day{d['day']}_{mode}"] for d in ds]
            per = [1000 * r["cluster_cpu_s"] / d["posts"] for r, d in zip(rs, ds)]
            back = [1000 * (r["backend_cpu_s"] or 0) / d["posts"] for r, d in zip(rs, ds)]
            print(f"Median of {len(ds)} {mode} day(s): wall {statistics.median(r['wall_s'] for r in rs):.1f} s,"
                  f" database CPU per post {statistics.median(per):.3f} ms (runs: {', '.join(f'{x:.3f}' for x in per)}),"
                  f" the calling backend {statistics.median(back):.3f} ms.")
        print()
        for d in days:
            print(f"Day {d['day']} ({d['mode']}): {d['posted']} of {d['posts']} posted ({d['retried']} after a failed"
              f" attempt; the log's init rows that were the extension's own refusals: {d['init_rows_not_sent']});"
              f" simulator requests"
                  f" {json.dumps(d['sim_requests'])}; most Direct Posts of a creator in 24 h (simulator)"
                  f" {d['max_direct_per_creator_24h']}, most pending inbox drafts {d['max_pending_inbox']};"
                  f" cap refusals {json.dumps(d['cap_refusals'])}")
            if d["not_posted"]:
                print(f"  not posted: {json.dumps(d['not_posted'])}")
            if d["sim_errors"]:
                print(f"  simulator errors: {json.dumps(d['sim_errors'])}")
            if d["refused_inits"]:
                print(f"  inits the simulator refused (each retried; none is a post): {json.dumps(d['refused_inits'])}")
            for story in d["rate_limit_429s"]:
                print(f"  a 429: {json.dumps(story)}")
            for name, good in d["checks"].items():
                print(f"  check {name}: {'ok' if good else 'FAILED'}")
                ok = ok and good
    else:
        print("No day dispatched (VS_CAMPAIGN_DAYS empty).")
    sys.exit(0 if ok else 1)


# A step's load, others' CPU, errors, and where the cluster's CPU went.
def print_step_notes(step, r):
    other = r["machine_busy_s"] - r["cluster_cpu_s"] - r["sim_cpu_s"]
    print(f"  {step}: load {r['load_before']} -> {r['load_after']}; machine busy {r['machine_busy_s']:.1f} s,"
          f" of which outside the cluster and the simulator {other:.1f} s; errors printed: {r['errors']}"
          + (f" {r['first_errors']}" if r["errors"] else ""))
    groups = dict(r["cpu_by_process"])
    exited = "exited (autovacuum workers, dispatch helpers, ...)"
    backend = r["backend_cpu_s"] or 0
    groups["the calling backend (sampled)"] = backend
    groups[exited] = round(groups.get(exited, 0) - backend, 2)
    print(f"    cluster CPU {r['cluster_cpu_s']:.2f} s: "
          + ", ".join(f"{k} {v:.2f} s" for k, v in sorted(groups.items(), key=lambda kv: -kv[1]) if abs(v) >= 0.01))


def _exists(path):
    try:
        open(path).close()
        return True
    except OSError:
        return False


# The CPU seconds (user + system) and title of each live child of the postmaster.
def procs(postmaster):
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{name}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if int(fields[1]) == int(postmaster):
            out[name] = [(int(fields[11]) + int(fields[12])) / tick, title]
    print(json.dumps(out))


# Where a step's cluster CPU went: the live processes' CPU between two
# snapshots, by process title (digits and the client's address dropped), and
# the rest (processes that exited meanwhile: autovacuum workers, dispatch
# helpers, ...), as "exited".
def cpu_by_process(before_path, after_path, cluster_cpu):
    before, after = load(before_path), load(after_path)
    groups = Counter()
    for pid, (cpu, title) in after.items():
        key = re.sub(r"\[local\]|\d+(\.\d+)*(\(\d+\))?", "", title).strip()
        key = re.sub(r"\s+", " ", key)
        groups[key] += cpu - (before.get(pid, [0.0])[0] if pid in before else 0.0)
    groups["exited (autovacuum workers, dispatch helpers, ...)"] = cluster_cpu - sum(groups.values())
    return {k: round(v, 2) for k, v in groups.most_common() if abs(v) >= 0.01}


if __name__ == "__main__":
    if sys.argv[1] == "check-day":
        check_day(*sys.argv[2:5])
    elif sys.argv[1] == "procs":
        procs(sys.argv[2])
    else:
        report(*sys.argv[2:4])
