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
