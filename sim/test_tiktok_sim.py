"""Tests for the TikTok API simulator (stdlib unittest, in-process server on a free port).

Run from the repository's root: python3 -m unittest sim.test_tiktok_sim -v
"""

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
import unittest
import zlib
from urllib.parse import urlencode, urlsplit

from sim.tiktok.common import CANNOT_POST_CODES, token_hash
from sim.tiktok.publish import chunk_rule_violation
from sim.tiktok.server import make_server

PROCESSING = 0.3          # seconds of simulated processing in these tests
VERIFIED_URL = "https://verified.example/clip.mp4"
PHOTO_URL = "https://cdn.vibescaling.test/p/1.jpg"
MB = 1024 * 1024
GiB = 1024 * MB

# Expected media headers, written out independently of the simulator's constants.
MEDIA_HEADERS = {
    "mp4": bytes([0, 0, 0, 0x18]) + b"ftypisom" + bytes([0, 0, 2, 0]) + b"isommp41",
    "mov": bytes([0, 0, 0, 0x14]) + b"ftypqt  " + bytes([0, 0, 2, 0]) + b"qt  ",
    "webm": bytes([0x1A, 0x45, 0xDF, 0xA3, 0, 0, 0, 0]),
}


# Reference bytes [first, last] of a synthetic media file (slow; for small spans only).
def expected_media(kind, first, last):
    header = MEDIA_HEADERS[kind]
    return bytes(header[i] if i < len(header) else (i * 31 + 7) & 0xFF
                 for i in range(first, last + 1))


# Reference CRC32 of a whole synthetic media file, built from its 256-byte period.
def expected_media_crc(kind, size):
    header = MEDIA_HEADERS[kind][:size]
    period = bytes((i * 31 + 7) & 0xFF for i in range(256))
    block = period * 4096                   # 1 MiB, starting at a multiple of 256
    crc = zlib.crc32(header)
    offset = len(header)
    if offset < size:                       # the rest of the first 256-byte period
        head = period[offset:min(256, size)]
        crc = zlib.crc32(head, crc)
        offset += len(head)
    while offset < size:
        piece = block[:size - offset]
        crc = zlib.crc32(piece, crc)
        offset += len(piece)
    return crc


class SimTestCase(unittest.TestCase):
    """Starts one simulator for the module; every test begins from /_sim/reset."""

    # Start the server in a background thread.
    @classmethod
    def setUpClass(cls):
        cls.server = make_server("127.0.0.1", 0, processing_seconds=PROCESSING, quiet=True)
        cls.port = cls.server.server_address[1]
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()

    # Stop the server.
    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    # Reset all simulator state before each test.
    def setUp(self):
        status, _, body = self.call("POST", "/_sim/reset")
        self.assertEqual((status, body), (200, {"ok": True}))

    # ---- HTTP helpers ------------------------------------------------------

    # One HTTP request on a fresh connection; returns (status, headers, parsed body).
    def call(self, method, path, body=None, token=None, headers=None, raw=None, conn=None):
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json; charset=UTF-8")
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            ctype = resp.getheader("Content-Type", "")
            parsed = payload
            if payload and ctype.startswith("application/json"):
                try:
                    parsed = json.loads(payload)
                except ValueError:
                    parsed = payload
            return resp.status, resp, parsed
        finally:
            if own:
                conn.close()

    # POST a JSON body to a TikTok endpoint with a bearer token.
    def api(self, path, body, token="tok_a"):
        return self.call("POST", path, body=body, token=token)

    # POST a form to an OAuth endpoint.
    def form(self, path, fields):
        return self.call("POST", path, raw=urlencode(fields).encode(),
                         headers={"Content-Type": "application/x-www-form-urlencoded"})

    # Assert an envelope reply with the given HTTP status and error.code; returns data.
    def assertEnvelope(self, result, status, code):
        got_status, _, body = result
        self.assertIsInstance(body, dict, body)
        self.assertEqual((got_status, body["error"]["code"]), (status, code), body)
        self.assertIn("log_id", body["error"])
        self.assertTrue(body["error"]["log_id"])
        self.assertIn("message", body["error"])
        return body["data"]

    # Create a user through the control API.
    def user(self, token="tok_a", **fields):
        status, _, body = self.call("POST", "/_sim/users", body={"access_token": token, **fields})
        self.assertEqual(status, 200, body)
        return body

    # Change config through the control API.
    def config(self, **values):
        status, _, body = self.call("POST", "/_sim/config", body=values)
        self.assertEqual(status, 200, body)
        return body

    # A valid Direct Post video init body.
    @staticmethod
    def video_body(privacy="PUBLIC_TO_EVERYONE", url=VERIFIED_URL, **post_info):
        return {"post_info": {"title": "hello #sim", "privacy_level": privacy, **post_info},
                "source_info": {"source": "PULL_FROM_URL", "video_url": url}}

    # Init a Direct Post from a URL; returns publish_id.
    def init_pull(self, token="tok_a", url=VERIFIED_URL, privacy="PUBLIC_TO_EVERYONE"):
        data = self.assertEnvelope(self.api("/v2/post/publish/video/init/",
                                            self.video_body(privacy, url), token), 200, "ok")
        return data["publish_id"]

    # Fetch a publish's status data.
    def status_of(self, publish_id, token="tok_a"):
        return self.assertEnvelope(self.api("/v2/post/publish/status/fetch/",
                                            {"publish_id": publish_id}, token), 200, "ok")

    # Poll until a publish reaches a status (or fail the test).
    def wait_status(self, publish_id, wanted, token="tok_a", timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            data = self.status_of(publish_id, token)
            if data["status"] == wanted:
                return data
            time.sleep(0.05)
        self.fail(f"{publish_id} never reached {wanted}; last {data}")

    # Requests in the simulator's log, optionally filtered.
    def requests_log(self, **filters):
        query = ("?" + urlencode(filters)) if filters else ""
        return self.call("GET", "/_sim/requests" + query)[2]["requests"]


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
        cfg = self.config(latency_ms=5, unaudited=True, rate_limits=False)
        self.assertEqual((cfg["latency_ms"], cfg["unaudited"], cfg["rate_limits"]), (5, True, False))
        status, _, body = self.call("POST", "/_sim/config", body={"no_such_key": 1})
        self.assertEqual(status, 400)
        self.assertIn("no_such_key", body["error"])
        self.call("POST", "/_sim/reset")
        cfg = self.call("GET", "/_sim/config")[2]
        self.assertEqual((cfg["latency_ms"], cfg["unaudited"], cfg["rate_limits"]), (0, False, True))
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


class AuthAndCreatorInfoTests(SimTestCase):
    """Bearer tokens, auto users, scopes and creator_info."""

    # Unknown paths answer 404 with the envelope.
    def test_unknown_path(self):
        self.assertEnvelope(self.call("GET", "/v2/nothing/"), 404, "not_found")
        self.assertEnvelope(self.call("GET", "/v2/post/publish/video/init/", token="t"),
                            404, "not_found")

    # Missing or invalid bearer tokens answer 401 access_token_invalid.
    def test_missing_and_invalid_tokens(self):
        path = "/v2/post/publish/creator_info/query/"
        self.assertEnvelope(self.call("POST", path, body={}), 401, "access_token_invalid")
        self.assertEnvelope(self.api(path, {}, "invalid_xyz"), 401, "access_token_invalid")
        self.config(auto_users=False)
        self.assertEnvelope(self.api(path, {}, "brand_new"), 401, "access_token_invalid")

    # An unknown token becomes an auto user with a public profile.
    def test_auto_user(self):
        data = self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "t1"),
                                   200, "ok")
        self.assertEqual(data["privacy_level_options"],
                         ["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"])
        for key in ("creator_avatar_url", "creator_username", "creator_nickname",
                    "comment_disabled", "duet_disabled", "stitch_disabled",
                    "max_video_post_duration_sec"):
            self.assertIn(key, data)
        users = self.call("GET", "/_sim/users")[2]["users"]
        self.assertEqual(users[0]["open_id"], "auto_" + token_hash("t1", 8))

    # Private accounts and explicit overrides change the privacy options.
    def test_privacy_options(self):
        self.user("tok_p", private_account=True, comment_disabled=True)
        data = self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "tok_p"),
                                   200, "ok")
        self.assertEqual(data["privacy_level_options"],
                         ["FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS", "SELF_ONLY"])
        self.assertTrue(data["comment_disabled"])
        self.user("tok_o", privacy_level_options=["SELF_ONLY"])
        data = self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "tok_o"),
                                   200, "ok")
        self.assertEqual(data["privacy_level_options"], ["SELF_ONLY"])

    # cannot_post answers HTTP 200 with the code and empty data.
    def test_cannot_post(self):
        for code in CANNOT_POST_CODES:
            self.user("tok_c", cannot_post=code)
            data = self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "tok_c"),
                                       200, code)
            self.assertEqual(data, {})

    # Missing video.publish scope answers 401 scope_not_authorized.
    def test_scope_not_authorized(self):
        self.user("tok_s", scopes=["user.info.basic", "video.upload"])
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "tok_s"),
                            401, "scope_not_authorized")
        self.assertEnvelope(self.api("/v2/post/publish/video/init/", self.video_body(), "tok_s"),
                            401, "scope_not_authorized")
        self.user("tok_u", scopes=["user.info.basic", "video.publish"])
        self.assertEnvelope(self.api("/v2/post/publish/inbox/video/init/",
                                     {"source_info": {"source": "PULL_FROM_URL",
                                                      "video_url": VERIFIED_URL}}, "tok_u"),
                            401, "scope_not_authorized")

    # user_info returns only the requested fields.
    def test_user_info(self):
        self.user("tok_i", open_id="ou_i", nickname="Ivy")
        status, _, body = self.call("GET", "/v2/user/info/?fields=open_id,union_id,avatar_url,"
                                    "display_name", token="tok_i")
        self.assertEqual(status, 200)
        user = body["data"]["user"]
        self.assertEqual(set(user), {"open_id", "union_id", "avatar_url", "display_name"})
        self.assertEqual((user["open_id"], user["display_name"]), ("ou_i", "Ivy"))
        self.assertEnvelope(self.call("GET", "/v2/user/info/?fields=open_id", token="invalid1"),
                            401, "access_token_invalid")
        self.assertEnvelope(self.call("GET", "/v2/user/info/?fields=nope", token="tok_i"),
                            400, "invalid_param")


class VideoInitTests(SimTestCase):
    """Direct Post validation."""

    PATH = "/v2/post/publish/video/init/"

    # A valid PULL_FROM_URL init returns a v_pub_url publish id.
    def test_pull_success(self):
        pid = self.init_pull()
        self.assertRegex(pid, r"^v_pub_url~v2\.\d+$")
        self.assertLessEqual(len(pid), 64)

    # Body must be a JSON object.
    def test_body_must_be_object(self):
        self.assertEnvelope(self.call("POST", self.PATH, raw=b"not json", token="t"),
                            400, "invalid_param")
        self.assertEnvelope(self.api(self.PATH, [1, 2]), 400, "invalid_param")

    # privacy_level missing or not offered answers 403.
    def test_privacy_mismatch(self):
        body = self.video_body()
        del body["post_info"]["privacy_level"]
        self.assertEnvelope(self.api(self.PATH, body), 403, "privacy_level_option_mismatch")
        self.assertEnvelope(self.api(self.PATH, self.video_body("FOLLOWER_OF_CREATOR")),
                            403, "privacy_level_option_mismatch")
        self.user("tok_priv", private_account=True)
        self.assertEnvelope(self.api(self.PATH, self.video_body(), "tok_priv"),
                            403, "privacy_level_option_mismatch")

    # Branded content cannot be SELF_ONLY.
    def test_branded_self_only(self):
        self.assertEnvelope(self.api(self.PATH, self.video_body("SELF_ONLY",
                                                                brand_content_toggle=True)),
                            400, "invalid_param")
        self.init_pull(privacy="SELF_ONLY")

    # Title limit counts UTF-16 code units (an emoji counts 2).
    def test_title_length(self):
        ok = self.video_body()
        ok["post_info"]["title"] = "\U0001F600" * 1100           # 2200 units
        self.assertEnvelope(self.api(self.PATH, ok), 200, "ok")
        bad = self.video_body()
        bad["post_info"]["title"] = "\U0001F600" * 1100 + "x"    # 2201 units
        self.assertEnvelope(self.api(self.PATH, bad), 400, "invalid_param")

    # A creator's disabled interactions must be disabled in the request.
    def test_interaction_toggles(self):
        self.user("tok_t", comment_disabled=True, duet_disabled=True)
        self.assertEnvelope(self.api(self.PATH, self.video_body(), "tok_t"), 400, "invalid_param")
        self.assertEnvelope(self.api(self.PATH, self.video_body(disable_comment=True), "tok_t"),
                            400, "invalid_param")
        self.assertEnvelope(self.api(self.PATH, self.video_body(disable_comment=True,
                                                                disable_duet=True), "tok_t"),
                            200, "ok")

    # Banned users and cannot_post users get 403.
    def test_banned(self):
        self.user("tok_b", banned=True)
        self.assertEnvelope(self.api(self.PATH, self.video_body(), "tok_b"),
                            403, "spam_risk_user_banned_from_posting")

    # The daily Direct Post cap answers 403 spam_risk_too_many_posts.
    def test_daily_cap(self):
        self.user("tok_d", daily_post_cap=2)
        self.init_pull("tok_d")
        self.init_pull("tok_d")
        self.assertEnvelope(self.api(self.PATH, self.video_body(), "tok_d"),
                            403, "spam_risk_too_many_posts")
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "tok_d"),
                            200, "spam_risk_too_many_posts")

    # Unaudited apps may only post SELF_ONLY to private accounts.
    def test_unaudited(self):
        self.config(unaudited=True)
        self.assertEnvelope(self.api(self.PATH, self.video_body("SELF_ONLY")),
                            403, "unaudited_client_can_only_post_to_private_accounts")
        self.user("tok_pa", private_account=True)
        self.assertEnvelope(self.api(self.PATH, self.video_body("MUTUAL_FOLLOW_FRIENDS"), "tok_pa"),
                            403, "unaudited_client_can_only_post_to_private_accounts")
        self.init_pull("tok_pa", privacy="SELF_ONLY")

    # PULL_FROM_URL needs https, a host name and a verified prefix.
    def test_url_ownership(self):
        self.config(rate_limits=False)
        bad_urls = ["http://verified.example/v.mp4", "https://127.0.0.1/v.mp4",
                    "https://[::1]/v.mp4", "https://unverified.example/v.mp4",
                    "https://verified.example.evil.test/v.mp4", "ftp://verified.example/v.mp4"]
        for url in bad_urls:
            with self.subTest(url=url):
                self.assertEnvelope(self.api(self.PATH, self.video_body(url=url)),
                                    403, "url_ownership_unverified")
        self.init_pull(url="https://cdn.vibescaling.test/a/b.mp4")
        self.config(verified_url_prefixes=["https://mine.test/videos/"])
        self.assertEnvelope(self.api(self.PATH, self.video_body()), 403, "url_ownership_unverified")
        self.init_pull(url="https://mine.test/videos/x.mp4")

    # FILE_UPLOAD sizes must follow the chunk rules.
    def test_file_upload_rules_http(self):
        # A FILE_UPLOAD init body with the given sizes.
        def body(size, chunk, count):
            return {"post_info": {"privacy_level": "SELF_ONLY"},
                    "source_info": {"source": "FILE_UPLOAD", "video_size": size,
                                    "chunk_size": chunk, "total_chunk_count": count}}
        data = self.assertEnvelope(self.api(self.PATH, body(1000, 1000, 1)), 200, "ok")
        self.assertRegex(data["publish_id"], r"^v_pub_file~v2\.\d+$")
        self.assertRegex(data["upload_url"],
                         rf"^http://127\.0\.0\.1:{self.port}/upload/\w+\?upload_token=\S+$")
        self.assertEnvelope(self.api(self.PATH, body(1000, 500, 2)), 400, "invalid_param")

    # The chunk rule checker itself.
    def test_chunk_rules(self):
        valid = [(1, 1, 1), (5 * MB - 1, 5 * MB - 1, 1), (5 * MB, 5 * MB, 1),
                 (50_000_123, 10_000_000, 5), (100 * MB, 64 * MB, 1), (4 * 1024 * MB, 64 * MB, 64),
                 (819 * 5 * MB, 5 * MB, 819)]
        invalid = [(0, 0, 1), (1000, 500, 2), (4 * MB, 4 * MB, 2), (10 * MB, 4 * MB, 2),
                   (130 * MB, 65 * MB, 2), (200 * MB, 64 * MB, 4), (10 * MB, 5 * MB, 1),
                   (129 * MB + 1, 64 * MB + MB, 1), (4 * 1024 * MB + 1, 64 * MB, 64),
                   (1001 * 5 * MB, 5 * MB, 1001), (10 * MB, 20 * MB, 0), ("1", 1, 1), (True, 1, 1)]
        for args in valid:
            self.assertIsNone(chunk_rule_violation(*args), args)
        for args in invalid:
            self.assertIsNotNone(chunk_rule_violation(*args), args)

    # Missing or unknown source_info answers 400.
    def test_bad_source(self):
        body = self.video_body()
        body["source_info"] = {"source": "SOMETHING"}
        self.assertEnvelope(self.api(self.PATH, body), 400, "invalid_param")
        del body["source_info"]
        self.assertEnvelope(self.api(self.PATH, body), 400, "invalid_param")


class StatusAndCancelTests(SimTestCase):
    """Asynchronous status progress, failures, ownership, cancel."""

    # A Direct Post goes PROCESSING_DOWNLOAD -> PUBLISH_COMPLETE -> post id visible.
    def test_direct_post_progress(self):
        self.config(processing_seconds=0.6)      # a wide window between COMPLETE and the id
        pid = self.init_pull()
        first = self.status_of(pid)
        self.assertEqual(first["status"], "PROCESSING_DOWNLOAD")
        self.assertEqual(first["publicaly_available_post_id"], [])
        self.assertNotIn("fail_reason", first)
        self.assertIn("downloaded_bytes", first)
        done = self.wait_status(pid, "PUBLISH_COMPLETE")
        self.assertEqual(done["publicaly_available_post_id"], [])
        time.sleep(0.65)
        status, resp, raw = self.call("POST", "/v2/post/publish/status/fetch/",
                                      body={"publish_id": pid}, token="tok_a")
        ids = raw["data"]["publicaly_available_post_id"]
        self.assertEqual(len(ids), 1)
        self.assertGreater(ids[0], 2 ** 53)
        self.assertEqual(len(str(ids[0])), 19)
        # The raw JSON text carries the id as an exact integer literal.
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        conn.request("POST", "/v2/post/publish/status/fetch/", body=json.dumps({"publish_id": pid}),
                     headers={"Authorization": "Bearer tok_a"})
        text = conn.getresponse().read().decode()
        conn.close()
        self.assertIn(f'"publicaly_available_post_id": [{ids[0]}]', text)

    # sim_fail in the URL ends FAILED with that reason, still HTTP 200 ok.
    def test_sim_fail(self):
        pid = self.init_pull(url=VERIFIED_URL + "?sim_fail=video_pull_failed")
        data = self.wait_status(pid, "FAILED")
        self.assertEqual(data["fail_reason"], "video_pull_failed")
        self.assertEqual(data["publicaly_available_post_id"], [])

    # Unknown and foreign publish ids answer 400 with the matching codes.
    def test_status_errors(self):
        pid = self.init_pull("tok_owner")
        self.assertEnvelope(self.api("/v2/post/publish/status/fetch/",
                                     {"publish_id": "v_pub_url~v2.1"}), 400, "invalid_publish_id")
        self.assertEnvelope(self.api("/v2/post/publish/status/fetch/", {"publish_id": pid},
                                     "tok_other"),
                            400, "token_not_authorized_for_specified_publish_id")
        self.status_of(pid, "tok_owner")

    # Cancel an in-flight pull; a final publish is not cancellable.
    def test_cancel(self):
        self.config(processing_seconds=30)
        pid = self.init_pull()
        self.assertEnvelope(self.api("/v2/post/publish/cancel/", {"publish_id": pid}), 200, "ok")
        data = self.status_of(pid)
        self.assertEqual((data["status"], data["fail_reason"]), ("FAILED", "publish_cancelled"))
        self.assertEnvelope(self.api("/v2/post/publish/cancel/", {"publish_id": pid}),
                            400, "publish_not_cancellable")
        self.assertEnvelope(self.api("/v2/post/publish/cancel/", {"publish_id": "nope"}),
                            400, "invalid_publish_id")

    # Per-publish processing time via sim_processing_seconds in the URL.
    def test_per_publish_processing(self):
        self.config(processing_seconds=60)
        pid = self.init_pull(url=VERIFIED_URL + "?sim_processing_seconds=0")
        self.assertEqual(self.status_of(pid)["status"], "PUBLISH_COMPLETE")


class UploadTests(SimTestCase):
    """FILE_UPLOAD chunk transfer."""

    # Init a FILE_UPLOAD Direct Post; returns (publish_id, upload path+query).
    def init_file(self, size, chunk, count, endpoint="/v2/post/publish/video/init/"):
        body = {"source_info": {"source": "FILE_UPLOAD", "video_size": size,
                                "chunk_size": chunk, "total_chunk_count": count}}
        if endpoint.endswith("/video/init/") and "inbox" not in endpoint:
            body["post_info"] = {"privacy_level": "SELF_ONLY", "title": "file"}
        data = self.assertEnvelope(self.api(endpoint, body), 200, "ok")
        parts = urlsplit(data["upload_url"])
        return data["publish_id"], f"{parts.path}?{parts.query}"

    # PUT one chunk; returns (status, response).
    def put(self, path, data, first, total, ctype="video/mp4", conn=None, headers=None):
        hdrs = {"Content-Type": ctype,
                "Content-Range": f"bytes {first}-{first + len(data) - 1}/{total}"}
        hdrs.update(headers or {})
        status, resp, _ = self.call("PUT", path, raw=data, headers=hdrs, conn=conn)
        return status, resp

    # Two chunks: 206 then 201 with progress in Content-Range; then processing completes.
    def test_chunked_upload_flow(self):
        size, chunk = 11 * MB + 7, 5 * MB
        pid, path = self.init_file(size, chunk, 2)
        self.assertEqual(self.status_of(pid)["status"], "PROCESSING_UPLOAD")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        status, resp = self.put(path, b"a" * chunk, 0, size, conn=conn)
        self.assertEqual(status, 206)
        self.assertEqual(resp.getheader("Content-Range"), f"bytes 0-{chunk - 1}/{size}")
        self.assertEqual(self.status_of(pid)["uploaded_bytes"], chunk)
        status, resp = self.put(path, b"b" * (size - chunk), chunk, size, ctype="video/quicktime",
                                conn=conn)
        conn.close()
        self.assertEqual(status, 201)
        self.assertEqual(resp.getheader("Content-Range"), f"bytes 0-{size - 1}/{size}")
        data = self.status_of(pid)
        self.assertEqual((data["status"], data["uploaded_bytes"]), ("PROCESSING_UPLOAD", size))
        self.wait_status(pid, "PUBLISH_COMPLETE")

    # Upload errors: 400 headers/length, 404 unknown, 416 range, 403 expired.
    def test_upload_errors(self):
        pid, path = self.init_file(1000, 1000, 1)
        data = b"x" * 1000
        self.assertEqual(self.put(path, data, 0, 1000, ctype="text/plain")[0], 400)
        self.assertEqual(self.put(path, data, 0, 1000,
                                  headers={"Content-Range": "bytes 0-10/1000"})[0], 400)
        self.assertEqual(self.put(path, data, 0, 1000,
                                  headers={"Content-Range": "0-999/1000"})[0], 400)
        self.assertEqual(self.put(path.split("?")[0] + "?upload_token=wrong", data, 0, 1000)[0], 404)
        self.assertEqual(self.put("/upload/unknown?upload_token=x", data, 0, 1000)[0], 404)
        self.assertEqual(self.put(path, data, 0, 999 + 1000)[0], 416)        # TOTAL mismatch
        self.assertEqual(self.put(path, data[:500], 500, 1000)[0], 416)      # not in order
        self.assertEqual(self.put(path, data, 0, 1000)[0], 201)
        self.assertEqual(self.put(path, data, 0, 1000)[0], 416)              # already complete
        self.config(upload_url_ttl_seconds=0)
        _, path2 = self.init_file(1000, 1000, 1)
        self.assertEqual(self.put(path2, data, 0, 1000)[0], 403)

    # Chunks must be exactly chunk_size except the last.
    def test_chunk_length_enforced(self):
        size, chunk = 11 * MB, 5 * MB
        _, path = self.init_file(size, chunk, 2)
        self.assertEqual(self.put(path, b"a" * (chunk - 1), 0, size)[0], 400)

    # The connection stays usable (keep-alive) after an error reply with a body.
    def test_keep_alive_after_error(self):
        _, path = self.init_file(1000, 1000, 1)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        self.assertEqual(self.put(path, b"x" * 1000, 0, 1000, ctype="text/plain", conn=conn)[0], 400)
        self.assertEqual(self.put(path, b"x" * 1000, 0, 1000, conn=conn)[0], 201)
        status, _, body = self.call("GET", "/_sim/health", conn=conn)
        conn.close()
        self.assertEqual((status, body), (200, {"ok": True}))

    # An inbox FILE_UPLOAD ends SEND_TO_USER_INBOX.
    def test_inbox_file_upload(self):
        pid, path = self.init_file(1000, 1000, 1, "/v2/post/publish/inbox/video/init/")
        self.assertRegex(pid, r"^v_pub_file~v2\.\d+$")
        self.assertEqual(self.put(path, b"x" * 1000, 0, 1000)[0], 201)
        self.wait_status(pid, "SEND_TO_USER_INBOX")
        # FILE_UPLOAD publishes cannot be cancelled.
        self.assertEnvelope(self.api("/v2/post/publish/cancel/", {"publish_id": pid}),
                            400, "publish_not_cancellable")

    # The publish as /_sim/publishes/<id> shows it.
    def publish(self, pid):
        return self.call("GET", f"/_sim/publishes/{pid}")[2]

    # Queue a fault through the control API.
    def fault(self, **spec):
        status, _, body = self.call("POST", "/_sim/faults", body=spec)
        self.assertEqual(status, 200, body)
        return body

    # A 2-chunk upload of media fetched from /_sim/media: CRC, ranges and types recorded.
    def test_crc_of_two_chunk_upload(self):
        size, chunk = 11 * MB + 7, 5 * MB
        status, _, video = self.call("GET", f"/_sim/media/clip.mp4?size={size}")
        self.assertEqual((status, len(video)), (200, size))
        pid, path = self.init_file(size, chunk, 2)
        before = self.publish(pid)
        self.assertEqual((before["uploaded_bytes"], before["uploaded_crc32"], before["chunks"],
                          before["content_type"]), (0, 0, [], None))
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.assertEqual(self.put(path, video[:chunk], 0, size, conn=conn)[0], 206)
        mid = self.publish(pid)
        self.assertEqual(mid["uploaded_crc32"], zlib.crc32(video[:chunk]))
        self.assertEqual(mid["chunks"], [[0, chunk - 1]])
        self.assertEqual(self.put(path, video[chunk:], chunk, size, ctype="video/quicktime",
                                  conn=conn)[0], 201)
        conn.close()
        done = self.publish(pid)
        self.assertEqual(done["uploaded_bytes"], size)
        self.assertEqual(done["uploaded_crc32"], zlib.crc32(video))
        self.assertEqual(done["uploaded_crc32"], expected_media_crc("mp4", size))
        self.assertEqual(done["chunks"], [[0, chunk - 1], [chunk, size - 1]])
        self.assertEqual(done["content_type"], "video/quicktime")
        self.assertEqual(done["content_types"], ["video/mp4", "video/quicktime"])
        listed = self.call("GET", "/_sim/publishes")[2]["publishes"][0]
        self.assertEqual(listed["uploaded_crc32"], done["uploaded_crc32"])

    # skip=2 lets the first two chunks through and fails the third, which is not counted.
    def test_fault_skip_fails_third_chunk(self):
        size, chunk = 17 * MB, 5 * MB
        data = bytes(range(256)) * (size // 256)
        pid, path = self.init_file(size, chunk, 3)
        listed = self.fault(endpoint="upload", skip=2, http_status=500)
        self.assertEqual((listed["skip"], listed["count"]), (2, 1))
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.assertEqual(self.put(path, data[:chunk], 0, size, conn=conn)[0], 206)
        self.assertEqual(self.call("GET", "/_sim/faults")[2]["faults"][0]["skip"], 1)
        self.assertEqual(self.put(path, data[chunk:2 * chunk], chunk, size, conn=conn)[0], 206)
        status, _ = self.put(path, data[2 * chunk:], 2 * chunk, size, conn=conn)
        self.assertEqual(status, 500)
        self.assertEqual(self.publish(pid)["uploaded_bytes"], 2 * chunk)
        # Same connection, same range again: accepted now that the fault is used up.
        self.assertEqual(self.put(path, data[2 * chunk:], 2 * chunk, size, conn=conn)[0], 201)
        conn.close()
        done = self.publish(pid)
        self.assertEqual((done["uploaded_bytes"], done["uploaded_crc32"]),
                         (size, zlib.crc32(data)))
        self.assertEqual(len(done["chunks"]), 3)
        log = self.requests_log(endpoint="upload")
        self.assertEqual([e["fault"] for e in log], [None, None, "error", None])
        self.assertEqual({e["publish_id"] for e in log}, {pid})

    # drop and error faults on upload read the body but count nothing; the range is resent.
    def test_dropped_and_failed_chunks_not_counted(self):
        size, chunk = 11 * MB, 5 * MB
        data = b"\x5a" * size
        pid, path = self.init_file(size, chunk, 2)
        self.fault(endpoint="upload", action="drop")
        # The body is read before the close, so the client sees a clean EOF, not a reset.
        with self.assertRaises(http.client.RemoteDisconnected):
            self.put(path, data[:chunk], 0, size)
        for http_status in (403, 500):
            self.fault(endpoint="upload", http_status=http_status, error_code="internal_error")
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            self.assertEqual(self.put(path, data[:chunk], 0, size, conn=conn)[0], http_status)
            # The body was drained, so the same keep-alive connection still works.
            self.assertEqual(self.call("GET", "/_sim/health", conn=conn)[0], 200)
            conn.close()
        state = self.publish(pid)
        self.assertEqual((state["uploaded_bytes"], state["uploaded_crc32"], state["chunks"]),
                         (0, 0, []))
        self.assertEqual(self.put(path, data[:chunk], 0, size)[0], 206)
        self.assertEqual(self.put(path, data[chunk:], chunk, size)[0], 201)
        self.assertEqual(self.publish(pid)["uploaded_crc32"], zlib.crc32(data))
        log = self.requests_log(endpoint="upload")
        self.assertEqual([(e["fault"], e["http_status"]) for e in log],
                         [("drop", None), ("error", 403), ("error", 500), (None, 206),
                          (None, 201)])
        self.assertEqual(log[0]["publish_id"], pid)

    # after_processing is the exception: the chunk is counted, only the reply is lost.
    def test_drop_after_processing_counts_chunk(self):
        pid, path = self.init_file(1000, 1000, 1)
        self.fault(endpoint="upload", action="drop", after_processing=True)
        with self.assertRaises(http.client.RemoteDisconnected):
            self.put(path, b"x" * 1000, 0, 1000)
        state = self.publish(pid)
        self.assertEqual((state["uploaded_bytes"], state["uploaded_crc32"]),
                         (1000, zlib.crc32(b"x" * 1000)))
        self.assertEqual(self.put(path, b"x" * 1000, 0, 1000)[0], 416)


class InboxAndPhotoTests(SimTestCase):
    """Inbox video uploads and photo posts."""

    INBOX = "/v2/post/publish/inbox/video/init/"
    CONTENT = "/v2/post/publish/content/init/"

    # A valid photo body.
    @staticmethod
    def photo_body(mode="DIRECT_POST", images=None, cover=0, **post_info):
        info = {"title": "pics", "description": "desc", **post_info}
        if mode == "DIRECT_POST":
            info.setdefault("privacy_level", "PUBLIC_TO_EVERYONE")
        return {"post_info": info, "post_mode": mode, "media_type": "PHOTO",
                "source_info": {"source": "PULL_FROM_URL", "photo_cover_index": cover,
                                "photo_images": images or [PHOTO_URL]}}

    # Inbox pull ends SEND_TO_USER_INBOX.
    def test_inbox_pull(self):
        data = self.assertEnvelope(self.api(self.INBOX, {"source_info": {
            "source": "PULL_FROM_URL", "video_url": VERIFIED_URL}}), 200, "ok")
        self.assertRegex(data["publish_id"], r"^v_pub_url~v2\.\d+$")
        self.assertEqual(self.status_of(data["publish_id"])["status"], "PROCESSING_DOWNLOAD")
        self.wait_status(data["publish_id"], "SEND_TO_USER_INBOX")

    # Six unfinished drafts in 24 h: the sixth is refused.
    def test_pending_share_limit(self):
        self.config(rate_limits=False)
        body = {"source_info": {"source": "PULL_FROM_URL", "video_url": VERIFIED_URL}}
        for _ in range(5):
            self.assertEnvelope(self.api(self.INBOX, body), 200, "ok")
        self.assertEnvelope(self.api(self.INBOX, body), 403, "spam_risk_too_many_pending_share")
        self.assertEnvelope(self.api(self.CONTENT, self.photo_body("MEDIA_UPLOAD")),
                            403, "spam_risk_too_many_pending_share")

    # Direct photo post succeeds with a p_pub_url id and completes.
    def test_photo_direct(self):
        data = self.assertEnvelope(self.api(self.CONTENT, self.photo_body(
            images=[PHOTO_URL, PHOTO_URL.replace("1.jpg", "2.jpg")], cover=1)), 200, "ok")
        self.assertRegex(data["publish_id"], r"^p_pub_url~v2\.\d+$")
        self.wait_status(data["publish_id"], "PUBLISH_COMPLETE")

    # Photo to the inbox (MEDIA_UPLOAD) needs only video.upload.
    def test_photo_inbox(self):
        self.user("tok_up", scopes=["user.info.basic", "video.upload"])
        data = self.assertEnvelope(self.api(self.CONTENT, self.photo_body("MEDIA_UPLOAD"),
                                            "tok_up"), 200, "ok")
        self.wait_status(data["publish_id"], "SEND_TO_USER_INBOX", token="tok_up")
        self.assertEnvelope(self.api(self.CONTENT, self.photo_body(), "tok_up"),
                            401, "scope_not_authorized")

    # Photo validation errors.
    def test_photo_validation(self):
        self.config(rate_limits=False)
        cases = [
            (dict(self.photo_body(), media_type="VIDEO"), 400, "invalid_param"),
            (dict(self.photo_body(), post_mode="OTHER"), 400, "invalid_param"),
            (self.photo_body(images=[PHOTO_URL] * 36), 400, "invalid_param"),
            (self.photo_body(cover=1), 400, "invalid_param"),
            (self.photo_body(cover=-1), 400, "invalid_param"),
            (self.photo_body(title="x" * 91), 400, "invalid_param"),
            (self.photo_body(description="x" * 4001), 400, "invalid_param"),
            (self.photo_body(images=["https://elsewhere.test/1.jpg"]), 403,
             "url_ownership_unverified"),
            (self.photo_body(privacy_level="FOLLOWER_OF_CREATOR"), 403,
             "privacy_level_option_mismatch"),
        ]
        no_cover = self.photo_body()
        del no_cover["source_info"]["photo_cover_index"]
        file_source = self.photo_body()
        file_source["source_info"]["source"] = "FILE_UPLOAD"
        cases += [(no_cover, 400, "invalid_param"), (file_source, 400, "invalid_param")]
        for body, status, code in cases:
            with self.subTest(body=json.dumps(body)[:120]):
                self.assertEnvelope(self.api(self.CONTENT, body), status, code)
        self.assertEnvelope(self.api(self.CONTENT, self.photo_body(title="x" * 90)), 200, "ok")

    # A failing photo URL ends FAILED with its reason.
    def test_photo_fail(self):
        data = self.assertEnvelope(self.api(self.CONTENT, self.photo_body(
            images=[PHOTO_URL + "?sim_fail=photo_pull_failed"])), 200, "ok")
        self.assertEqual(self.wait_status(data["publish_id"], "FAILED")["fail_reason"],
                         "photo_pull_failed")


class OAuthTests(SimTestCase):
    """Token exchange, refresh rotation, revoke."""

    TOKEN = "/v2/oauth/token/"
    CLIENT = {"client_key": "sim_client_key", "client_secret": "sim_client_secret"}

    # Exchange a code; returns the token response.
    def exchange(self, code):
        status, _, body = self.form(self.TOKEN, {**self.CLIENT, "code": code,
                                                 "grant_type": "authorization_code",
                                                 "redirect_uri": "https://app.test/cb"})
        self.assertEqual(status, 200, body)
        return body

    # code-<open_id> works once and yields a flat token response.
    def test_code_exchange(self):
        body = self.exchange("code-ou_7")
        self.assertEqual(set(body), {"access_token", "expires_in", "open_id", "refresh_token",
                                     "refresh_expires_in", "scope", "token_type"})
        self.assertEqual((body["open_id"], body["token_type"], body["expires_in"],
                          body["refresh_expires_in"]), ("ou_7", "Bearer", 7200, 15552000))
        self.assertEqual(body["scope"], "user.info.basic,video.publish,video.upload")
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {},
                                     body["access_token"]), 200, "ok")
        status, _, err = self.form(self.TOKEN, {**self.CLIENT, "code": "code-ou_7",
                                                "grant_type": "authorization_code"})
        self.assertEqual((status, err["error"]), (400, "invalid_grant"))
        self.assertIn("error_description", err)
        self.assertIn("log_id", err)
        status, _, err = self.form(self.TOKEN, {**self.CLIENT, "code": "random",
                                                "grant_type": "authorization_code"})
        self.assertEqual((status, err["error"]), (400, "invalid_grant"))

    # A code registered through the control API maps to that user and its scopes.
    def test_registered_code(self):
        self.user("tok_r", open_id="ou_reg", auth_code="abc123",
                  scopes=["user.info.basic", "video.upload"])
        body = self.exchange("abc123")
        self.assertEqual((body["open_id"], body["scope"]), ("ou_reg", "user.info.basic,video.upload"))

    # Wrong client credentials answer 401 invalid_client.
    def test_invalid_client(self):
        status, _, err = self.form(self.TOKEN, {"client_key": "sim_client_key",
                                                "client_secret": "wrong", "code": "code-x",
                                                "grant_type": "authorization_code"})
        self.assertEqual((status, err["error"]), (401, "invalid_client"))
        self.config(client_key="k2", client_secret="s2", access_expires_in=60)
        status, _, body = self.form(self.TOKEN, {"client_key": "k2", "client_secret": "s2",
                                                 "code": "code-y",
                                                 "grant_type": "authorization_code"})
        self.assertEqual((status, body["expires_in"]), (200, 60))

    # Refresh rotates: new tokens, old refresh token dead, refresh_count counted.
    def test_refresh_rotation(self):
        first = self.exchange("code-ou_r")
        status, _, second = self.form(self.TOKEN, {**self.CLIENT, "grant_type": "refresh_token",
                                                   "refresh_token": first["refresh_token"]})
        self.assertEqual(status, 200, second)
        self.assertNotEqual(second["access_token"], first["access_token"])
        self.assertNotEqual(second["refresh_token"], first["refresh_token"])
        self.assertEqual(second["open_id"], "ou_r")
        status, _, err = self.form(self.TOKEN, {**self.CLIENT, "grant_type": "refresh_token",
                                                "refresh_token": first["refresh_token"]})
        self.assertEqual((status, err["error"]), (400, "invalid_grant"))
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {},
                                     second["access_token"]), 200, "ok")
        users = {u["open_id"]: u for u in self.call("GET", "/_sim/users")[2]["users"]}
        self.assertEqual(users["ou_r"]["refresh_count"], 1)
        log = self.requests_log(endpoint="oauth_token")
        self.assertEqual(log[1]["body"]["refresh_token"], "***")

    # Revoke kills the access token and its refresh token; reply is an empty 200.
    def test_revoke(self):
        tokens = self.exchange("code-ou_v")
        status, resp, body = self.form("/v2/oauth/revoke/", {**self.CLIENT,
                                                             "token": tokens["access_token"]})
        self.assertEqual((status, body), (200, b""))
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {},
                                     tokens["access_token"]), 401, "access_token_invalid")
        status, _, err = self.form(self.TOKEN, {**self.CLIENT, "grant_type": "refresh_token",
                                                "refresh_token": tokens["refresh_token"]})
        self.assertEqual((status, err["error"]), (400, "invalid_grant"))
        # A revoked unknown token is never adopted as an auto user.
        self.form("/v2/oauth/revoke/", {**self.CLIENT, "token": "never_seen"})
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "never_seen"),
                            401, "access_token_invalid")
        self.assertEqual(self.requests_log(endpoint="oauth_revoke")[0]["body"]["token"], "***")

    # Unsupported grant types and non-form bodies are refused.
    def test_bad_requests(self):
        status, _, err = self.form(self.TOKEN, {**self.CLIENT, "grant_type": "password"})
        self.assertEqual((status, err["error"]), (400, "unsupported_grant_type"))
        status, _, err = self.call("POST", self.TOKEN, body={**self.CLIENT,
                                                             "grant_type": "refresh_token"})
        self.assertEqual((status, err["error"]), (400, "invalid_request"))


class RateLimitTests(SimTestCase):
    """Sliding-window per-token rate limits."""

    # The three init endpoints share 6 per minute per token.
    def test_init_limit_shared(self):
        for _ in range(4):
            self.init_pull()
        inbox = {"source_info": {"source": "PULL_FROM_URL", "video_url": VERIFIED_URL}}
        self.assertEnvelope(self.api("/v2/post/publish/inbox/video/init/", inbox), 200, "ok")
        self.assertEnvelope(self.api("/v2/post/publish/inbox/video/init/", inbox), 200, "ok")
        status, resp, _ = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEnvelope((status, resp, _), 429, "rate_limit_exceeded")
        self.assertIsNone(resp.getheader("Retry-After"))
        # Another token has its own window.
        self.init_pull("tok_b")

    # status_fetch allows 30 a minute, creator_info 20.
    def test_status_and_creator_limits(self):
        pid = self.init_pull()
        for _ in range(30):
            self.status_of(pid)
        self.assertEnvelope(self.api("/v2/post/publish/status/fetch/", {"publish_id": pid}),
                            429, "rate_limit_exceeded")
        for _ in range(20):
            self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}), 200, "ok")
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}),
                            429, "rate_limit_exceeded")

    # Limits can be switched off or tuned.
    def test_limits_configurable(self):
        self.config(rate_limits=False)
        for _ in range(8):
            self.init_pull()
        self.config(rate_limits={"creator_info": 1})
        self.api("/v2/post/publish/creator_info/query/", {}, "tok_z")
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, "tok_z"),
                            429, "rate_limit_exceeded")


class FaultTests(SimTestCase):
    """Fault injection and latency."""

    # Queue a fault.
    def fault(self, **spec):
        status, _, body = self.call("POST", "/_sim/faults", body=spec)
        self.assertEqual(status, 200, body)
        return body

    # An error fault replaces N replies, with Retry-After when asked, then stops.
    def test_error_fault_count_and_retry_after(self):
        self.fault(endpoint="creator_info", count=2, http_status=503, error_code="internal_error",
                   retry_after=7)
        for _ in range(2):
            status, resp, body = self.api("/v2/post/publish/creator_info/query/", {})
            self.assertEnvelope((status, resp, body), 503, "internal_error")
            self.assertEqual(resp.getheader("Retry-After"), "7")
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}), 200, "ok")
        self.assertEqual(self.call("GET", "/_sim/faults")[2]["faults"], [])
        log = self.requests_log(endpoint="creator_info")
        self.assertEqual([e["fault"] for e in log], ["error", "error", None])

    # Faults can be listed and cleared; bad specs are rejected.
    def test_fault_listing(self):
        self.fault(endpoint="*", count=3, action="empty")
        self.assertEqual(self.call("GET", "/_sim/faults")[2]["faults"][0]["count"], 3)
        self.assertEqual(self.call("DELETE", "/_sim/faults")[0], 200)
        self.assertEqual(self.call("GET", "/_sim/faults")[2]["faults"], [])
        self.assertEqual(self.call("POST", "/_sim/faults", body={"endpoint": "nope"})[0], 400)
        self.assertEqual(self.call("POST", "/_sim/faults",
                                   body={"endpoint": "cancel", "action": "explode"})[0], 400)
        for bad in (-1, 1.5, "2", True):
            self.assertEqual(self.call("POST", "/_sim/faults",
                                       body={"endpoint": "cancel", "skip": bad})[0], 400)

    # skip lets K matching calls through, then the fault applies to `count` calls.
    def test_skip(self):
        self.fault(endpoint="creator_info", skip=1, count=2, http_status=503)
        self.fault(endpoint="status_fetch", skip=5)          # other endpoints do not count
        codes = [self.api("/v2/post/publish/creator_info/query/", {})[0] for _ in range(4)]
        self.assertEqual(codes, [200, 503, 503, 200])
        faults = self.call("GET", "/_sim/faults")[2]["faults"]
        self.assertEqual([(f["endpoint"], f["skip"]) for f in faults], [("status_fetch", 5)])
        # A skipping fault counts calls another fault answered: skip 1 hits the 2nd call.
        self.call("DELETE", "/_sim/faults")
        self.fault(endpoint="creator_info", skip=1, http_status=502)
        self.fault(endpoint="creator_info", http_status=504)
        codes = [self.api("/v2/post/publish/creator_info/query/", {})[0] for _ in range(3)]
        self.assertEqual(codes, [504, 502, 200])

    # drop closes the socket without any reply, and has no effect.
    def test_drop(self):
        self.fault(endpoint="video_init", action="drop")
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual(self.call("GET", "/_sim/publishes")[2]["publishes"], [])
        entry = self.requests_log(endpoint="video_init")[0]
        self.assertEqual((entry["fault"], entry["http_status"]), ("drop", None))

    # A call answered by a fault before any processing is logged with the caller's open_id.
    def test_faulted_call_names_the_caller(self):
        self.user(token="tok_a", open_id="alice")
        self.fault(endpoint="creator_info", http_status=503)
        self.fault(endpoint="video_init", action="drop")
        self.fault(endpoint="creator_info", action="html", http_status=502)
        self.fault(endpoint="oauth_token", http_status=500, error_code="server_error")
        self.api("/v2/post/publish/creator_info/query/", {})
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            self.api("/v2/post/publish/video/init/", self.video_body())
        self.api("/v2/post/publish/creator_info/query/", {}, token="tok_unknown")
        self.form("/v2/oauth/token/", {"grant_type": "refresh_token", "refresh_token": "x"})
        auto = "auto_" + hashlib.sha256(b"tok_unknown").hexdigest()[:8]
        self.assertEqual([(e["endpoint"], e["fault"], e["open_id"]) for e in self.requests_log()],
                         [("creator_info", "error", "alice"), ("video_init", "drop", "alice"),
                          ("creator_info", "html", auto), ("oauth_token", "error", None)])

    # after_processing: the publish is created, but the reply is lost.
    def test_drop_after_processing(self):
        self.fault(endpoint="video_init", action="drop", after_processing=True)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            self.api("/v2/post/publish/video/init/", self.video_body())
        publishes = self.call("GET", "/_sim/publishes")[2]["publishes"]
        self.assertEqual(len(publishes), 1)
        entry = self.requests_log(endpoint="video_init")[0]
        self.assertEqual(entry["publish_id"], publishes[0]["publish_id"])
        self.assertEqual(entry["effect_error_code"], "ok")
        self.wait_status(publishes[0]["publish_id"], "PUBLISH_COMPLETE")

    # slow delays the reply but answers normally.
    def test_slow(self):
        self.fault(endpoint="status_fetch", action="slow", delay_ms=300)
        pid = self.init_pull()
        start = time.time()
        self.status_of(pid)
        self.assertGreaterEqual(time.time() - start, 0.29)

    # html, malformed and empty replies.
    def test_bad_bodies(self):
        self.fault(endpoint="video_init", action="html", http_status=502)
        status, resp, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual(status, 502)
        self.assertTrue(resp.getheader("Content-Type").startswith("text/html"))
        self.assertIn(b"<html>", body)
        self.fault(endpoint="video_init", action="malformed")
        status, _, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual(status, 200)
        with self.assertRaises(ValueError):
            json.loads(body)
        self.fault(endpoint="video_init", action="empty")
        status, resp, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual((status, body, resp.getheader("Content-Length")), (200, b"", "0"))
        self.assertEqual(self.call("GET", "/_sim/publishes")[2]["publishes"], [])

    # array, huge, binary and wrongtypes replies: 200, each wrong in its own way, no effect.
    def test_garbage_bodies(self):
        self.fault(endpoint="video_init", action="array")
        status, _, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual(status, 200)
        self.assertIsInstance(body, list)
        self.assertEqual(body[0]["error"]["code"], "ok")

        self.fault(endpoint="video_init", action="huge")
        status, resp, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual((status, resp.getheader("Content-Length")), (200, str(6 * MB)))
        self.assertIsInstance(body, dict)                      # parsed: valid JSON, only too big
        self.assertEqual((body["error"]["code"], body["data"]["publish_id"]), ("ok", "v_pub_url~v2.huge"))

        self.fault(endpoint="video_init", action="binary")
        status, resp, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual(status, 200)
        self.assertTrue(resp.getheader("Content-Type").startswith("application/json"))
        self.assertIsInstance(body, bytes)
        with self.assertRaises(UnicodeDecodeError):
            body.decode("utf-8")
        self.assertIn(b"\x00", body[:200])
        self.assertEqual(body[:200], self.api_raw_after_fault("binary")[:200])    # deterministic

        self.fault(endpoint="video_init", action="wrongtypes")
        status, _, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual((status, body), (200, {"data": {"publish_id": 12345},
                                                "error": {"code": 7, "message": None, "log_id": []}}))
        self.fault(endpoint="video_init", action="wrongtypes", error_code="ok")
        status, _, body = self.api("/v2/post/publish/video/init/", self.video_body())
        self.assertEqual((status, body), (200, {"data": {"publish_id": 12345},
                                                "error": {"code": "ok", "message": None, "log_id": []}}))

        self.assertEqual(self.call("GET", "/_sim/publishes")[2]["publishes"], [])
        log = self.requests_log(endpoint="video_init")
        self.assertEqual([e["fault"] for e in log],
                         ["array", "huge", "binary", "binary", "wrongtypes", "wrongtypes"])
        # The log takes a publish_id from a reply only when it is a string.
        self.assertEqual([e["publish_id"] for e in log],
                         [None, "v_pub_url~v2.huge", None, None, None, None])

    # A fault with open_id only hits calls made with that user's token (auto users too).
    def test_fault_for_one_user(self):
        self.user(token="tok_a", open_id="alice")
        self.user(token="tok_b", open_id="bob")
        self.fault(endpoint="creator_info", open_id="bob", count=2, http_status=503)
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, token="tok_a"),
                            200, "ok")
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, token="tok_b"),
                            503, "internal_error")
        self.assertEqual(self.call("GET", "/_sim/faults")[2]["faults"][0]["open_id"], "bob")
        auto = "auto_" + hashlib.sha256(b"tok_auto").hexdigest()[:8]
        self.fault(endpoint="creator_info", open_id=auto, http_status=502)
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, token="tok_auto"),
                            502, "internal_error")
        self.assertEnvelope(self.api("/v2/post/publish/creator_info/query/", {}, token="tok_b"),
                            503, "internal_error")
        self.assertEqual(self.call("GET", "/_sim/faults")[2]["faults"], [])
        for bad in ("", 7, ["bob"]):
            self.assertEqual(self.call("POST", "/_sim/faults",
                                       body={"endpoint": "cancel", "open_id": bad})[0], 400)

    # The raw body of one video_init answered by a fault with this action.
    def api_raw_after_fault(self, action):
        self.fault(endpoint="video_init", action=action)
        return self.api("/v2/post/publish/video/init/", self.video_body())[2]

    # Faults on OAuth use the flat OAuth error format; on upload they hit PUT.
    def test_oauth_and_upload_faults(self):
        self.fault(endpoint="oauth_token", http_status=500, error_code="internal_error")
        status, _, body = self.form("/v2/oauth/token/", {"client_key": "sim_client_key",
                                                         "client_secret": "sim_client_secret",
                                                         "grant_type": "authorization_code",
                                                         "code": "code-f"})
        self.assertEqual((status, body["error"]), (500, "internal_error"))
        data = self.assertEnvelope(self.api("/v2/post/publish/video/init/", {
            "post_info": {"privacy_level": "SELF_ONLY"},
            "source_info": {"source": "FILE_UPLOAD", "video_size": 10, "chunk_size": 10,
                            "total_chunk_count": 1}}), 200, "ok")
        parts = urlsplit(data["upload_url"])
        path = f"{parts.path}?{parts.query}"
        self.fault(endpoint="upload", http_status=503)
        headers = {"Content-Type": "video/mp4", "Content-Range": "bytes 0-9/10"}
        self.assertEqual(self.call("PUT", path, raw=b"0123456789", headers=headers)[0], 503)
        self.assertEqual(self.call("PUT", path, raw=b"0123456789", headers=headers)[0], 201)

    # latency_ms delays every TikTok call but not the control API; the log
    # tells when a call arrived (received) from when it was answered (time).
    def test_latency(self):
        self.config(latency_ms=400)
        start = time.time()
        self.api("/v2/post/publish/creator_info/query/", {})
        self.assertGreaterEqual(time.time() - start, 0.39)
        entry = self.requests_log()[-1]
        self.assertLessEqual(start, entry["received"])
        self.assertGreaterEqual(entry["time"] - entry["received"], 0.39)
        self.assertLess(entry["received"] - start, 0.2)
        start = time.time()
        self.call("GET", "/_sim/health")
        self.assertLess(time.time() - start, 0.35)


class MediaTests(SimTestCase):
    """The synthetic video source: GET/HEAD /_sim/media/<name>."""

    # One request on a raw connection; returns (status, response, body bytes).
    def get(self, path, headers=None, method="GET", conn=None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp, resp.read()
        finally:
            if own:
                conn.close()

    # Queue a fault through the control API.
    def fault(self, **spec):
        status, _, body = self.call("POST", "/_sim/faults", body=spec)
        self.assertEqual(status, 200, body)
        return body

    # Each type: right Content-Type, header bytes, then the pattern (across 64 KiB pieces).
    def test_header_and_bytes_per_type(self):
        size = 3 * 65536 + 1001
        for kind, ctype in (("mp4", "video/mp4"), ("mov", "video/quicktime"),
                            ("webm", "video/webm")):
            with self.subTest(kind=kind):
                status, resp, body = self.get(f"/_sim/media/v?size={size}&type={kind}")
                self.assertEqual(status, 200)
                self.assertEqual(resp.getheader("Content-Type"), ctype)
                self.assertEqual(resp.getheader("Accept-Ranges"), "bytes")
                self.assertEqual(resp.getheader("Content-Length"), str(size))
                self.assertIsNone(resp.getheader("Content-Range"))
                self.assertEqual(body, expected_media(kind, 0, size - 1))
                header = MEDIA_HEADERS[kind]
                self.assertEqual(body[:len(header)], header)
                self.assertEqual(body[len(header)], (len(header) * 31 + 7) & 0xFF)
        self.assertEqual(expected_media("mp4", 0, 7), b"\x00\x00\x00\x18ftyp")
        self.assertEqual(expected_media("mov", 8, 11), b"qt  ")

    # The type comes from ?type=, else from the name's extension, else mp4; bytes are stable.
    def test_type_defaults_and_determinism(self):
        self.assertEqual(self.get("/_sim/media/a.webm?size=10")[1].getheader("Content-Type"),
                         "video/webm")
        self.assertEqual(self.get("/_sim/media/a.MOV?size=10")[1].getheader("Content-Type"),
                         "video/quicktime")
        self.assertEqual(self.get("/_sim/media/a?size=10")[1].getheader("Content-Type"),
                         "video/mp4")
        self.assertEqual(self.get("/_sim/media/a.webm?size=10&type=mp4")[1]
                         .getheader("Content-Type"), "video/mp4")
        first = self.get("/_sim/media/one.mp4?size=70000")[2]
        second = self.get("/_sim/media/other-name.mp4?size=90000")[2]
        self.assertEqual(first, second[:70000])
        status, _, body = self.get("/_sim/media/short?size=5&type=mp4")
        self.assertEqual((status, body), (200, MEDIA_HEADERS["mp4"][:5]))
        status, resp, body = self.get("/_sim/media/empty?size=0")
        self.assertEqual((status, body, resp.getheader("Content-Length")), (200, b"", "0"))

    # Single ranges give 206 + Content-Range; bad ones 416 with bytes */N.
    def test_ranges(self):
        size = 200000
        base = f"/_sim/media/r.mov?size={size}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        cases = [("bytes=0-99", 0, 99), ("bytes=10-30", 10, 30),
                 ("bytes=65530-65545", 65530, 65545), ("bytes=199990-", 199990, size - 1),
                 ("bytes=199990-300000", 199990, size - 1), ("bytes=-16", size - 16, size - 1),
                 ("bytes=199999-199999", 199999, 199999)]
        for header, first, last in cases:
            with self.subTest(range=header):
                status, resp, body = self.get(base, {"Range": header}, conn=conn)
                self.assertEqual(status, 206)
                self.assertEqual(resp.getheader("Content-Range"), f"bytes {first}-{last}/{size}")
                self.assertEqual(resp.getheader("Content-Length"), str(last - first + 1))
                self.assertEqual(resp.getheader("Content-Type"), "video/quicktime")
                self.assertEqual(body, expected_media("mov", first, last))
        for header in ("bytes=200000-", "bytes=250000-250010", "bytes=-0", "bytes=9-3",
                       "bytes=x-y"):
            with self.subTest(range=header):
                status, resp, _ = self.get(base, {"Range": header}, conn=conn)
                self.assertEqual(status, 416)
                self.assertEqual(resp.getheader("Content-Range"), f"bytes */{size}")
        # The connection is still usable after the 416 replies (keep-alive).
        status, _, body = self.get(base, {"Range": "bytes=0-3"}, conn=conn)
        self.assertEqual((status, body), (206, MEDIA_HEADERS["mov"][:4]))
        conn.close()
        self.assertEqual(self.get("/_sim/media/e?size=0", {"Range": "bytes=0-"})[0], 416)
        # Multi-range and other units are ignored: the whole file.
        status, _, body = self.get("/_sim/media/m?size=100", {"Range": "bytes=0-1,5-6"})
        self.assertEqual((status, len(body)), (200, 100))
        status, _, body = self.get("/_sim/media/m?size=100", {"Range": "items=0-1"})
        self.assertEqual((status, len(body)), (200, 100))

    # HEAD: the same headers (incl. for a Range), no body; sizes up to 8 GiB.
    def test_head_and_large_sizes(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        status, resp, body = self.get(f"/_sim/media/big.webm?size={8 * GiB}", method="HEAD",
                                      conn=conn)
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(resp.getheader("Content-Length"), str(8 * GiB))
        self.assertEqual(resp.getheader("Content-Type"), "video/webm")
        self.assertEqual(resp.getheader("Accept-Ranges"), "bytes")
        status, resp, body = self.get("/_sim/media/big.mp4?size=1000", {"Range": "bytes=100-"},
                                      method="HEAD", conn=conn)
        self.assertEqual((status, body), (206, b""))
        self.assertEqual(resp.getheader("Content-Range"), "bytes 100-999/1000")
        self.assertEqual(resp.getheader("Content-Length"), "900")
        status, resp, _ = self.get("/_sim/media/big.mp4?size=1000", {"Range": "bytes=1000-"},
                                   method="HEAD", conn=conn)
        self.assertEqual((status, resp.getheader("Content-Range")), (416, "bytes */1000"))
        # The tail of an 8 GiB file, past 2**32, on the same connection.
        first, last = 8 * GiB - 70000, 8 * GiB - 1
        status, resp, body = self.get(f"/_sim/media/big.mp4?size={8 * GiB}",
                                      {"Range": f"bytes={first}-"}, conn=conn)
        conn.close()
        self.assertEqual(status, 206)
        self.assertEqual(resp.getheader("Content-Range"), f"bytes {first}-{last}/{8 * GiB}")
        self.assertEqual(body, expected_media("mp4", first, last))
        self.assertEqual(self.get(f"/_sim/media/x?size={8 * GiB + 1}")[0], 400)
        for query in ("", "?size=-1", "?size=abc", "?size=10&type=avi"):
            self.assertEqual(self.get("/_sim/media/x" + query)[0], 400, query)
        self.assertEqual(self.call("POST", "/_sim/media/x?size=10", body={})[0], 405)

    # A client that stops reading a huge file does not hang the server; the log shows it.
    def test_streams_without_buffering(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.request("GET", f"/_sim/media/huge.mp4?size={8 * GiB}")
        resp = conn.getresponse()
        self.assertEqual(resp.getheader("Content-Length"), str(8 * GiB))
        chunk = resp.read(MB)
        self.assertEqual(chunk[:64], expected_media("mp4", 0, 63))
        conn.close()
        deadline = time.time() + 5
        while time.time() < deadline:
            entry = self.requests_log(endpoint="media")[0]
            if entry["body"]["bytes_sent"]:
                break
            time.sleep(0.05)
        self.assertGreaterEqual(entry["body"]["bytes_sent"], MB)
        self.assertLess(entry["body"]["bytes_sent"], 8 * GiB)
        self.assertEqual(self.call("GET", "/_sim/health")[0], 200)

    # Media calls are logged as "media", skip latency and "*" faults, and take media faults.
    def test_log_latency_and_faults(self):
        self.config(latency_ms=400)
        self.fault(endpoint="*", action="drop")
        start = time.time()
        status, _, _ = self.get("/_sim/media/l.mp4?size=10", {"Range": "bytes=2-"})
        self.assertLess(time.time() - start, 0.35)
        self.assertEqual(status, 206)
        self.assertEqual(len(self.call("GET", "/_sim/faults")[2]["faults"]), 1)  # "*" untouched
        self.call("DELETE", "/_sim/faults")
        entry = self.requests_log(endpoint="media")[0]
        self.assertEqual((entry["method"], entry["endpoint"], entry["http_status"],
                          entry["fault"]), ("GET", "media", 206, None))
        self.assertEqual(entry["body"], {"name": "l.mp4", "type": "mp4", "size": 10,
                                         "range": "bytes=2-", "bytes_sent": 8})
        self.fault(endpoint="media", action="drop", skip=1)
        self.assertEqual(self.get("/_sim/media/l.mp4?size=10")[0], 200)
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            self.get("/_sim/media/l.mp4?size=10")
        self.fault(endpoint="media", http_status=503, retry_after=2)
        status, resp, _ = self.get("/_sim/media/l.mp4?size=10", method="HEAD")
        self.assertEqual((status, resp.getheader("Retry-After")), (503, "2"))
        self.fault(endpoint="media", action="slow", delay_ms=200)
        start = time.time()
        status, _, body = self.get("/_sim/media/l.mp4?size=10")
        self.assertGreaterEqual(time.time() - start, 0.19)
        self.assertEqual((status, len(body)), (200, 10))
        log = self.requests_log(endpoint="media")
        self.assertEqual([(e["fault"], e["http_status"]) for e in log[1:]],
                         [(None, 200), ("drop", None), ("error", 503), ("slow", 200)])


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


class HttpBehaviourTests(SimTestCase):
    """Keep-alive, Content-Length, process lifecycle."""

    # Several requests share one HTTP/1.1 connection; Content-Length is always sent.
    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        for _ in range(3):
            status, resp, _ = self.call("POST", "/v2/post/publish/creator_info/query/", body={},
                                        token="tok_a", conn=conn)
            self.assertEqual(status, 200)
            self.assertEqual(resp.version, 11)
            self.assertIsNotNone(resp.getheader("Content-Length"))
        status, resp, _ = self.call("GET", "/_sim/health", conn=conn)
        self.assertIsNotNone(resp.getheader("Content-Length"))
        conn.close()

    # 300 connections opened at once are all accepted (listen backlog well above
    # socketserver's 5: no dropped SYN, so no 1 s retransmit), then all served at once.
    def test_many_concurrent_connections(self):
        self.assertGreaterEqual(self.server.request_queue_size, 1024)
        self.call("POST", "/_sim/users/bulk", body={"count": 300, "prefix": "conn"})
        conns, slowest = [], 0.0
        try:
            for _ in range(300):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                started = time.monotonic()
                conn.connect()
                slowest = max(slowest, time.monotonic() - started)
                conns.append(conn)
            for i, conn in enumerate(conns, 1):
                conn.request("POST", "/v2/post/publish/creator_info/query/", body=b"{}",
                             headers={"Authorization": f"Bearer act.conn-{i}",
                                      "Content-Type": "application/json"})
            replies = []
            for conn in conns:
                resp = conn.getresponse()
                replies.append((resp.status, json.loads(resp.read())["error"]["code"]))
        finally:
            for conn in conns:
                conn.close()
        self.assertEqual(replies, [(200, "ok")] * 300)
        self.assertLess(slowest, 0.9)
        self.assertEqual(len(self.requests_log(endpoint="creator_info")), 300)

    # The script prints its listening line and exits 0 on SIGTERM.
    def test_cli_sigterm(self):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiktok_sim.py")
        proc = subprocess.Popen([sys.executable, script, "--port", "0", "--quiet"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            self.assertRegex(line, r"^tiktok_sim listening on http://127\.0\.0\.1:\d+$")
            port = int(line.rsplit(":", 1)[1])
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/_sim/health")
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()
            proc.send_signal(signal.SIGTERM)
            self.assertEqual(proc.wait(timeout=5), 0)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()


if __name__ == "__main__":
    unittest.main()
