"""OAuth token exchange, refresh rotation and revoke, bearer tokens, auto users, scopes
and user info (sim/tiktok/oauth.py, the bearer check in sim/tiktok/wire.py).

Run all the simulator's tests from the repository's root:
    python3 -m unittest discover -s sim/tests -t .
"""

from sim.tests.helpers import VERIFIED_URL, SimTestCase
from sim.tiktok.common import token_hash


class BearerTokenTests(SimTestCase):
    """Bearer tokens, auto users, scopes and user info."""

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
