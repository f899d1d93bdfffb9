"""Publish status fetch and cancel.

What TikTok documents (docs/tiktok-api.md):
- `POST /v2/post/publish/status/fetch/ {"publish_id"}` (video.publish or video.upload,
  30 calls a minute per token).  `data.status` is PROCESSING_UPLOAD,
  PROCESSING_DOWNLOAD, SEND_TO_USER_INBOX, PUBLISH_COMPLETE or FAILED; `fail_reason`
  when FAILED (e.g. video_pull_failed, publish_cancelled, internal);
  `publicaly_available_post_id` (TikTok's spelling): 19-digit post ids, filled only after
  moderation, so it can be `[]` at PUBLISH_COMPLETE; `uploaded_bytes` (FILE_UPLOAD) or
  `downloaded_bytes` (PULL_FROM_URL).  A FAILED publish still answers HTTP 200 with
  error.code "ok".
- Errors: 400 `invalid_publish_id` (unknown id), 400
  `token_not_authorized_for_specified_publish_id` (another user's publish).
- `POST /v2/post/publish/cancel/ {"publish_id"}` cancels an in-flight PULL_FROM_URL
  publish; anything else is 400 `publish_not_cancellable`.

What this module does: StatusApi answers both from the publish's lazily computed
progress (state.Publish.progress); a cancel marks the publish, which then reads FAILED
with fail_reason publish_cancelled.
"""

from __future__ import annotations

from .common import (FILE, FINAL_STATUSES, PULL, SCOPE_PUBLISH, SCOPE_UPLOAD, ST_FAILED,
                     ApiError, now)
from .state import Publish
from .wire import EndpointFamily, Reply, Request, envelope_reply


class StatusApi(EndpointFamily):
    """status_fetch and cancel (handlers run with state.lock held)."""

    # POST /v2/post/publish/status/fetch/
    def status_fetch(self, req: Request) -> Reply:
        profile = self.authorize(req, (SCOPE_PUBLISH, SCOPE_UPLOAD))
        publish = self.owned_publish(req, profile)
        at = now()
        status, fail_reason, post_ids = publish.progress(at)
        data = {"status": status}
        if status == ST_FAILED:
            data["fail_reason"] = fail_reason
        data["publicaly_available_post_id"] = post_ids
        if publish.source == FILE:
            data["uploaded_bytes"] = publish.uploaded_bytes
        else:
            data["downloaded_bytes"] = publish.downloaded_bytes(at)
        return envelope_reply(200, data)

    # POST /v2/post/publish/cancel/ (only an in-flight PULL_FROM_URL can be cancelled)
    def cancel(self, req: Request) -> Reply:
        profile = self.authorize(req, (SCOPE_PUBLISH, SCOPE_UPLOAD))
        publish = self.owned_publish(req, profile)
        status, _, _ = publish.progress(now())
        if publish.source != PULL or status in FINAL_STATUSES:
            raise ApiError(400, "publish_not_cancellable",
                           f"The publish cannot be cancelled in status {status}")
        publish.cancelled = True
        return envelope_reply(200, {})

    # Find a publish the caller may see, by the body's publish_id.
    def owned_publish(self, req: Request, profile: dict) -> Publish:
        body = req.json_object()
        publish_id = body.get("publish_id")
        if not isinstance(publish_id, str) or not publish_id:
            raise ApiError(400, "invalid_param", "publish_id is required")
        req.publish_id = publish_id
        publish = self.state.publishes.get(publish_id)
        if publish is None:
            raise ApiError(400, "invalid_publish_id", "The publish_id does not exist")
        if publish.open_id != profile["open_id"]:
            raise ApiError(400, "token_not_authorized_for_specified_publish_id",
                           "The access token is not authorized for this publish_id")
        return publish
