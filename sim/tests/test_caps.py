"""Posting caps (sim/tiktok/publish.py): a creator's daily Direct Post cap, the inbox's
pending-share limit, and an unaudited app's rules (SELF_ONLY to private accounts, a
daily cap of active posting creators).

Run all the simulator's tests from the repository's root:
    python3 -m unittest discover -s sim/tests -t .
"""

from sim.tests.helpers import VERIFIED_URL, SimTestCase
from sim.tiktok.common import DAY

CREATOR_INFO = "/v2/post/publish/creator_info/query/"
VIDEO = "/v2/post/publish/video/init/"
INBOX = "/v2/post/publish/inbox/video/init/"
INBOX_BODY = {"source_info": {"source": "PULL_FROM_URL", "video_url": VERIFIED_URL}}


class CapsTestCase(SimTestCase):
    """Rate limits off: these tests make more inits than 6 a minute."""

    def setUp(self):
        super().setUp()
        self.config(rate_limits=False)

    # Move every publish of a creator `seconds` into the past (in-process state).
    def age_publishes(self, open_id, seconds):
        state = self.server.state
        with state.lock:
            for publish in state.publishes.values():
                if publish.open_id == open_id:
                    publish.created_at -= seconds


class CreatorCapTests(CapsTestCase):
    """Per creator: daily_post_cap Direct Posts in 24 h, 5 unfinished drafts in 24 h."""

    # With the default cap of 15, the 16th Direct Post in 24 h is refused, and
    # creator_info says so with HTTP 200; a day later the creator may post again.
    def test_sixteenth_direct_post_refused(self):
        self.user("tok_c", open_id="capped")
        self.assertEqual(self.call("GET", "/_sim/users")[2]["users"][0]["daily_post_cap"], 15)
        for _ in range(15):
            self.init_pull("tok_c")
        self.assertEnvelope(self.api(VIDEO, self.video_body(), "tok_c"),
                            403, "spam_risk_too_many_posts")
        self.assertEnvelope(self.api(CREATOR_INFO, {}, "tok_c"), 200, "spam_risk_too_many_posts")
        # Inbox uploads are not Direct Posts: the cap does not touch them.
        self.assertEnvelope(self.api(INBOX, INBOX_BODY, "tok_c"), 200, "ok")
        # Another creator is not capped.
        self.user("tok_other")
        self.init_pull("tok_other")
        self.age_publishes("capped", DAY + 1)
        self.assertEnvelope(self.api(CREATOR_INFO, {}, "tok_c"), 200, "ok")
        self.init_pull("tok_c")

    # The 6th unfinished inbox upload in 24 h is refused; a failed draft is finished and
    # does not count; drafts older than 24 h do not count.
    def test_sixth_pending_share_refused(self):
        self.user("tok_i", open_id="drafter")
        failing = {"source_info": {"source": "PULL_FROM_URL",
                                   "video_url": VERIFIED_URL + "?sim_fail=video_pull_failed"}}
        failed_id = self.assertEnvelope(self.api(INBOX, failing, "tok_i"), 200, "ok")["publish_id"]
        for _ in range(4):
            self.assertEnvelope(self.api(INBOX, INBOX_BODY, "tok_i"), 200, "ok")
        self.wait_status(failed_id, "FAILED", "tok_i")
        self.assertEnvelope(self.api(INBOX, INBOX_BODY, "tok_i"), 200, "ok")
        self.assertEnvelope(self.api(INBOX, INBOX_BODY, "tok_i"),
                            403, "spam_risk_too_many_pending_share")
        self.age_publishes("drafter", DAY + 1)
        self.assertEnvelope(self.api(INBOX, INBOX_BODY, "tok_i"), 200, "ok")


class UnauditedAppTests(CapsTestCase):
    """config audited false: SELF_ONLY, private accounts, 5 posting creators a day."""

    PHOTO = "/v2/post/publish/content/init/"

    # A photo Direct Post body with the given privacy level.
    @staticmethod
    def photo_body(privacy, mode="DIRECT_POST"):
        return {"post_info": {"title": "t", "privacy_level": privacy},
                "source_info": {"source": "PULL_FROM_URL", "photo_cover_index": 0,
                                "photo_images": ["https://cdn.vibescaling.test/p/1.jpg"]},
                "post_mode": mode, "media_type": "PHOTO"}

    # Audited (the default): creator_info offers the account's options and public posts work.
    def test_audited_default(self):
        self.assertTrue(self.call("GET", "/_sim/config")[2]["audited"])
        data = self.assertEnvelope(self.api(CREATOR_INFO, {}), 200, "ok")
        self.assertIn("PUBLIC_TO_EVERYONE", data["privacy_level_options"])
        self.init_pull()

    # creator_info of an unaudited app offers only SELF_ONLY, public or private account.
    def test_creator_info_offers_self_only(self):
        self.config(audited=False)
        self.user("tok_priv", private_account=True)
        for token in ("tok_a", "tok_priv"):
            data = self.assertEnvelope(self.api(CREATOR_INFO, {}, token), 200, "ok")
            self.assertEqual(data["privacy_level_options"], ["SELF_ONLY"])

    # A Direct Post that is not SELF_ONLY, video or photo, answers 403
    # unaudited_client_can_only_post_to_private_accounts; so does SELF_ONLY to a public
    # account.  SELF_ONLY to a private account works; inbox uploads are not affected.
    def test_direct_post_must_be_self_only(self):
        self.config(audited=False)
        self.user("tok_priv", private_account=True)
        for privacy in ("FOLLOWER_OF_CREATOR", "MUTUAL_FOLLOW_FRIENDS"):
            self.assertEnvelope(self.api(VIDEO, self.video_body(privacy), "tok_priv"),
                                403, "unaudited_client_can_only_post_to_private_accounts")
            self.assertEnvelope(self.api(self.PHOTO, self.photo_body(privacy), "tok_priv"),
                                403, "unaudited_client_can_only_post_to_private_accounts")
        self.assertEnvelope(self.api(VIDEO, self.video_body("PUBLIC_TO_EVERYONE")),
                            403, "unaudited_client_can_only_post_to_private_accounts")
        self.assertEnvelope(self.api(VIDEO, self.video_body("SELF_ONLY")),
                            403, "unaudited_client_can_only_post_to_private_accounts")
        self.init_pull("tok_priv", privacy="SELF_ONLY")
        self.assertEnvelope(self.api(self.PHOTO, self.photo_body("SELF_ONLY"), "tok_priv"),
                            200, "ok")
        self.assertEnvelope(self.api(self.PHOTO, self.photo_body(None, "MEDIA_UPLOAD")),
                            200, "ok")
        self.assertEnvelope(self.api(INBOX, INBOX_BODY), 200, "ok")
        self.config(audited=True)
        self.init_pull()

    # An unaudited app with active_user_cap null: 5 creators may post in 24 h; a 6th is
    # refused (init 403, creator_info HTTP 200), the 5 may go on posting, and a day
    # later the 6th may post.
    def test_unaudited_five_posting_creators(self):
        self.config(audited=False)
        for i in range(6):
            self.user(f"tok_{i}", open_id=f"poster{i}", private_account=True)
        for i in range(5):
            self.init_pull(f"tok_{i}", privacy="SELF_ONLY")
        self.assertEnvelope(self.api(VIDEO, self.video_body("SELF_ONLY"), "tok_5"),
                            403, "reached_active_user_cap")
        self.assertEnvelope(self.api(CREATOR_INFO, {}, "tok_5"), 200, "reached_active_user_cap")
        self.assertEnvelope(self.api(CREATOR_INFO, {}, "tok_0"), 200, "ok")
        self.init_pull("tok_0", privacy="SELF_ONLY")
        # Inbox uploads are not Direct Posts: neither refused nor counted.
        self.assertEnvelope(self.api(INBOX, INBOX_BODY, "tok_5"), 200, "ok")
        self.age_publishes("poster4", DAY + 1)
        self.init_pull("tok_5", privacy="SELF_ONLY")
        self.assertEnvelope(self.api(VIDEO, self.video_body("SELF_ONLY"), "tok_4"),
                            403, "reached_active_user_cap")

    # active_user_cap applies to an audited app too, and overrides 5 for an unaudited one.
    def test_active_user_cap_config(self):
        self.config(active_user_cap=2)
        for i in range(3):
            self.user(f"tok_{i}", open_id=f"poster{i}", private_account=True)
        self.init_pull("tok_0", privacy="SELF_ONLY")
        self.init_pull("tok_1", privacy="FOLLOWER_OF_CREATOR")
        self.assertEnvelope(self.api(VIDEO, self.video_body("SELF_ONLY"), "tok_2"),
                            403, "reached_active_user_cap")
        self.assertEnvelope(self.api(CREATOR_INFO, {}, "tok_2"), 200, "reached_active_user_cap")
        self.assertEnvelope(self.api(self.PHOTO, self.photo_body("SELF_ONLY"), "tok_2"),
                            403, "reached_active_user_cap")
        self.config(audited=False, active_user_cap=3)
        self.init_pull("tok_2", privacy="SELF_ONLY")
        for bad in (-1, 1.5, "5", True):
            status, _, body = self.call("POST", "/_sim/config", body={"active_user_cap": bad})
            self.assertEqual(status, 400, body)
        status, _, body = self.call("POST", "/_sim/config", body={"audited": "no"})
        self.assertEqual(status, 400, body)
        self.assertEqual(self.config(active_user_cap=None)["active_user_cap"], None)
