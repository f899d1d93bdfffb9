"""The Display API: /v2/video/list/, /v2/video/query/, user info counts and scopes, and
videos taken down and restored through /_sim/videos (sim/tiktok/display.py, videos.py,
oauth.py, control.py).

Run all the simulator's tests from the repository's root:
    python3 -m unittest discover -s sim/tests -t .
"""

import http.client
import json
import time
from urllib.parse import parse_qs, urlsplit

from sim.tests.helpers import PHOTO_URL, PROCESSING, VERIFIED_URL, SimTestCase
from sim.tests.test_webhooks import Receiver
from sim.tiktok.videos import VIDEO_FIELDS, cover_url_valid

LIST = "/v2/video/list/"
QUERY = "/v2/video/query/"
ALL_FIELDS = ",".join(VIDEO_FIELDS)
DISPLAY_SCOPES = ["user.info.basic", "video.publish", "video.upload", "video.list"]


class DisplayTestCase(SimTestCase):
    """A creator ou_a (token tok_a) who granted video.list, and helpers to post videos."""

    # Each test: a video.list creator, and room for many inits and status polls.
    def setUp(self):
        super().setUp()
        self.user("tok_a", open_id="ou_a", scopes=DISPLAY_SCOPES, username="alice")
        self.config(rate_limits={"init": 1000, "status_fetch": 100000})

    # POST a Display API call with ?fields=; returns (status, response, body).
    def display(self, path, body, fields=ALL_FIELDS, token="tok_a"):
        query = f"?fields={fields}" if fields is not None else ""
        return self.call("POST", path + query, body=body, token=token)

    # video/list data (asserting an ok reply).
    def list_videos(self, fields=ALL_FIELDS, token="tok_a", **body):
        return self.assertEnvelope(self.display(LIST, body, fields, token), 200, "ok")

    # video/query data (asserting an ok reply).
    def query_videos(self, ids, fields=ALL_FIELDS, token="tok_a"):
        return self.assertEnvelope(self.display(QUERY, {"filters": {"video_ids": ids}},
                                                fields, token), 200, "ok")

    # Post a public video by URL and wait until its post id is public; returns
    # (publish_id, video id as a string).
    def post_public(self, title="hello #sim", token="tok_a", privacy="PUBLIC_TO_EVERYONE"):
        body = self.video_body(privacy)
        body["post_info"]["title"] = title
        pid = self.assertEnvelope(self.api("/v2/post/publish/video/init/", body, token),
                                  200, "ok")["publish_id"]
        return pid, self.wait_public(pid, token)

    # Wait until a publish shows a post id; returns it as a string.
    def wait_public(self, publish_id, token="tok_a", timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            ids = self.status_of(publish_id, token)["publicaly_available_post_id"]
            if ids:
                return str(ids[0])
            time.sleep(0.05)
        self.fail(f"{publish_id} never became public")

    # A control call that must succeed; returns its body.
    def control(self, method, path, body=None):
        status, _, reply = self.call(method, path, body=body)
        self.assertEqual(status, 200, reply)
        return reply


class VideoListTests(DisplayTestCase):
    """POST /v2/video/list/: what is listed, its shape, order and pages."""

    # Only public video Direct Posts are listed, newest first, with every field in
    # TikTok's types; private, inbox, photo and unfinished posts are not.
    def test_shape_and_what_is_listed(self):
        first_pid, first = self.post_public("first #one")
        _, second = self.post_public("second")
        self.post_public("just me", privacy="SELF_ONLY")
        self.assertEnvelope(self.api("/v2/post/publish/inbox/video/init/", {
            "source_info": {"source": "PULL_FROM_URL", "video_url": VERIFIED_URL}}), 200, "ok")
        self.assertEnvelope(self.api("/v2/post/publish/content/init/", {
            "post_info": {"title": "pics", "privacy_level": "PUBLIC_TO_EVERYONE"},
            "post_mode": "DIRECT_POST", "media_type": "PHOTO",
            "source_info": {"source": "PULL_FROM_URL", "photo_cover_index": 0,
                            "photo_images": [PHOTO_URL]}}), 200, "ok")
        self.config(processing_seconds=60)
        self.init_pull()                                   # still downloading
        time.sleep(2 * PROCESSING + 0.1)
        status, _, body = self.display(LIST, {})
        self.assertEqual(status, 200)
        self.assertEqual(list(body), ["data", "error"])
        data = body["data"]
        self.assertEqual(set(data), {"videos", "cursor", "has_more"})
        self.assertIs(data["has_more"], False)
        self.assertIsInstance(data["cursor"], int)
        self.assertEqual([v["id"] for v in data["videos"]], [second, first])
        video = data["videos"][1]
        self.assertEqual(list(video), list(VIDEO_FIELDS))
        self.assertRegex(video["id"], r"^\d{19}$")
        self.assertEqual(video["id"], str(self.status_of(first_pid)
                                          ["publicaly_available_post_id"][0]))
        self.assertEqual((video["title"], video["video_description"]), ("first #one",) * 2)
        for key in ("create_time", "duration", "height", "width", "like_count",
                    "comment_count", "share_count", "view_count"):
            self.assertIsInstance(video[key], int, key)
        self.assertLess(abs(video["create_time"] - time.time()), 10)
        self.assertEqual(video["share_url"].split("?")[0],
                         f"https://www.tiktok.com/@alice/video/{first}")
        self.assertIn(f"/player/v1/{first}", video["embed_link"])
        self.assertIn(f'data-video-id="{first}"', video["embed_html"])
        self.assertTrue(video["cover_image_url"].startswith("https://"))
        self.assertGreaterEqual(data["cursor"], video["create_time"] * 1000)

    # Only the requested fields come back; unknown names are ignored (TikTok's own example
    # asks for "fps"); fields is required.
    def test_fields(self):
        _, vid = self.post_public()
        data = self.list_videos(fields="id,title,fps")
        self.assertEqual(data["videos"], [{"id": vid, "title": "hello #sim"}])
        self.assertEqual(self.list_videos(fields="fps")["videos"], [{}])
        self.assertEnvelope(self.display(LIST, {}, fields=None), 400, "invalid_params")
        self.assertEnvelope(self.display(LIST, {}, fields=""), 400, "invalid_params")
        self.assertEnvelope(self.display(QUERY, {"filters": {"video_ids": [vid]}},
                                         fields=None), 400, "invalid_params")

    # max_count: default 10, at most 20; pages follow the cursor until has_more is false;
    # a cursor before every video gives an empty page.
    def test_pages(self):
        ids = [self.post_public(f"v{i}")[1] for i in range(5)]
        newest_first = list(reversed(ids))
        pages, cursor = [], None
        while True:
            body = {"max_count": 2} if cursor is None else {"max_count": 2, "cursor": cursor}
            data = self.list_videos(fields="id,create_time", **body)
            pages.append([v["id"] for v in data["videos"]])
            cursor = data["cursor"]
            if not data["has_more"]:
                break
        self.assertEqual(pages, [newest_first[0:2], newest_first[2:4], newest_first[4:]])
        self.assertEqual(len(self.list_videos()["videos"]), 5)
        self.assertEqual(self.list_videos(max_count=20)["videos"][0]["id"], newest_first[0])
        oldest_ms = self.list_videos(fields="id", max_count=5, cursor=0)["cursor"]
        empty = self.list_videos(cursor=oldest_ms)
        self.assertEqual((empty["videos"], empty["has_more"]), ([], False))
        for bad in ({"max_count": 21}, {"max_count": 0}, {"max_count": "5"},
                    {"max_count": 2.5}, {"cursor": -1}, {"cursor": "1643332803000"}):
            with self.subTest(body=bad):
                self.assertEnvelope(self.display(LIST, bad), 400, "invalid_params")
        for raw in (b"[1]", b"{not json"):
            self.assertEnvelope(self.call("POST", LIST + "?fields=id", raw=raw,
                                          token="tok_a"), 400, "invalid_params")

    # A title longer than the Video Object's 150 characters is cut to 150.
    def test_long_caption(self):
        caption = "\U0001F600" + "x" * 300
        _, vid = self.post_public(caption)
        video = self.query_videos([vid], fields="title,video_description")["videos"][0]
        self.assertEqual(video, {"title": caption[:150], "video_description": caption[:150]})

    # An init whose reply a fault dropped after acting still yields a listed video: that
    # is how a client finds out what happened to it.
    def test_lost_init_reply_is_listed(self):
        self.control("POST", "/_sim/faults", {"endpoint": "video_init", "action": "drop",
                                              "after_processing": True})
        body = self.video_body()
        body["post_info"]["title"] = "lost reply #42"
        with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError)):
            self.api("/v2/post/publish/video/init/", body)
        deadline = time.time() + 5
        while time.time() < deadline and not self.list_videos()["videos"]:
            time.sleep(0.05)
        videos = self.list_videos(fields="id,title")["videos"]
        self.assertEqual([v["title"] for v in videos], ["lost reply #42"])
        publish = self.control("GET", "/_sim/publishes")["publishes"][0]
        self.assertEqual(videos[0]["id"], str(publish["post_ids"][0]))


class VideoQueryTests(DisplayTestCase):
    """POST /v2/video/query/: the caller's own public videos, metrics, cover URLs."""

    # Own public videos only, in the order asked, each once; bad filters are 400.
    def test_query_filters(self):
        _, mine1 = self.post_public("one")
        _, mine2 = self.post_public("two")
        self.user("tok_b", open_id="ou_b", scopes=DISPLAY_SCOPES)
        _, theirs = self.post_public("theirs", token="tok_b")
        data = self.query_videos([mine2, theirs, "1234", mine1, mine2], fields="id,title")
        self.assertEqual(data, {"videos": [{"id": mine2, "title": "two"},
                                           {"id": mine1, "title": "one"}]})
        self.assertEqual(self.query_videos([theirs], token="tok_b", fields="id")["videos"],
                         [{"id": theirs}])
        for bad in ({}, {"filters": {}}, {"filters": {"video_ids": []}},
                    {"filters": {"video_ids": [int(mine1)]}},
                    {"filters": {"video_ids": [mine1] * 21}}, {"filters": [mine1]}):
            with self.subTest(body=bad):
                self.assertEnvelope(self.display(QUERY, bad), 400, "invalid_params")
        self.assertEqual(len(self.query_videos([mine1] * 20)["videos"]), 1)

    # Metrics grow with age and never shrink; the control API pins them, null unpins.
    def test_metrics_grow_and_can_be_pinned(self):
        _, vid = self.post_public()
        fields = "view_count,like_count,comment_count,share_count"
        before = self.query_videos([vid], fields=fields)["videos"][0]
        time.sleep(1.2)
        after = self.query_videos([vid], fields=fields)["videos"][0]
        self.assertGreater(after["view_count"], before["view_count"])
        self.assertGreater(after["like_count"], 0)
        for key in before:
            self.assertGreaterEqual(after[key], before[key], key)
        pinned = {"view_count": 12345678901, "like_count": 7, "comment_count": 3,
                  "share_count": 1}
        reply = self.control("POST", f"/_sim/videos/{vid}", pinned)
        self.assertEqual((reply["metrics"], reply["pinned_metrics"]), (pinned, pinned))
        self.assertEqual(self.query_videos([vid], fields=fields)["videos"][0], pinned)
        self.control("POST", f"/_sim/videos/{vid}", {"view_count": None})
        grown = self.query_videos([vid], fields=fields)["videos"][0]
        self.assertEqual(grown["like_count"], 7)
        self.assertGreater(grown["view_count"], before["view_count"])
        self.assertLess(grown["view_count"], 12345678901)

    # cover_image_url is signed and expires cover_url_ttl_seconds (6 h) ahead; each call
    # signs anew, so video/query refreshes an expired URL.
    def test_cover_url_expires(self):
        _, vid = self.post_public()
        url = self.query_videos([vid], fields="cover_image_url")["videos"][0]["cover_image_url"]
        query = parse_qs(urlsplit(url).query)
        self.assertEqual(set(query), {"x-expires", "x-signature"})
        self.assertAlmostEqual(int(query["x-expires"][0]), time.time() + 6 * 3600, delta=10)
        self.assertTrue(cover_url_valid(url, time.time()))
        self.assertFalse(cover_url_valid(url.replace("x-expires=", "x-expires=1"), time.time()))
        self.config(cover_url_ttl_seconds=1)
        short = self.list_videos(fields="cover_image_url")["videos"][0]["cover_image_url"]
        self.assertTrue(cover_url_valid(short, time.time()))
        time.sleep(1.1)
        self.assertFalse(cover_url_valid(short, time.time()))
        fresh = self.query_videos([vid], fields="cover_image_url")["videos"][0]
        self.assertTrue(cover_url_valid(fresh["cover_image_url"], time.time()))
        self.assertGreater(int(parse_qs(urlsplit(fresh["cover_image_url"]).query)
                               ["x-expires"][0]), int(query["x-expires"][0]) - 6 * 3600)


class DisplayAccessTests(DisplayTestCase):
    """Scopes, rate limits and user info counts."""

    # Without video.list both endpoints answer 401 scope_not_authorized.
    def test_video_list_scope(self):
        self.user("tok_n", open_id="ou_n")                 # the default three scopes
        for path, body in ((LIST, {}), (QUERY, {"filters": {"video_ids": ["1"]}})):
            with self.subTest(path=path):
                self.assertEnvelope(self.display(path, body, token="tok_n"),
                                    401, "scope_not_authorized")
        self.assertEnvelope(self.display(LIST, {}, token="invalid_t"),
                            401, "access_token_invalid")

    # 600 a minute per token for each endpoint, counted separately: over it, 429.
    def test_rate_limits(self):
        config = self.call("GET", "/_sim/config")[2]["rate_limit_per_minute"]
        self.assertEqual((config["video_list"], config["video_query"], config["user_info"]),
                         (600, 600, 600))
        self.config(rate_limits={"video_list": 2, "video_query": 1, "user_info": 1})
        for _ in range(2):
            self.list_videos(fields="id")
        self.assertEnvelope(self.display(LIST, {}, fields="id"), 429, "rate_limit_exceeded")
        self.query_videos(["1"], fields="id")
        self.assertEnvelope(self.display(QUERY, {"filters": {"video_ids": ["1"]}}),
                            429, "rate_limit_exceeded")
        self.user("tok_c", open_id="ou_c", scopes=DISPLAY_SCOPES)
        self.list_videos(fields="id", token="tok_c")        # per token
        self.assertEnvelope(self.call("GET", "/v2/user/info/?fields=open_id", token="tok_a"),
                            200, "ok")
        self.assertEnvelope(self.call("GET", "/v2/user/info/?fields=open_id", token="tok_a"),
                            429, "rate_limit_exceeded")

    # user.info.stats fields: follower/following counts from the profile, video_count and
    # likes_count from the public videos; each field needs its scope.
    def test_user_info_stats(self):
        stats = "follower_count,following_count,likes_count,video_count"
        self.user("tok_s", open_id="ou_s", scopes=["user.info.basic", "user.info.stats",
                                                   "video.publish"],
                  follower_count=1200, following_count=34)
        empty = self.assertEnvelope(self.call("GET", f"/v2/user/info/?fields={stats}",
                                              token="tok_s"), 200, "ok")["user"]
        self.assertEqual(empty, {"follower_count": 1200, "following_count": 34,
                                 "likes_count": 0, "video_count": 0})
        _, first = self.post_public(token="tok_s")
        _, second = self.post_public(token="tok_s")
        self.control("POST", f"/_sim/videos/{first}", {"like_count": 40})
        self.control("POST", f"/_sim/videos/{second}", {"like_count": 2})
        user = self.assertEnvelope(self.call("GET", f"/v2/user/info/?fields=open_id,{stats}",
                                             token="tok_s"), 200, "ok")["user"]
        self.assertEqual(user, {"open_id": "ou_s", "follower_count": 1200,
                                "following_count": 34, "likes_count": 42, "video_count": 2})
        self.assertEnvelope(self.call("GET", "/v2/user/info/?fields=username", token="tok_s"),
                            400, "scope_permission_missed")
        self.assertEnvelope(self.call("GET", "/v2/user/info/?fields=open_id,video_count",
                                      token="tok_a"), 400, "scope_permission_missed")
        self.user("tok_p", open_id="ou_p", scopes=["user.info.basic", "user.info.profile"])
        profile = self.assertEnvelope(self.call(
            "GET", "/v2/user/info/?fields=username,is_verified,bio_description,"
            "profile_deep_link", token="tok_p"), 200, "ok")["user"]
        self.assertEqual(profile["profile_deep_link"],
                         f"https://www.tiktok.com/@{profile['username']}")
        self.user("tok_v", open_id="ou_v", scopes=["video.publish"])
        self.assertEnvelope(self.call("GET", "/v2/user/info/?fields=open_id", token="tok_v"),
                            401, "scope_not_authorized")
        status, _, body = self.call("POST", "/_sim/users/ou_s", body={"follower_count": -1})
        self.assertEqual(status, 400, body)


class TakedownTests(DisplayTestCase):
    """POST /_sim/videos/<id> {"public": false|true}: moderation takes a video down."""

    # Taking a video down removes it from video.list, video/query, user info and
    # publicaly_available_post_id, and sends no_longer_publicaly_available; restoring
    # brings it back and sends publicly_available, each with publish_id and post_id.
    def test_takedown_and_restore(self):
        receiver = Receiver()
        self.addCleanup(receiver.close)
        self.config(webhook_url=receiver.url)
        pid, vid = self.post_public("soon gone")
        self.wait_events(receiver, 2)
        listed = self.control("GET", "/_sim/videos?open_id=ou_a")["videos"]
        self.assertEqual([(v["id"], v["publish_id"], v["public"]) for v in listed],
                         [(vid, pid, True)])
        reply = self.control("POST", f"/_sim/videos/{vid}", {"public": False})
        self.assertEqual((reply["id"], reply["public"]), (vid, False))
        self.assertEqual(self.list_videos(fields="id")["videos"], [])
        self.assertEqual(self.query_videos([vid], fields="id")["videos"], [])
        self.assertEqual(self.status_of(pid)["publicaly_available_post_id"], [])
        self.assertEqual(self.status_of(pid)["status"], "PUBLISH_COMPLETE")
        events = self.wait_events(receiver, 3)
        self.assertEqual(events[2][0], "post.publish.no_longer_publicaly_available")
        content = json.loads(events[2][1]["content"])
        self.assertEqual((content["publish_id"], content["post_id"]), (pid, vid))
        self.assertEqual(self.control("GET", f"/_sim/videos/{vid}")["public"], False)
        self.control("POST", f"/_sim/videos/{vid}", {"public": False})     # no change
        self.control("POST", f"/_sim/videos/{vid}", {"public": True})
        self.assertEqual([v["id"] for v in self.list_videos(fields="id")["videos"]], [vid])
        self.assertEqual(self.status_of(pid)["publicaly_available_post_id"], [int(vid)])
        events = self.wait_events(receiver, 4)
        self.assertEqual(events[3][0], "post.publish.publicly_available")
        content = json.loads(events[3][1]["content"])
        self.assertEqual((content["publish_id"], content["post_id"]), (pid, vid))
        time.sleep(0.3)
        self.assertEqual(len(receiver.events()), 4)

    # Unknown or unpublished videos are 404; bad bodies 400.
    def test_control_errors(self):
        self.config(processing_seconds=60)
        pid = self.init_pull()
        assigned = self.control("GET", f"/_sim/publishes/{pid}")["assigned_post_id"]
        for path in (f"/_sim/videos/{assigned}", "/_sim/videos/123", "/_sim/videos/abc"):
            with self.subTest(path=path):
                self.assertEqual(self.call("GET", path)[0], 404)
        self.control("POST", f"/_sim/publishes/{pid}", {"status": "PUBLISH_COMPLETE"})
        self.assertEqual(self.control("GET", f"/_sim/videos/{assigned}")["public"], True)
        for bad in ({"public": "no"}, {"views": 1}, {"like_count": -1},
                    {"like_count": 1.5}, [1]):
            with self.subTest(body=bad):
                self.assertEqual(self.call("POST", f"/_sim/videos/{assigned}",
                                           body=bad)[0], 400)

    # Wait until a receiver holds n events; returns them.
    def wait_events(self, receiver, n, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len(receiver.events()) >= n:
                return receiver.events()
            time.sleep(0.02)
        self.fail(f"timed out waiting for {n} webhook events")
