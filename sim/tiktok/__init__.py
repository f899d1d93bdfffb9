"""A loopback simulator of TikTok's Content Posting API, OAuth v2, the Display API (user
info, video list and query) and webhooks.

It answers as docs/tiktok-api.md describes TikTok (envelope, HTTP statuses, error codes,
TikTok's field spelling) and uses only the Python 3.11 standard library.  Run it with
`python3 sim/tiktok_sim.py --port N`; sim/README.md describes the endpoints, the control
API under /_sim/ and every config key.  One module per part:

    server.py    HTTP server, routing, latency, faults applied, request log, CLI (main)
    state.py     Config, token and publish records, SimState (one lock)
    control.py   the control API under /_sim/
    faults.py    injected faults and the replies they send
    oauth.py     /v2/oauth/token/, /v2/oauth/revoke/, /v2/user/info/
    publish.py   creator_info and the video, inbox video and content (photo) inits
    uploads.py   FILE_UPLOAD chunk PUTs and the synthetic media under /_sim/media/
    status.py    status fetch and cancel
    display.py   the Display API's /v2/video/list/ and /v2/video/query/
    videos.py    which publishes are public videos, and their Video Objects
    webhooks.py  signed webhook deliveries (opt-in: config key webhook_url)
    checker.py   media checks after an init (opt-in: config key check_media)
    probe.py     TikTok's video and photo rules, checked with ffprobe
    fetch.py     downloads PULL_FROM_URL media for the checks
    wire.py      Request, Reply, TikTok's envelope and OAuth replies, the bearer check
    common.py    constants, helpers, error types
"""
