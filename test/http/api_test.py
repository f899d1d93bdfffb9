#!/usr/bin/env python3
"""The HTTP API through the real servers: requests go to nginx (api/nginx.conf),
which passes them to PostgREST 12 (api/postgrest.conf), which runs them in the
database, with HS256 JWTs for two tenants. Each documented path is sent with
the product's request bodies; every status a user can meet is provoked
(400, 401, 403, 404, 409, 502, 503); one tenant never sees or touches the
other's rows. The database and the simulator are asked directly to confirm
what the answers say.

Run by test/http/in_cluster.sh, which starts the stack (scripts/api-stack.sh):
    api_test.py API_URL JWT_SECRET_FILE SIM_URL DB
Prints "ok - ..." / "not ok - ..." lines, then "http_api: N passed, M failed".
"""
from __future__ import annotations

import hashlib
import hmac
import importlib.util
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("jwt", os.path.join(HERE, "..", "..", "scripts", "jwt.py"))
jwt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(jwt)

API, SECRET_FILE, SIM, DB = sys.argv[1:5]
with open(SECRET_FILE) as f:
    SECRET = f.read().strip()
RUN = uuid.uuid4().hex[:8]
TENANT_A, TENANT_B = f"tenant-a-{RUN}", f"tenant-b-{RUN}"
TOKEN_A = jwt.sign(SECRET, {"role": "vibescaling_user", "sub": TENANT_A, "exp": int(time.time()) + 3600})
TOKEN_B = jwt.sign(SECRET, {"role": "vibescaling_user", "sub": TENANT_B, "exp": int(time.time()) + 3600})
CLIENT_SECRET = "sim_client_secret"   # the simulator's app, as scripts/pg-cluster.sh configures it

passed = failed = 0


class Reply:
    """One HTTP answer: status, headers and the body (JSON when it parses)."""

    def __init__(self, status: int, headers, raw: bytes):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def __repr__(self):
        return f"{self.status} {self.raw[:300]!r}"


def http(method: str, path: str, body=None, token: str | None = None, headers: dict | None = None,
         base: str = API) -> Reply:
    """Sends one request and returns its answer, whatever the status."""
    data = None
    hdrs = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    if token:
        hdrs["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return Reply(r.status, r.headers, r.read())
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.headers, e.read())


def sql(query: str) -> str:
    """Runs one query as the superuser (not through the API); its unaligned output."""
    return subprocess.run(["psql", "-X", "-qAt", "-v", "ON_ERROR_STOP=1", "-d", DB, "-c", query],
                          check=True, capture_output=True, text=True).stdout.strip()


def sim(method: str, path: str, body=None) -> Reply:
    """Calls the simulator's control API."""
    return http(method, path, body, base=SIM)


def check(name: str, ok: bool, got=None) -> None:
    """Records one assertion."""
    global passed, failed
    if ok:
        passed += 1
        print(f"ok - {name}")
    else:
        failed += 1
        print(f"not ok - {name} (got {got!r})")


def status_is(name: str, reply: Reply, status: int) -> None:
    """Checks an answer's HTTP status."""
    check(f"{name}: {status}", reply.status == status, reply)


def new_post(token: str, caption: str, **fields) -> str:
    """POST /api/v1/posts as a tenant; the new draft's id."""
    r = http("POST", "/api/v1/posts", {"caption": caption, "video_url": "https://verified.example/a.mp4", **fields},
             token, {"Prefer": "return=representation"})
    assert r.status == 201, r
    return r.json[0]["id"]


def connect(token: str, open_id: str) -> Reply:
    """POST /api/v1/rpc/connect_account with the simulator's code for open_id."""
    return http("POST", "/api/v1/rpc/connect_account",
                {"auth_code": f"code-{open_id}", "redirect_uri": "https://app.example/callback"}, token)


def publish(token: str | None, post_id: str, account_id: str | None, privacy: str | None = "SELF_ONLY",
            headers: dict | None = None) -> Reply:
    """POST /api/v1/posts/:id/publish with the product's body."""
    body = {"tiktok_account_id": account_id}
    if privacy is not None:
        body["privacy_level"] = privacy
    return http("POST", f"/api/v1/posts/{post_id}/publish", body, token, headers)


def signed_webhook(event: str, open_id: str, content: dict, secret: str = CLIENT_SECRET) -> tuple[bytes, str]:
    """A TikTok webhook body and its TikTok-Signature header, signed as TikTok signs."""
    body = json.dumps({"client_key": "sim_client_key", "event": event, "create_time": int(time.time()),
                       "user_openid": open_id, "content": json.dumps(content)}).encode()
    t = int(time.time())
    s = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return body, f"t={t},s={s}"


def main() -> int:
    """Runs every check in order (they share the tenants' posts and accounts)."""
    sim("DELETE", "/_sim/faults")

    print("# authentication")
    status_is("GET /api/v1/posts without a JWT", http("GET", "/api/v1/posts"), 401)
    forged = jwt.sign("not-the-secret-" * 3, {"role": "vibescaling_user", "sub": TENANT_A})
    status_is("GET /api/v1/posts with a JWT signed by another key", http("GET", "/api/v1/posts", token=forged), 401)
    expired = jwt.sign(SECRET, {"role": "vibescaling_user", "sub": TENANT_A, "exp": int(time.time()) - 60})
    status_is("GET /api/v1/posts with an expired JWT", http("GET", "/api/v1/posts", token=expired), 401)

    print("# accounts, through TikTok's OAuth code exchange")
    open_a, open_b = f"httpa_{RUN}", f"httpb_{RUN}"
    ra = connect(TOKEN_A, open_a)
    status_is("POST /api/v1/rpc/connect_account (A)", ra, 200)
    acct_a = ra.json["data"]["id"]
    check("... the answer holds no token", "act." not in ra.raw.decode() and "rft." not in ra.raw.decode(), ra)
    check("... the account is A's", sql(f"SELECT owner FROM vibescaling.tiktok_accounts WHERE id = '{acct_a}'") == TENANT_A)
    acct_b = connect(TOKEN_B, open_b).json["data"]["id"]
    status_is("B connecting the TikTok account A connected", connect(TOKEN_B, open_a), 403)
    accounts_b = http("GET", "/api/v1/accounts", token=TOKEN_B)
    check("GET /api/v1/accounts: B sees its own account only",
          accounts_b.status == 200 and [a["id"] for a in accounts_b.json] == [acct_b], accounts_b)

    print("# posts")
    r = http("POST", "/api/v1/posts", {"caption": "api draft", "video_url": "https://verified.example/a.mp4"},
             TOKEN_A, {"Prefer": "return=representation"})
    status_is("POST /api/v1/posts creates a draft", r, 201)
    post_a = r.json[0]["id"]
    check("... owned by the JWT's sub, as a draft",
          sql(f"SELECT owner || ' ' || status FROM vibescaling.posts WHERE id = '{post_a}'") == f"{TENANT_A} draft")
    r = http("GET", f"/api/v1/posts/{post_a}", token=TOKEN_A)
    check("GET /api/v1/posts/:id: the post as one object", r.status == 200 and r.json.get("id") == post_a, r)
    status_is("GET /api/v1/posts/:id of another tenant's post", http("GET", f"/api/v1/posts/{post_a}", token=TOKEN_B), 404)
    status_is("PATCH /api/v1/posts/:id of another tenant's post",
              http("PATCH", f"/api/v1/posts/{post_a}", {"caption": "mine"}, TOKEN_B), 404)
    status_is("DELETE /api/v1/posts/:id of another tenant's post",
              http("DELETE", f"/api/v1/posts/{post_a}", token=TOKEN_B), 404)
    status_is("PATCH /api/v1/posts/:id of a post that does not exist",
              http("PATCH", f"/api/v1/posts/{uuid.uuid4()}", {"caption": "x"}, TOKEN_A), 404)
    check("... A's post is unchanged", sql(f"SELECT caption FROM vibescaling.posts WHERE id = '{post_a}'") == "api draft")
    status_is("POST /api/v1/posts as posted",
              http("POST", "/api/v1/posts", {"caption": "x", "video_url": "https://verified.example/x.mp4",
                                             "status": "posted"}, TOKEN_A), 403)

    print("# PATCH /api/v1/posts/:id schedules")
    soon = sql("SELECT to_char(now() + interval '1 minute', 'YYYY-MM-DD\"T\"HH24:MI:SSOF')")
    later = sql("SELECT to_char(now() + interval '1 hour', 'YYYY-MM-DD\"T\"HH24:MI:SSOF')")
    sched = {"status": "scheduled", "tiktok_account_id": acct_a, "privacy_level": "SELF_ONLY"}
    status_is("PATCH scheduling less than 5 minutes ahead",
              http("PATCH", f"/api/v1/posts/{post_a}", {**sched, "scheduled_at": soon}, TOKEN_A), 400)
    status_is("PATCH scheduling on another tenant's account",
              http("PATCH", f"/api/v1/posts/{post_a}", {**sched, "scheduled_at": later, "tiktok_account_id": acct_b},
                   TOKEN_A), 403)
    r = http("PATCH", f"/api/v1/posts/{post_a}", {**sched, "scheduled_at": later}, TOKEN_A)
    check("PATCH scheduling an hour ahead: 200 with the post, scheduled",
          r.status == 200 and r.json.get("status") == "scheduled", r)
    status_is("PATCH setting status posted (the publisher's)",
              http("PATCH", f"/api/v1/posts/{post_a}", {"status": "posted"}, TOKEN_A), 403)
    status_is("PATCH of a column the API does not grant (attempts)",
              http("PATCH", f"/api/v1/posts/{post_a}", {"attempts": 0}, TOKEN_A), 403)
    status_is("DELETE of a scheduled post", http("DELETE", f"/api/v1/posts/{post_a}", token=TOKEN_A), 409)
    status_is("publishing a scheduled post", publish(TOKEN_A, post_a, acct_a), 409)
    status_is("POST /api/v1/rpc/cancel_post takes it back to draft",
              http("POST", "/api/v1/rpc/cancel_post", {"post_id": post_a}, TOKEN_A), 200)
    status_is("... cancelling a draft", http("POST", "/api/v1/rpc/cancel_post", {"post_id": post_a}, TOKEN_A), 409)

    print("# POST /api/v1/posts/:id/publish")
    status_is("without a JWT", publish(None, post_a, acct_a), 401)
    status_is("B publishing A's post", publish(TOKEN_B, post_a, acct_b), 404)
    status_is("an unknown post", publish(TOKEN_A, str(uuid.uuid4()), acct_a), 404)
    status_is("an unknown account", publish(TOKEN_A, post_a, str(uuid.uuid4())), 404)
    status_is("A's post to B's account", publish(TOKEN_A, post_a, acct_b), 403)
    status_is("no privacy_level", publish(TOKEN_A, post_a, acct_a, None), 400)
    status_is("an unknown privacy_level", publish(TOKEN_A, post_a, acct_a, "EVERYONE"), 400)
    inits_before = len(sim("GET", f"/_sim/requests?endpoint=video_init&open_id={open_a}").json["requests"])
    r = publish(TOKEN_A, post_a, acct_a, headers={"X-Post-Id": str(uuid.uuid4())})
    check("A publishes its draft: 200 with {\"data\": {\"publish_id\"}} (a client's X-Post-Id is ignored)",
          r.status == 200 and (r.json or {}).get("data", {}).get("publish_id", "").startswith("v_pub"), r)
    publish_id = (r.json or {}).get("data", {}).get("publish_id")
    check("... the post is posted, with posted_at",
          sql(f"SELECT status || ' ' || (posted_at IS NOT NULL) FROM vibescaling.posts WHERE id = '{post_a}'") == "posted true")
    inits = sim("GET", f"/_sim/requests?endpoint=video_init&open_id={open_a}").json["requests"]
    check("... TikTok received one init, for SELF_ONLY",
          len(inits) - inits_before == 1, len(inits) - inits_before)
    status_is("publishing it again", publish(TOKEN_A, post_a, acct_a), 409)

    post_a2 = new_post(TOKEN_A, "p2")
    sim("POST", "/_sim/faults", {"endpoint": "creator_info", "http_status": 500, "error_code": "internal_error",
                                 "open_id": open_a})
    status_is("TikTok answering 500", publish(TOKEN_A, post_a2, acct_a), 502)
    sim("POST", "/_sim/faults", {"endpoint": "creator_info", "http_status": 429, "error_code": "rate_limit_exceeded",
                                 "open_id": open_a})
    r = publish(TOKEN_A, post_a2, acct_a)
    status_is("TikTok answering 429", r, 503)
    check("... with Retry-After", r.headers.get("Retry-After") is not None, dict(r.headers))
    check("... the post stays a draft", sql(f"SELECT status FROM vibescaling.posts WHERE id = '{post_a2}'") == "draft")
    # Another request holds the post (a psql session with the row locked): 409 at once.
    holder = subprocess.Popen(["psql", "-X", "-qAt", "-d", DB, "-c", "BEGIN",
                               "-c", f"SELECT 1 FROM vibescaling.posts WHERE id = '{post_a2}' FOR UPDATE",
                               "-c", "SELECT pg_sleep(4)", "-c", "ROLLBACK"], stdout=subprocess.DEVNULL)
    for _ in range(50):
        if sql(f"SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
               f"WHERE a.query LIKE '%pg_sleep(4)%' AND l.locktype = 'transactionid'") != "0":
            break
        time.sleep(0.1)
    started = time.monotonic()
    r = publish(TOKEN_A, post_a2, acct_a)
    check(f"a post another request is publishing: 409 at once (in {time.monotonic() - started:.2f} s)",
          r.status == 409 and time.monotonic() - started < 3, r)
    holder.wait()

    print("# GET /api/v1/posts/:id/publish-status")
    r = http("GET", f"/api/v1/posts/{post_a}/publish-status", token=TOKEN_A)
    data = (r.json or {}).get("data", {})
    check("200 with {\"data\": {\"publish_id\", \"status\", \"tiktok_status\"}}",
          r.status == 200 and data.get("publish_id") == publish_id and "status" in data and "tiktok_status" in data, r)
    status_is("a post without a publish record", http("GET", f"/api/v1/posts/{post_a2}/publish-status", token=TOKEN_A), 404)
    status_is("B asking about A's post", http("GET", f"/api/v1/posts/{post_a}/publish-status", token=TOKEN_B), 404)
    status_is("an unknown post", http("GET", f"/api/v1/posts/{uuid.uuid4()}/publish-status", token=TOKEN_A), 404)
    check("GET runs read-only: TikTok was asked, nothing recorded (the poller records)",
          sql(f"SELECT checked_at IS NULL FROM vibescaling.publish_records WHERE post_id = '{post_a}'") == "t")
    # PostgREST runs a STABLE function read-only whatever the method.
    r = http("POST", "/api/v1/rpc/publish_status", {"post_id": post_a}, TOKEN_A)
    check("POST /api/v1/rpc/publish_status: 200, read-only as well (the function is STABLE)",
          r.status == 200 and sql(f"SELECT checked_at IS NULL FROM vibescaling.publish_records "
                                  f"WHERE post_id = '{post_a}'") == "t", r)
    status_is("GET /api/v1/rpc/publish_status without post_id", http("GET", "/api/v1/rpc/publish_status", token=TOKEN_A), 400)

    print("# creator_info, the consent URL, disconnecting")
    r = http("POST", "/api/v1/rpc/creator_info", {"tiktok_account_id": acct_a}, TOKEN_A)
    check("POST /api/v1/rpc/creator_info for A's account: 200 with the privacy options",
          r.status == 200 and "SELF_ONLY" in r.raw.decode(), r)
    status_is("... for B's account", http("POST", "/api/v1/rpc/creator_info", {"tiktok_account_id": acct_b}, TOKEN_A), 403)
    r = http("GET", "/api/v1/rpc/authorize_url?redirect_uri=https%3A%2F%2Fapp.example%2Fcb&state=st", token=TOKEN_A)
    check("GET /api/v1/rpc/authorize_url: 200 with TikTok's consent URL",
          r.status == 200 and "client_key=sim_client_key" in r.raw.decode(), r)
    open_c = f"httpc_{RUN}"
    acct_c = connect(TOKEN_A, open_c).json["data"]["id"]
    status_is("B disconnecting A's account",
              http("POST", "/api/v1/rpc/disconnect_account", {"tiktok_account_id": acct_c}, TOKEN_B), 403)
    status_is("A disconnecting it", http("POST", "/api/v1/rpc/disconnect_account", {"tiktok_account_id": acct_c}, TOKEN_A), 200)
    check("... its tokens are wiped",
          sql(f"SELECT status || ' ' || (access_token_enc IS NULL) FROM vibescaling.tiktok_accounts WHERE id = '{acct_c}'")
          == "disconnected true",
          sql(f"SELECT status || ' ' || (access_token_enc IS NULL) FROM vibescaling.tiktok_accounts WHERE id = '{acct_c}'"))

    print("# POST /webhooks/tiktok, signed as TikTok signs")
    body, sig = signed_webhook("post.publish.complete", open_a, {"publish_id": publish_id, "publish_type": "DIRECT_PUBLISH"})
    r = http("POST", "/webhooks/tiktok", body, headers={"TikTok-Signature": sig, "Content-Type": "application/json"})
    status_is("a signed delivery", r, 200)
    check("... recorded against the publish",
          sql(f"SELECT count(*) FROM vibescaling.webhook_events WHERE publish_id = '{publish_id}'") == "1",
          sql(f"SELECT count(*) FROM vibescaling.webhook_events WHERE publish_id = '{publish_id}'"))
    status_is("the same delivery again (TikTok delivers at least once)",
              http("POST", "/webhooks/tiktok", body, headers={"TikTok-Signature": sig}), 200)
    check("... recorded once", sql(f"SELECT count(*) FROM vibescaling.webhook_events WHERE publish_id = '{publish_id}'") == "1")
    bad_body, bad_sig = signed_webhook("post.publish.complete", open_a, {"publish_id": publish_id}, secret="wrong")
    status_is("a delivery signed with another secret", http("POST", "/webhooks/tiktok", bad_body,
                                                            headers={"TikTok-Signature": bad_sig}), 403)
    status_is("a delivery without a signature", http("POST", "/webhooks/tiktok", body), 403)
    status_is("the webhook function called by a tenant",
              http("POST", "/api/v1/rpc/handle_webhook", json.loads(body), TOKEN_A, {"TikTok-Signature": sig}), 403)

    print("# TikTok's own deliveries: the simulator signs and sends its webhooks to nginx")
    sim("POST", "/_sim/config", {"webhook_url": f"{API}/webhooks/tiktok"})
    try:
        post_w = new_post(TOKEN_A, "webhooked")
        published = publish(TOKEN_A, post_w, acct_a).json["data"]["publish_id"]
        events = "0"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            events = sql(f"SELECT count(*) FROM vibescaling.webhook_events "
                         f"WHERE publish_id = '{published}' AND event = 'post.publish.complete'")
            if events == "1":
                break
            time.sleep(0.25)
        check("the simulator's post.publish.complete reached handle_webhook through nginx, signed, once",
              events == "1", events)
        check("... and set the publish record's status",
              sql(f"SELECT status FROM vibescaling.publish_records WHERE publish_id = '{published}'") == "published",
              sql(f"SELECT status FROM vibescaling.publish_records WHERE publish_id = '{published}'"))
        sent = sim("GET", f"/_sim/webhooks?event=post.publish.complete&publish_id={published}").json["webhooks"]
        check("... answered 200 at the first attempt (the simulator's own record)",
              len(sent) == 1 and sent[0]["state"] == "delivered" and sent[0]["status_code"] == 200
              and sent[0]["attempts"] == 1, sent)
    finally:
        sim("POST", "/_sim/config", {"webhook_url": None})

    print("# POST /api/v1/posts/:id/publish to several accounts (targets)")
    t1 = connect(TOKEN_A, f"{open_a}_t1").json["data"]["id"]
    t2 = connect(TOKEN_A, f"{open_a}_t2").json["data"]["id"]
    campaign = new_post(TOKEN_A, "one post, two accounts")
    r = http("POST", f"/api/v1/posts/{campaign}/publish",
             {"targets": [{"tiktok_account_id": t1, "privacy_level": "SELF_ONLY"},
                          {"tiktok_account_id": acct_b, "privacy_level": "SELF_ONLY"}]}, TOKEN_A)
    check("targets with another tenant's account: 403, and nothing sent",
          r.status == 403 and sql(f"SELECT count(*) FROM vibescaling.posts WHERE parent_id = '{campaign}'") == "0", r)
    r = http("POST", f"/api/v1/posts/{campaign}/publish",
             {"targets": [{"tiktok_account_id": t1, "privacy_level": "SELF_ONLY"},
                          {"tiktok_account_id": t2, "privacy_level": "MUTUAL_FOLLOW_FRIENDS", "caption": "t2's words"}]},
             TOKEN_A)
    answers = ((r.json or {}).get("data") or {}).get("targets") or []
    check("A publishes one post to two accounts: 200, a publish_id per target",
          r.status == 200 and len(answers) == 2 and all(a.get("publish_id", "").startswith("v_pub") for a in answers), r)
    r = http("GET", f"/api/v1/posts/{campaign}/publish-status", token=TOKEN_A)
    targets = ((r.json or {}).get("data") or {}).get("targets") or []
    check("GET .../publish-status: the post as a whole and each target",
          r.status == 200 and len(targets) == 2 and {t["tiktok_account_id"] for t in targets} == {t1, t2}, r)
    r = http("GET", f"/api/v1/posts?parent_id=eq.{campaign}&select=tiktok_account_id,status,caption", token=TOKEN_A)
    check("GET /api/v1/posts?parent_id=eq.<post>: the targets, each a post of its own",
          r.status == 200 and sorted((p["status"], p["caption"]) for p in r.json)
          == [("posted", "one post, two accounts"), ("posted", "t2's words")], r)

    print("# posting slots and the queue")
    r = http("POST", "/api/v1/rpc/set_posting_slots",
             {"tiktok_account_id": t1, "time_zone": "Europe/Paris",
              "slots": [{"weekday": "mon", "time": "09:00"}, {"weekday": "thu", "time": "18:30"}]}, TOKEN_A)
    check("POST /rpc/set_posting_slots: A's account gets two weekly slots in Paris",
          r.status == 200 and len(r.json["data"]["slots"]) == 2, r)
    status_is("... B setting slots on A's account", http("POST", "/api/v1/rpc/set_posting_slots",
              {"tiktok_account_id": t1, "time_zone": "Europe/Paris", "slots": []}, TOKEN_B), 403)
    status_is("... an unknown time zone", http("POST", "/api/v1/rpc/set_posting_slots",
              {"tiktok_account_id": t1, "time_zone": "Mars/Olympus", "slots": []}, TOKEN_A), 400)
    queued = new_post(TOKEN_A, "queued for the next slot")
    r = http("POST", "/api/v1/rpc/add_to_queue",
             {"post_id": queued, "tiktok_account_id": t1, "privacy_level": "SELF_ONLY"}, TOKEN_A)
    local = sql(f"SELECT to_char(scheduled_at AT TIME ZONE 'Europe/Paris', 'ID HH24:MI') FROM vibescaling.posts WHERE id = '{queued}'")
    check("POST /rpc/add_to_queue: scheduled into the next slot (Monday 09:00 or Thursday 18:30, Paris time)",
          r.status == 200 and r.json["data"]["status"] == "scheduled" and local in ("1 09:00", "4 18:30"), (r, local))
    r = http("GET", "/api/v1/posting_slots", token=TOKEN_B)
    check("GET /api/v1/posting_slots as B: none of A's", r.status == 200 and r.json == [], r)

    print("# campaigns: several accounts, repeating posts, CSV, caps")
    fan = new_post(TOKEN_A, "scheduled for two accounts")
    status_is("POST /rpc/schedule_targets with another tenant's account: 403",
              http("POST", "/api/v1/rpc/schedule_targets",
                   {"post_id": fan, "scheduled_at": "2030-03-04T10:00:00Z",
                    "targets": [{"tiktok_account_id": t1, "privacy_level": "SELF_ONLY"},
                                {"tiktok_account_id": acct_b, "privacy_level": "SELF_ONLY"}]}, TOKEN_A), 403)
    check("... and nothing written", sql(f"SELECT count(*) FROM vibescaling.posts WHERE parent_id = '{fan}'") == "0")
    # A time may be given as local time and an IANA zone: PostgreSQL reads it with its rules.
    r = http("POST", "/api/v1/rpc/schedule_targets",
             {"post_id": fan, "scheduled_at": "2030-03-04 11:00 Europe/Paris",
              "targets": [{"tiktok_account_id": t1, "privacy_level": "SELF_ONLY"},
                          {"tiktok_account_id": t2, "privacy_level": "SELF_ONLY", "scheduled_at": "2030-03-04T12:00:00Z"}]},
             TOKEN_A)
    answers = ((r.json or {}).get("data") or {}).get("targets") or []
    check("POST /rpc/schedule_targets: each target scheduled at its time (11:00 Paris time is 10:00 UTC)",
          r.status == 200 and sorted(a.get("scheduled_at", "")[:16] for a in answers)
          == ["2030-03-04T10:00", "2030-03-04T12:00"] and all("error" not in a for a in answers), r)
    rep = new_post(TOKEN_A, "every day at nine, Paris time")
    r = http("POST", "/api/v1/rpc/repeat_post",
             {"post_id": rep, "tiktok_account_id": t1, "rule": {"every_days": 1, "time": "09:00"},
              "time_zone": "Europe/Paris", "options": {"privacy_level": "SELF_ONLY"}, "max_count": 3}, TOKEN_A)
    rid = ((r.json or {}).get("data") or {}).get("recurrence_id")
    check("POST /rpc/repeat_post: a rule, its first occurrences scheduled",
          r.status == 200 and rid is not None and len(r.json["data"]["occurrences"]) == 3, r)
    r = http("GET", "/api/v1/recurrences", token=TOKEN_B)
    check("GET /api/v1/recurrences as B: none of A's", r.status == 200 and r.json == [], r)
    status_is("POST /rpc/change_recurrence of A's rule by B: 404",
              http("POST", "/api/v1/rpc/change_recurrence", {"recurrence_id": rid, "stop": True}, TOKEN_B), 404)
    r = http("POST", "/api/v1/rpc/change_recurrence", {"recurrence_id": rid, "stop": True}, TOKEN_A)
    check("POST /rpc/change_recurrence stop: the occurrences not sent are removed",
          r.status == 200 and r.json["data"]["removed"] == 3 and r.json["data"]["scheduled"] == []
          and r.json["data"]["stopped_at"] is not None, r)
    header = "caption,video_url,tiktok_account_id,privacy_level,scheduled_at"
    good = (f"{header}\ncsv first,https://verified.example/c1.mp4,{t1},SELF_ONLY,2030-04-01T08:00:00Z\n"
            f"csv second,https://verified.example/c2.mp4,{t2},SELF_ONLY,2030-04-01T09:00:00Z\n")
    bad = good + f"csv foreign,https://verified.example/c3.mp4,{acct_b},SELF_ONLY,2030-04-01T10:00:00Z\n"
    before = sql("SELECT count(*) FROM vibescaling.posts")
    r = http("POST", "/api/v1/rpc/import_schedule", {"csv": bad}, TOKEN_A)
    rejected = ((r.json or {}).get("data") or {}).get("rejected") or []
    check("POST /rpc/import_schedule with a row for B's account: 400, the report names line 4, nothing written",
          r.status == 400 and [x["line"] for x in rejected] == [4]
          and sql("SELECT count(*) FROM vibescaling.posts") == before, r)
    r = http("POST", "/api/v1/rpc/import_schedule", {"csv": good}, TOKEN_A)
    check("POST /rpc/import_schedule: 200, both rows scheduled as A's",
          r.status == 200 and r.json["data"]["imported"] == 2, r)
    r = http("GET", "/api/v1/rpc/export_schedule", token=TOKEN_A, headers={"Accept": "text/csv"})
    text = r.raw.decode()
    check("GET /rpc/export_schedule (Accept: text/csv): A's schedule as CSV, the imported rows in it",
          r.status == 200 and r.headers.get("Content-Type", "").startswith("text/csv")
          and text.startswith("caption,") and "csv first" in text and "csv second" in text, r)
    r = http("GET", "/api/v1/rpc/export_schedule", token=TOKEN_B, headers={"Accept": "text/csv"})
    check("... B's export has none of A's posts", r.status == 200 and "csv first" not in r.raw.decode(), r)
    r = http("GET", f"/api/v1/rpc/account_caps?tiktok_account_id=eq.{t1}", token=TOKEN_A)
    want = sql(f"SELECT string_agg(day || ':' || direct_posts || '/' || daily_cap, ',' ORDER BY day) "
               f"FROM vibescaling.account_caps WHERE tiktok_account_id = '{t1}'")
    check("GET /rpc/account_caps?tiktok_account_id=eq.<id>: the account's 8 days as account_caps counts them",
          r.status == 200 and ",".join(f"{c['day']}:{c['direct_posts']}/{c['daily_cap']}" for c in r.json) == want, (r, want))
    r = http("GET", "/api/v1/rpc/account_caps", token=TOKEN_B)
    check("GET /rpc/account_caps as B: only B's accounts",
          r.status == 200 and r.json and {c["tiktok_account_id"] for c in r.json} == {acct_b}, r)

    print("# tenant isolation, paging")
    # A snapshot of A's published post, as collect_metrics takes them.
    sql(f"INSERT INTO vibescaling.post_metrics (publish_record_id, post_id, tiktok_account_id, video_id, view_count, owner) "
        f"SELECT r.id, r.post_id, r.tiktok_account_id, 7300000000000000123, 42, '{TENANT_A}' "
        f"FROM vibescaling.publish_records r WHERE r.post_id = '{post_a}' LIMIT 1")
    for rel in ("posts", "accounts", "publish_records", "dispatch_logs", "dispatch_stats", "dispatch_failures",
                "posts_per_account_day", "schedule_delay", "post_metrics", "account_metrics"):
        r = http("GET", f"/api/v1/{rel}", token=TOKEN_B)
        leaked = [row for row in (r.json or []) if post_a in json.dumps(row) or acct_a in json.dumps(row)
                  or open_a in json.dumps(row)]
        check(f"GET /api/v1/{rel} as B: 200, nothing of A's", r.status == 200 and not leaked, r)
        status_is(f"GET /api/v1/{rel} without a JWT", http("GET", f"/api/v1/{rel}"), 401)
    r = http("GET", "/api/v1/dispatch_stats", token=TOKEN_A)
    own = sql(f"SELECT count(*) FROM vibescaling.dispatch_logs WHERE tiktok_account_id IN "
              f"(SELECT id FROM vibescaling.tiktok_accounts WHERE owner = '{TENANT_A}')")
    check(f"GET /api/v1/dispatch_stats: A counts exactly its own {own} calls",
          r.status == 200 and str(sum(row["attempts"] for row in r.json)) == own, r)
    r = http("GET", "/api/v1/post_metrics", token=TOKEN_A)
    check("GET /api/v1/post_metrics: A's post with its views, and its 19-digit video id exact (a string)",
          r.status == 200 and [(row["post_id"], row["view_count"], row["video_id"]) for row in r.json]
          == [(post_a, 42, "7300000000000000123")], r)
    r = http("GET", "/api/v1/posts_per_account_day", token=TOKEN_A)
    posted = sql(f"SELECT count(*) FROM vibescaling.posts WHERE owner = '{TENANT_A}' AND status = 'posted'")
    check(f"GET /api/v1/posts_per_account_day: A's {posted} posts",
          r.status == 200 and str(sum(row["posted"] for row in r.json)) == posted, r)
    mine = http("GET", "/api/v1/dispatch_logs?select=id", token=TOKEN_A)
    r = http("GET", "/api/v1/dispatch_logs?select=id&order=id", token=TOKEN_A, headers={"Range": "0-1", "Prefer": "count=exact"})
    check(f"dispatch_logs paged with Range: 206, two rows, Content-Range 0-1/{len(mine.json)}",
          r.status == 206 and len(r.json) == 2 and r.headers.get("Content-Range") == f"0-1/{len(mine.json)}",
          (r, r.headers.get("Content-Range")))
    r = http("GET", "/api/v1/dispatch_logs?select=id&order=id&limit=1&offset=1", token=TOKEN_A)
    check("... and with limit/offset", r.status == 200 and len(r.json) == 1, r)

    print("# the tenant's own drafts are deleted; the other tenant's are not")
    post_b = new_post(TOKEN_B, "b's draft")
    status_is("DELETE /api/v1/posts/:id of A's draft by A", http("DELETE", f"/api/v1/posts/{post_a2}", token=TOKEN_A), 200)
    check("... gone", sql(f"SELECT count(*) FROM vibescaling.posts WHERE id = '{post_a2}'") == "0")
    check("... B's draft is still there", sql(f"SELECT count(*) FROM vibescaling.posts WHERE id = '{post_b}'") == "1")

    print(f"http_api: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
