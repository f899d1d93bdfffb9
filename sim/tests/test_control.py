"""The control API under /_sim/: health, config, reset, users (single and bulk), forced
publish states, the request log (sim/tiktok/control.py).

Run all the simulator's tests from the repository's root:
    python3 -m unittest discover -s sim/tests -t .
"""

import hashlib
import json
import time

from sim.tests.helpers import PROCESSING, VERIFIED_URL, SimTestCase


class ControlApiTests(SimTestCase):
    """Health, config, reset, users, publishes, request log."""

    # Health answers ok.
    def test_health(self):
        self.assertEqual(self.call("GET", "/_sim/health")[::2], (200, {"ok": True}))

    # Config can be read, changed, rejects unknown keys, and reset restores defaults.
    def test_config_and_reset(self):
        cfg = self.call("GET", "/_sim/config")[2]
        self.assertEqual(cfg["processing_seconds"], PROCESSING)
        self.assertEqual(cfg["client_key"], "sim_client_key")
        self.assertEqual(cfg["verified_url_prefixes"],
                         ["https://verified.example/", "https://cdn.vibescaling.test/"])
        self.user()
        self.init_pull()
        cfg = self.config(latency_ms=5, audited=False, active_user_cap=3, rate_limits=False)
        self.assertEqual((cfg["latency_ms"], cfg["audited"], cfg["active_user_cap"],
                          cfg["rate_limits"]), (5, False, 3, False))
        status, _, body = self.call("POST", "/_sim/config", body={"no_such_key": 1})
        self.assertEqual(status, 400)
        self.assertIn("no_such_key", body["error"])
        self.call("POST", "/_sim/reset")
        cfg = self.call("GET", "/_sim/config")[2]
        self.assertEqual((cfg["latency_ms"], cfg["audited"], cfg["active_user_cap"],
                          cfg["rate_limits"]), (0, True, None, True))
        self.assertEqual(self.call("GET", "/_sim/users")[2]["users"], [])
        self.assertEqual(self.call("GET", "/_sim/publishes")[2]["publishes"], [])
        self.assertEqual(self.requests_log(), [])

    # Users list shows hashes, never raw tokens.
    def test_users_hide_tokens(self):
        self.user("secret_token_123", open_id="ou_1", refresh_token="secret_refresh_9",
                  nickname="Nick")
        status, _, raw = self.call("GET", "/_sim/users", headers={"Accept": "application/json"})
        text = json.dumps(raw)
        self.assertNotIn("secret_token_123", text)
        self.assertNotIn("secret_refresh_9", text)
        user = raw["users"][0]
        self.assertEqual(user["open_id"], "ou_1")
        self.assertEqual(len(user["token_hash"]), 16)
        self.assertEqual(user["nickname"], "Nick")
        for key in ("refresh_count", "direct_posts_24h", "pending_shares", "publishes"):
            self.assertIn(key, user)

    # Control API validates user bodies.
    def test_users_validation(self):
        self.assertEqual(self.call("POST", "/_sim/users", body={"open_id": "x"})[0], 400)
        self.assertEqual(self.call("POST", "/_sim/users",
                                   body={"access_token": "t", "bogus": 1})[0], 400)
        self.assertEqual(self.call("POST", "/_sim/users",
                                   body={"access_token": "t", "cannot_post": "nope"})[0], 400)

    # token_valid false and past expiry both make the token invalid; merge update works.
    def test_token_invalid_and_expired(self):
        self.user("tok_bad", token_valid=False)
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "tok_bad"),
                            401, "access_token_invalid")
        self.user("tok_old", open_id="ou_old", expires_in=-1)
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "tok_old"),
                            401, "access_token_invalid")
        self.user("tok_ok", open_id="ou_ok")
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "tok_ok"), 200, "ok")
        status, _, body = self.call("POST", "/_sim/users/ou_ok", body={"token_valid": False})
        self.assertEqual(status, 200, body)
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "tok_ok"),
                            401, "access_token_invalid")

    # Forcing a publish state via the control API.
    def test_force_publish_state(self):
        self.config(processing_seconds=60)
        pid = self.init_pull()
        status, _, body = self.call("POST", f"/_sim/publishes/{pid}",
                                    body={"status": "FAILED", "fail_reason": "duration_check_failed"})
        self.assertEqual(status, 200, body)
        data = self.status_of(pid)
        self.assertEqual((data["status"], data["fail_reason"]), ("FAILED", "duration_check_failed"))
        self.call("POST", f"/_sim/publishes/{pid}", body={"status": "PUBLISH_COMPLETE"})
        data = self.status_of(pid)
        self.assertEqual(data["status"], "PUBLISH_COMPLETE")
        self.assertNotIn("fail_reason", data)
        self.assertEqual(len(data["publicaly_available_post_id"]), 1)
        self.assertEqual(self.call("POST", "/_sim/publishes/nope", body={"status": "FAILED"})[0], 404)
        self.assertEqual(self.call("POST", f"/_sim/publishes/{pid}", body={"status": "BAD"})[0], 400)
        listed = self.call("GET", "/_sim/publishes")[2]["publishes"]
        self.assertEqual([p["publish_id"] for p in listed], [pid])
        for key in ("open_id", "endpoint", "source", "mode", "status", "fail_reason", "title",
                    "video_url", "photo_images", "created_at", "uploaded_bytes", "post_ids"):
            self.assertIn(key, listed[0])

    # Request log: fields, filters, since, redaction, clearing.
    def test_request_log(self):
        self.user("tok_log_secret", open_id="ou_log")
        self.api("/v2/post/publish/creator_info/query/", {}, "tok_log_secret")
        pid = self.init_pull("tok_log_secret")
        self.form("/v2/oauth/token/", {"client_key": "sim_client_key",
                                       "client_secret": "sim_client_secret",
                                       "grant_type": "authorization_code", "code": "code-ou_x"})
        entries = self.requests_log()
        self.assertEqual([e["endpoint"] for e in entries],
                         ["creator_info", "video_init", "oauth_token"])
        init = entries[1]
        for key in ("seq", "time", "received", "method", "path", "endpoint", "open_id", "http_status",
                    "error_code", "publish_id", "body", "fault"):
            self.assertIn(key, init)
        self.assertEqual((init["open_id"], init["publish_id"], init["http_status"],
                          init["error_code"], init["fault"]), ("ou_log", pid, 200, "ok", None))
        self.assertEqual(init["body"]["source_info"]["video_url"], VERIFIED_URL)
        oauth = entries[2]
        self.assertEqual(oauth["body"]["client_secret"], "***")
        self.assertEqual(oauth["body"]["code"], "***")
        self.assertEqual(oauth["open_id"], "ou_x")
        self.assertNotIn("tok_log_secret", json.dumps(entries))
        self.assertEqual([e["endpoint"] for e in self.requests_log(endpoint="video_init")],
                         ["video_init"])
        self.assertEqual(len(self.requests_log(open_id="ou_log")), 2)
        self.assertEqual([e["seq"] for e in self.requests_log(since=entries[1]["seq"])],
                         [entries[2]["seq"]])
        self.assertEqual(self.call("DELETE", "/_sim/requests")[0], 200)
        self.assertEqual(self.requests_log(), [])

    # Unknown control paths answer 404.
    def test_unknown_control_path(self):
        self.assertEqual(self.call("GET", "/_sim/nothing")[0], 404)


class BulkUserTests(SimTestCase):
    """POST /_sim/users/bulk and the per-user token/publish indexes behind users."""

    # POST /_sim/users/bulk; returns (status, body).
    def bulk(self, body):
        status, _, reply = self.call("POST", "/_sim/users/bulk", body=body)
        return status, reply

    # Bulk users look exactly like POST /_sim/users with the same open_id and tokens.
    def test_bulk_users_match_single_users(self):
        self.assertEqual(self.bulk({"count": 3, "prefix": "bench"}),
                         (200, {"ok": True, "created": 3}))
        self.user("act.solo-1", open_id="solo-1", refresh_token="rft.solo-1")
        users = {u["open_id"]: u for u in self.call("GET", "/_sim/users")[2]["users"]}
        self.assertEqual(sorted(users), ["bench-1", "bench-2", "bench-3", "solo-1"])
        self.assertEqual(users["bench-2"]["token_hash"],
                         hashlib.sha256(b"act.bench-2").hexdigest()[:16])
        ignore = {"open_id", "union_id", "nickname", "username", "avatar_url", "token_hash",
                  "tokens"}
        bench, solo = users["bench-1"], users["solo-1"]
        self.assertEqual({k: v for k, v in bench.items() if k not in ignore},
                         {k: v for k, v in solo.items() if k not in ignore})
        self.assertEqual((bench["token_valid"], bench["expires_at"], bench["scopes"]),
                         (True, None, ["user.info.basic", "video.publish", "video.upload"]))
        self.assertEqual((bench["nickname"], bench["username"]), ("Sim Creator bench-1",
                                                                  "sim_bench-1"))

    # Bulk tokens work for creator_info, video_init and user_info; the refresh token rotates.
    def test_bulk_tokens_work(self):
        self.bulk({"count": 2, "prefix": "b_2-x"})
        data = self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {},
                                            "act.b_2-x-2"), 200, "ok")
        self.assertEqual(data["creator_username"], "sim_b_2-x-2")
        self.assertEqual(data["privacy_level_options"],
                         ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"])
        pid = self.init_pull("act.b_2-x-2")
        self.assertEqual(self.requests_log(publish_id=pid)[0]["open_id"], "b_2-x-2")
        data = self.assertEnvelope(self.call("GET", "/v2/user/info/?fields=open_id",
                                             token="act.b_2-x-1"), 200, "ok")
        self.assertEqual(data["user"]["open_id"], "b_2-x-1")
        refresh = {"client_key": "sim_client_key", "client_secret": "sim_client_secret",
                   "grant_type": "refresh_token", "refresh_token": "rft.b_2-x-1"}
        status, _, body = self.form("/v2/oauth/token/", refresh)
        self.assertEqual((status, body["open_id"]), (200, "b_2-x-1"), body)
        self.assertEqual(self.form("/v2/oauth/token/", refresh)[0], 400)   # rotated away
        users = {u["open_id"]: u for u in self.call("GET", "/_sim/users")[2]["users"]}
        self.assertEqual((users["b_2-x-1"]["refresh_count"], len(users["b_2-x-1"]["tokens"])),
                         (1, 2))
        self.assertEqual((users["b_2-x-2"]["direct_posts_24h"], users["b_2-x-2"]["publishes"]),
                         (1, 1))
        self.assertEqual((users["b_2-x-1"]["direct_posts_24h"], users["b_2-x-1"]["publishes"]),
                         (0, 0))

    # Optional scopes apply to every user; running again replaces the users.
    def test_bulk_scopes_and_replace(self):
        self.bulk({"count": 2, "prefix": "s", "scopes": ["user.info.basic"]})
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "act.s-1"),
                            401, "scope_not_authorized")
        self.assertEqual(self.bulk({"count": 2, "prefix": "s", "scopes": "video.publish"}),
                         (200, {"ok": True, "created": 2}))
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "act.s-1"),
                            200, "ok")
        self.assertEqual(len(self.call("GET", "/_sim/users")[2]["users"]), 2)

    # 10,000 users in one call, well under a second.
    def test_bulk_ten_thousand_fast(self):
        started = time.monotonic()
        self.assertEqual(self.bulk({"count": 10000, "prefix": "bench"}),
                         (200, {"ok": True, "created": 10000}))
        self.assertLess(time.monotonic() - started, 1.0)
        for i in (1, 5000, 10000):
            self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {},
                                         f"act.bench-{i}"), 200, "ok")
        self.assertEqual(self.call("GET", "/_sim/users/bench-10000")[0], 404)  # POST only
        status, _, body = self.call("POST", "/_sim/users/bench-10000", body={"nickname": "N"})
        self.assertEqual((status, body["nickname"], body["token_valid"]), (200, "N", True))

    # Bad input answers 400 like other control errors and creates nobody.
    def test_bulk_bad_input(self):
        bad = [
            {"prefix": "p"}, {"count": 0, "prefix": "p"}, {"count": -1, "prefix": "p"},
            {"count": 100001, "prefix": "p"}, {"count": "10", "prefix": "p"},
            {"count": 1.5, "prefix": "p"}, {"count": True, "prefix": "p"},
            {"count": 2}, {"count": 2, "prefix": ""}, {"count": 2, "prefix": "a b"},
            {"count": 2, "prefix": "x" * 41}, {"count": 2, "prefix": "caf\u00e9"},
            {"count": 2, "prefix": "ab\n"}, {"count": 2, "prefix": "a/b"},
            {"count": 2, "prefix": 7}, {"count": 2, "prefix": None},
            {"count": 2, "prefix": "p", "scopes": 5}, {"count": 2, "prefix": "p", "scopes": [1]},
            {"count": 2, "prefix": "p", "nickname": "x"}, [{"count": 2, "prefix": "p"}],
        ]
        for body in bad:
            status, reply = self.bulk(body)
            self.assertEqual(status, 400, body)
            self.assertEqual(reply["ok"], False, body)
            self.assertIsInstance(reply["error"], str)
        status, _, reply = self.call("POST", "/_sim/users/bulk", raw=b"{not json",
                                     headers={"Content-Type": "application/json"})
        self.assertEqual((status, reply["ok"]), (400, False))
        self.assertEqual(self.bulk({"count": 100000, "prefix": "x" * 40})[0], 200)
        self.call("POST", "/_sim/reset")
        self.bulk({"count": 2, "prefix": "p", "scopes": 5})
        self.assertEqual(self.call("GET", "/_sim/users")[2]["users"], [])

    # Moving an access token to another user moves it in the per-user index too.
    def test_token_moves_between_users(self):
        self.user("tok_m", open_id="ou_a")
        self.user("tok_a2", open_id="ou_a")
        self.user("tok_m", open_id="ou_b")
        users = {u["open_id"]: u for u in self.call("GET", "/_sim/users")[2]["users"]}
        self.assertEqual([t["token_hash"] for t in users["ou_a"]["tokens"]],
                         [hashlib.sha256(b"tok_a2").hexdigest()[:16]])
        self.assertEqual(users["ou_b"]["token_hash"], hashlib.sha256(b"tok_m").hexdigest()[:16])
        self.call("POST", "/_sim/users/ou_a", body={"token_valid": False})
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "tok_m"),
                            200, "ok")
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "tok_a2"),
                            401, "access_token_invalid")
