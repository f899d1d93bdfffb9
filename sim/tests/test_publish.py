"""creator_info and the video, inbox video and content (photo) inits, with the
per-token rate limits they share (sim/tiktok/publish.py).

Run all the simulator's tests from the repository's root:
    python3 -m unittest discover -s sim/tests -t .
"""

import json

from sim.tests.helpers import MB, PHOTO_URL, VERIFIED_URL, SimTestCase
from sim.tiktok.common import CANNOT_POST_CODES
from sim.tiktok.publish import chunk_rule_violation


class CreatorInfoTests(SimTestCase):
    """creator_info: privacy options and creators who cannot post."""

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
        self.config(audited=False)
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
