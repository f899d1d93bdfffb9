/*
 * vs_core.h: the C boundary of vibescaling's Postgres-free core.
 *
 * The core (TikTok request building, HTTP via libcurl, response parsing,
 * error classification) is C++17 and knows nothing of PostgreSQL. The
 * Postgres layer calls it only through these extern "C" functions, which
 * never throw: every C++ exception is caught inside and turned into a
 * failed vs_call_result. Strings handed out are malloc'd and owned by the
 * caller, who frees them with vs_call_result_free / vs_free.
 */
#ifndef VS_CORE_H
#define VS_CORE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How to reach TikTok, and when to give up. */
typedef struct vs_http_options
{
	const char *base_url;		/* e.g. "https://open.tiktokapis.com", no trailing slash needed */
	long		connect_timeout_ms; /* libcurl CURLOPT_CONNECTTIMEOUT_MS */
	long		request_timeout_ms; /* libcurl CURLOPT_TIMEOUT_MS (whole call) */

	/*
	 * Polled from curl's progress callback (several times a second); a
	 * nonzero answer aborts the transfer with error_code "aborted". The
	 * Postgres layer answers from InterruptPending, so query cancel and
	 * statement_timeout stop an in-flight call. May be NULL.
	 */
	int			(*should_abort) (void);

	/*
	 * A PEM file of the certificate authorities to trust for https, instead
	 * of the system's (libcurl CURLOPT_CAINFO); NULL or "" for the system's.
	 */
	const char *ca_file;

	/*
	 * Only for video source downloads (vs_probe_source, vs_fetch_range),
	 * never for calls to TikTok or its upload URL.
	 *
	 * A source may only be connected to at a public unicast address: every
	 * address a download connects to (each one DNS gives, on every
	 * redirect hop, checked on the socket about to be opened, so DNS
	 * rebinding cannot slip past) is refused when it is loopback, private
	 * (10/8, 172.16/12, 192.168/16), shared (100.64/10), link-local
	 * (169.254/16, fe80::/10), unspecified, multicast, broadcast, unique
	 * local (fc00::/7), documentation or otherwise reserved, also inside an
	 * IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 IPv6 address. Proxies from
	 * the environment are not used for sources. source_allowed_networks
	 * lists networks allowed all the same: comma-separated IPv4/IPv6
	 * addresses or CIDRs ("127.0.0.1/32, fd00::/8"; see
	 * vs_check_network_list); NULL or "" for none. A malformed list makes
	 * every download fail with "invalid_param".
	 */
	const char *source_allowed_networks;

	/* Longest wait for a source's TCP/TLS connection; <= 0 for 5000. */
	long		source_connect_timeout_ms;

	/*
	 * A source download that receives no byte for this long is abandoned
	 * (error "source_unreachable"); <= 0 for 10000. request_timeout_ms
	 * still bounds each source request as a whole.
	 */
	long		source_stall_timeout_ms;
} vs_http_options;

/* The outcome of one call to TikTok. All strings are malloc'd, never NULL. */
typedef struct vs_call_result
{
	int			ok;				/* 1 iff an HTTP reply came and error.code == "ok"
								 * (oauth_token: a 2xx with an access_token;
								 * oauth_revoke: a 2xx without "error") */
	long		http_status;	/* 0 when no HTTP reply arrived */
	char	   *error_code;		/* TikTok's error.code ("ok" on success), OAuth's
								 * flat "error", or a transport code: "timeout",
								 * "connect_failed", "aborted", "bad_response",
								 * "transport_error" */
	char	   *error_message;	/* TikTok's error.message (OAuth: error_description)
								 * or the transport's; secrets redacted by vs_call */
	char	   *log_id;			/* TikTok's error.log_id, "" when absent */
	char	   *publish_id;		/* data.publish_id when present, else "" */
	char	   *data_json;		/* the reply's "data" object as JSON text, "{}" if none;
								 * for a successful oauth_token the whole flat reply,
								 * tokens included (a secret: never log it) */
	char	   *sqlstate;		/* 5-char SQLSTATE for a failure (see vs_sqlstate_for),
								 * "00000" on success */
	double		duration_ms;	/* wall time of the HTTP exchange */
	int			retryable;		/* 1 when retrying later is safe and may succeed;
								 * always 0 for an init (see vs_endpoint_creates_post)
								 * whose outcome_unknown is 1 */
	int			outcome_unknown;	/* 1 when the request may have reached TikTok
									 * and we cannot tell what it did (timeout
									 * after send, connection dropped). For an
									 * init also every failure whose reply does
									 * not prove a refusal (see vs_call): never
									 * resend such an init */
	long		retry_after_s;	/* vs_call: the reply's Retry-After header as
								 * seconds to wait (delta-seconds as given; an
								 * HTTP-date as seconds from the reply's arrival,
								 * 0 when already past, never negative; capped
								 * at 2147483647), on any HTTP reply, success
								 * or not. -1 when absent, unparsable, or no
								 * reply came, and always -1 from the other
								 * functions filling a vs_call_result. A caller
								 * building one by hand (memset) sets it to -1. */
} vs_call_result;

/*
 * Logical endpoints. The names are what SQL passes and what dispatch_logs
 * records in its "endpoint" column.
 */
typedef enum vs_endpoint
{
	VS_EP_UNKNOWN = 0,
	VS_EP_CREATOR_INFO,			/* "creator_info"     POST /v2/post/publish/creator_info/query/ */
	VS_EP_VIDEO_INIT,			/* "video_init"       POST /v2/post/publish/video/init/ */
	VS_EP_INBOX_VIDEO_INIT,		/* "inbox_video_init" POST /v2/post/publish/inbox/video/init/ */
	VS_EP_CONTENT_INIT,			/* "content_init"     POST /v2/post/publish/content/init/ */
	VS_EP_STATUS_FETCH,			/* "status_fetch"     POST /v2/post/publish/status/fetch/ */
	VS_EP_OAUTH_TOKEN,			/* "oauth_token"      POST /v2/oauth/token/ (form, no bearer) */
	VS_EP_OAUTH_REVOKE,			/* "oauth_revoke"     POST /v2/oauth/revoke/ (form, no bearer) */
	VS_EP_USER_INFO,			/* "user_info"        GET  /v2/user/info/?fields=open_id,union_id,avatar_url,display_name */
	VS_EP_VIDEO_LIST,			/* "video_list"       POST /v2/video/list/?fields=id,create_time,title,video_description,duration,share_url */
	VS_EP_VIDEO_QUERY,			/* "video_query"      POST /v2/video/query/?fields=id,create_time,duration,view_count,like_count,comment_count,share_count */
	VS_EP_USER_STATS			/* "user_stats"       GET  /v2/user/info/?fields=open_id,follower_count,following_count,likes_count,video_count */
} vs_endpoint;

/* Maps a logical endpoint name to its enum; VS_EP_UNKNOWN when unknown. */
vs_endpoint vs_endpoint_from_name(const char *name);

/*
 * The URL path of an endpoint (static string), "" for VS_EP_UNKNOWN. For
 * VS_EP_USER_INFO it is the path with its query string:
 * "/v2/user/info/?fields=open_id,union_id,avatar_url,display_name".
 */
const char *vs_endpoint_path(vs_endpoint ep);

/*
 * 1 for the init endpoints: each call creates a post on TikTok and TikTok
 * has no idempotency key, so such a request is never re-sent blindly (the
 * Postgres layer logs it as "in flight" before sending it).
 */
int			vs_endpoint_creates_post(vs_endpoint ep);

/*
 * Builds the TikTok request body for an endpoint from the flat options
 * object SQL passes:
 *   {"caption", "title", "privacy_level", "mode" ("direct"|"inbox"),
 *    "disable_comment", "disable_duet", "disable_stitch",
 *    "brand_content_toggle", "brand_organic_toggle",
 *    "video_cover_timestamp_ms", "is_aigc",
 *    "source" ("PULL_FROM_URL"|"FILE_UPLOAD"), "video_url",
 *    "video_size", "chunk_size", "total_chunk_count",
 *    "photo_urls": [..], "photo_cover_index", "publish_id"}
 * For the publish endpoints the body is compact JSON.
 *
 * video_init and inbox_video_init: without "source" (or with
 * "PULL_FROM_URL") source_info is {"source":"PULL_FROM_URL","video_url"}
 * and video_url is required. With "source": "FILE_UPLOAD" it is
 * {"source":"FILE_UPLOAD","video_size","chunk_size","total_chunk_count"},
 * those three required positive integers with chunk_size <= video_size and
 * total_chunk_count = floor(video_size / chunk_size) (use vs_plan_chunks),
 * and video_url is not needed. video_init's post_info gets
 * "video_cover_timestamp_ms" (integer >= 0) and "is_aigc" (boolean) only
 * when the options have them.
 *
 * The OAuth endpoints take an application/x-www-form-urlencoded body, every
 * value percent-encoded (RFC 3986: all but A-Z a-z 0-9 - . _ ~), fields in
 * this fixed order:
 *   oauth_token, {"grant_type": "authorization_code"}:
 *     client_key, client_secret, code, grant_type, redirect_uri
 *     [, code_verifier when present and non-empty]
 *   oauth_token, {"grant_type": "refresh_token"}:
 *     client_key, client_secret, grant_type, refresh_token
 *   oauth_revoke: client_key, client_secret, token (the token to revoke)
 * All of these are required non-empty strings (JSON null counts as absent).
 * user_info is a GET: its body is "" (an empty malloc'd string).
 *
 * Returns a malloc'd string, or NULL with *error set to a malloc'd message
 * (missing/ill-typed option; the message names the option, never a value).
 */
char	   *vs_build_request_body(vs_endpoint ep, const char *options_json, char **error);

/*
 * Performs one call: builds the body, sends it to base_url + path, parses
 * the reply into *out, and reads its Retry-After header into
 * out->retry_after_s. The publish endpoints are POSTs of JSON with
 * "Authorization: Bearer <access_token>"; user_info is a GET (no body)
 * with the same bearer header; oauth_token and oauth_revoke POST a form
 * and send NO Authorization header (access_token is not sent; it may be
 * NULL). The call rides vs_call_many's kept-alive connections (HTTP/2
 * when offered), under the same rule: a request is never re-sent by
 * libcurl; when a reused connection dies before any reply byte the call
 * fails with "transport_error", outcome unknown. oauth_token and
 * oauth_revoke always open a connection of their own instead (a code is
 * single-use and a refresh token rotates: their outcome must not become
 * unknown for a connection that died while idle).
 *
 * Inits (vs_endpoint_creates_post): a failed init is known not to have
 * created a post only when the reply proves TikTok refused it: HTTP 2xx or
 * 4xx with a well-formed JSON envelope {"data": {..}, "error": {"code":
 * C, ..}} ("data" an object, null or absent) where C is one of TikTok's refusal codes (invalid_param(s),
 * access_token_invalid, scope_not_authorized, spam_risk_*,
 * privacy_level_option_mismatch, reached_active_user_cap,
 * unaudited_client_can_only_post_to_private_accounts,
 * url_ownership_unverified, rate_limit_exceeded,
 * app_version_check_failed). Every other failure of an init (an empty,
 * unparsable, HTML, non-object, ill-typed or invalid UTF-8 body, an "ok"
 * without a publish_id string, any 5xx even with an internal_error
 * envelope, an unknown code, a body too large to read, a timeout or a
 * dropped connection after the request may have left) has
 * outcome_unknown = 1 and retryable = 0, and its error_message ends with
 * "the outcome is unknown (TikTok may have created the post), so the init
 * will not be resent". The error_code and sqlstate stay those of the
 * failure (e.g. bad_response 08P01, internal_error 08000). Other endpoints
 * keep retryable per vs_is_retryable.
 *
 * Secrets never reach error_message: every occurrence of the bearer token
 * and of the options client_secret, code, code_verifier, refresh_token and
 * token (also percent- or JSON-escaped, or cut short by truncation) is
 * replaced by "***", so error_message may go to dispatch_logs as is.
 *
 * Never throws; always fills *out (free it with vs_call_result_free).
 */
void		vs_call(const vs_http_options *opt, vs_endpoint ep, const char *access_token,
					const char *options_json, vs_call_result *out);

/* One call of a batch (see vs_call_many). */
typedef struct vs_call_spec
{
	vs_endpoint endpoint;
	const char *access_token;	/* bearer token; NULL/"" for the OAuth endpoints */
	const char *options_json;	/* as for vs_call */
} vs_call_spec;

/*
 * Performs n calls concurrently, at most max_concurrent transfers in flight
 * at once (values below 1 count as 1, above 1024 as 1024), and fills
 * results[i] for specs[i] exactly as vs_call would: same request building,
 * same reply parsing, same rule for inits (a failure whose reply does not
 * prove a refusal has outcome_unknown = 1 and retryable = 0), same Retry-After handling, same secret redaction
 * of error_message, same connect and total timeouts per call from opt
 * (each call's timeout runs from its own start). An invalid spec (unknown
 * endpoint, bad options, token with control characters, no base_url) gets
 * its own "invalid_param" result (http_status 0) and does not affect the
 * others.
 *
 * Connections are kept alive in a pool of the process, shared by all
 * batches and by vs_call's single calls: HTTP/1.1 keep-alive, or HTTP/2
 * with many calls multiplexed on one connection when the server offers it
 * over TLS; at most max_concurrent connections are open, and an idle one
 * older than 30 s is closed instead of reused. A request is never re-sent: when a
 * reused connection turns out closed before any reply byte, libcurl's own
 * retry is stopped and the call fails with error_code "transport_error",
 * outcome_unknown = 1 (the first copy may have been read), retryable per
 * vs_is_retryable, except for an init: retryable = 0 (never resent).
 *
 * opt->should_abort is polled at least every 100 ms. Once it answers
 * nonzero every call still running is stopped with error_code "aborted"
 * (outcome_unknown = 1 when the request may have left the process: it was
 * connected or being sent; 0 otherwise), and the calls not started yet get
 * "aborted" with outcome_unknown = 0 and are never sent. Calls already
 * finished keep their result.
 *
 * n == 0 does nothing. With n < 0, or specs or results NULL, nothing is
 * done and results is not written. Never throws; otherwise always fills all
 * n results (free each with vs_call_result_free).
 */
void		vs_call_many(const vs_http_options *opt, int max_concurrent, int n,
						 const vs_call_spec *specs, vs_call_result *results);

/*
 * Counters of the process's kept-alive connections since start (vs_call_many,
 * vs_call but OAuth's, vs_put_chunk, vs_probe_source, vs_fetch_range; for
 * benchmarks and tests).
 */
typedef struct vs_pool_stats
{
	long long	transfers;		/* requests handed to libcurl over them (sent or attempted) */
	long long	connections_opened; /* new connections (connects) those transfers made */
	long long	connections_reused; /* sends over a connection kept alive from before */
} vs_pool_stats;

/* Fills *out with the pool counters (out may be NULL: nothing happens). */
void		vs_get_pool_stats(vs_pool_stats *out);

/*
 * Parses a raw HTTP reply (status + body) of a publish endpoint (the
 * {"data", "error"} envelope, or OAuth's flat error) into *out. Exposed for
 * unit tests and for callers with their own transport. duration_ms is left 0.
 */
void		vs_parse_reply(long http_status, const char *body, size_t body_len, vs_call_result *out);

/*
 * Parses a raw HTTP reply as vs_call does for endpoint ep (no secrets are
 * redacted here: the options are unknown):
 *   - publish endpoints and user_info: as vs_parse_reply (for user_info,
 *     data_json is "data", i.e. {"user": {...}});
 *   - oauth_token: the flat reply. Success is a 2xx with a non-empty string
 *     "access_token": ok=1, data_json = the whole flat object (access_token,
 *     refresh_token, open_id, scope, expires_in, ...), log_id = "log_id"
 *     when present. {"error": "<code>", "error_description": ..} (any HTTP
 *     status) or an envelope-style {"error": {"code", "message"}} is a
 *     failure with that code and message. Anything else is bad_response,
 *     whose message never quotes the body (it could hold tokens);
 *   - oauth_revoke: a 2xx with an empty body, or a JSON object without
 *     "error", is ok; errors as for oauth_token.
 */
void		vs_parse_endpoint_reply(vs_endpoint ep, long http_status, const char *body,
									size_t body_len, vs_call_result *out);

/*
 * SQLSTATE for a TikTok error code (or transport code) and HTTP status;
 * the mapping table is documented in docs/errors.md. Static string.
 */
const char *vs_sqlstate_for(const char *error_code, long http_status);

/* 1 when a failure with this code / HTTP status may be retried later. */
int			vs_is_retryable(const char *error_code, long http_status);

/*
 * The JSON object dispatch_logs stores for one call (no secrets: it never
 * includes data_json, and vs_call has redacted secrets from error_message):
 * {"post_id", "tiktok_account_id", "trigger", "endpoint", "http_status",
 *  "outcome" ("success"|"failure"), "error_code", "error_message",
 *  "log_id", "publish_id", "duration_ms", "outcome_unknown", "retry_after"}
 * ("retry_after" as in vs_result_json). post_id / account_id may be NULL
 * (JSON null). malloc'd.
 */
char	   *vs_dispatch_log_json(const vs_call_result *r, const char *post_id,
								 const char *account_id, const char *trigger,
								 const char *endpoint);

/*
 * The JSON object SQL receives from vibescaling._tiktok_call:
 * {"ok", "http_status", "error_code", "error_message", "log_id",
 *  "publish_id", "data", "sqlstate", "duration_ms", "retryable",
 *  "outcome_unknown", "retry_after"}. "retry_after" is retry_after_s as a
 * number, or null when it is negative (no Retry-After). malloc'd.
 *
 * It carries "data" whole. For oauth_token that is the new access_token and
 * refresh_token, for a FILE_UPLOAD init the upload_url (its query string
 * holds the upload token): this document then holds SECRETS. Hand it only to the
 * caller that stores the tokens; never log it, RAISE it, or write it to
 * dispatch_logs (use vs_dispatch_log_json for logging, which has no data).
 */
char	   *vs_result_json(const vs_call_result *r);

/*
 * FILE_UPLOAD (see "FILE_UPLOAD chunks" in docs/tiktok-api.md):
 * plan the chunks, init with "source": "FILE_UPLOAD" and the plan's sizes
 * (its reply's data.upload_url is a SECRET: it carries the upload token),
 * then PUT each chunk in order with vs_put_chunk. A video that is only
 * reachable at a URL can be read chunk by chunk with vs_probe_source and
 * vs_fetch_range; vs_sniff_video_type names its Content-Type (the only
 * type to trust: never a Content-Type header or a declared type).
 */

/* A chunk plan. */
typedef struct vs_chunk_plan
{
	int			ok;				/* 0: error holds why (size 0, over 4 GiB) */
	long long	video_size,
				chunk_size,
				last_chunk_size;
	int			total_chunk_count;
	char		error[200];
} vs_chunk_plan;

/*
 * Plans TikTok's chunks: MB = 1024*1024. Under 5 MB: one chunk of the
 * whole size. Else chunk = clamp(preferred (0, or negative, => 10 MB),
 * 5 MB, 64 MB), and never more than the size; total_chunk_count =
 * floor(size / chunk); the last chunk takes the remainder (so it is
 * chunk..2*chunk-1 bytes, at most 128 MB); at most 1000 chunks (raise the
 * chunk size if needed); video at most 4 GiB (4*1024^3). Never fails for
 * sizes 1 .. 4 GiB. out may not be NULL.
 */
void		vs_plan_chunks(long long video_size, long long preferred_chunk_size, vs_chunk_plan *out);

/*
 * First byte and length of chunk index (0-based) of a valid plan; 0 and 0
 * for a plan that is not ok or an index outside [0, total_chunk_count).
 * first / length may be NULL.
 */
void		vs_chunk_range(const vs_chunk_plan *plan, int index, long long *first, long long *length);

/* One chunk to PUT. */
typedef struct vs_chunk_put
{
	const char *upload_url;		/* used whole, with its query string (it carries the
								 * upload token: a secret) */
	const char *content_type;	/* video/mp4 | video/quicktime | video/webm */
	long long	first,
				length,
				total;
	const char *data;			/* length bytes (not copied) */
} vs_chunk_put;

/*
 * PUTs one chunk: headers Content-Range: bytes FIRST-LAST/TOTAL,
 * Content-Length, Content-Type; no Authorization, no "Expect:
 * 100-continue"; on a kept-alive connection (a video's chunks share one),
 * never re-sent by libcurl itself: a PUT whose reused connection died
 * before any reply byte fails as transport_error, outcome unknown,
 * retryable (a PUT of the same range is idempotent; the caller logs each
 * attempt). opt->base_url is not used. Fills *out like vs_call: ok iff HTTP 206 or 201; for any HTTP
 * reply data_json =
 * {"complete": bool (HTTP 201), "uploaded_bytes": N}, N = LAST+1 from the
 * reply's Content-Range "bytes 0-LAST/TOTAL", or -1 when absent (or
 * another form); log_id from a TikTok envelope body when there is one.
 * error_code by HTTP status: 400 "chunk_rejected", 403
 * "upload_url_expired", 404 "upload_not_found", 416 "range_mismatch", 429
 * "rate_limit_exceeded", 5xx "internal_error", other 4xx
 * "chunk_rejected", other statuses "bad_response"; transport errors as
 * vs_call; bad arguments (URL not http/https, unknown content_type, range
 * not inside [0, total), total over 4 GiB, NULL data) are "invalid_param"
 * before anything is sent. sqlstate/retryable via vs_sqlstate_for /
 * vs_is_retryable: chunk_rejected 22023, upload_url_expired 55000 (start
 * a fresh init), upload_not_found 55000, range_mismatch 55000 (resync
 * from uploaded_bytes), none of them retried; internal_error 08000
 * retryable. error_message never contains the upload URL's query string
 * (masked as "***"). Honours should_abort and timeouts like vs_call.
 */
void		vs_put_chunk(const vs_http_options *opt, const vs_chunk_put *chunk, vs_call_result *out);

/*
 * Probes a video source at an http/https URL (our own download, not
 * TikTok: up to 5 redirects are followed, http/https only, for the URL and
 * every redirect; no Authorization header; opt->base_url is not used;
 * every address connected to must pass the source address rules, see
 * vs_http_options.source_allowed_networks) with a GET "Range: bytes=0-63"
 * (pre-signed URLs often allow GET only). ok iff the size is known, at
 * most 4 GiB (TikTok's limit), and the first bytes are a video container
 * (vs_sniff_video_type), whatever the Content-Type header says; an empty
 * source (size 0) is ok too. The size comes from the Content-Range total
 * of a 206 (or of a 416 "bytes * /0": an empty source), or the
 * Content-Length of a 200 (a server that ignores Range; the download
 * stops after 64 bytes). data_json (for a 200, 206 or 416 reply) =
 * {"size": N (-1 unknown), "content_type": the SNIFFED type ("video/mp4",
 * "video/quicktime", "video/webm", "" when none), "accepts_ranges": bool
 * (it answered the range)}. Errors:
 *   "invalid_param" (bad URL, malformed allow-list; nothing sent),
 *   "source_not_video" (22023: the first bytes are no MP4/MOV/WebM),
 *   "source_too_large" (22023: the source announces more than 4 GiB),
 *   "source_size_unknown" (no size given),
 *   "source_http_error" (any other status; sqlstate/retry by HTTP status),
 *   "source_unreachable" (08000, retryable, http_status 0: EVERY transport
 *     failure alike, whether the address was refused, the connection
 *     refused, DNS failed, the connect or stall timeout or
 *     request_timeout_ms struck, TLS failed or a redirect was refused, so
 *     that nobody can probe ports or hosts through it),
 *   "aborted" (should_abort).
 * The message never quotes the source's reply (no body, no header) and
 * never holds the URL (userinfo, query string) or the address. outcome_unknown
 * is always 0 (a GET creates nothing).
 */
void		vs_probe_source(const vs_http_options *opt, const char *url, vs_call_result *out);

/*
 * GETs "Range: bytes=first-(first+length-1)" of the source at url (same
 * rules and errors as vs_probe_source) into buffer (capacity length
 * bytes: never written past); *received (may be NULL) = bytes stored, only
 * ever from a 206 body, or a 200 one when first == 0 (on failure the
 * buffer may hold that many bytes of no use). ok iff HTTP 206 with exactly
 * length bytes (and, when given, a Content-Range starting at first), or
 * HTTP 200 when first == 0 and the body is exactly length bytes. data_json
 * for a 200/206 reply = {"received": N, "total": the source size or -1}.
 * Errors: "invalid_param" (bad URL, first < 0, length <= 0, a range
 * reaching past 4 GiB, NULL buffer), "range_not_supported" (HTTP 200 when
 * first > 0, or a whole body longer than length), "source_too_short"
 * (416, or fewer bytes because the source ends before first+length),
 * "source_too_large" (a total over 4 GiB), "bad_response" (a different
 * range, more bytes than asked, or a short body for no known reason:
 * retryable), "source_http_error" (any other status),
 * "source_unreachable", "aborted".
 */
void		vs_fetch_range(const vs_http_options *opt, const char *url, long long first,
						   long long length, char *buffer, long long *received,
						   vs_call_result *out);

/*
 * The video Content-Type from a file's first bytes (give at least 12):
 * "video/mp4" (ISO BMFF "ftyp" box at offset 4 with a major brand other
 * than "qt  "), "video/quicktime" ("ftyp" with "qt  ", or a first atom
 * "moov"/"mdat"/"wide"/"free" at offset 4), "video/webm" (EBML magic
 * 1A 45 DF A3), NULL otherwise (also for NULL head). Static string.
 */
const char *vs_sniff_video_type(const unsigned char *head, size_t len);

/*
 * Checks a list for vs_http_options.source_allowed_networks:
 * comma-separated entries, each an IPv4 address (dotted quad, no leading
 * zeros) or IPv6 address (no zone id), optionally "/PREFIX" (0-32 or
 * 0-128; host bits must be zero). Blanks around entries are ignored; NULL
 * or an all-blank string is the empty list; an empty entry is an error.
 * Returns 1 when valid; else 0 with a message naming the bad entry in
 * error (NUL-terminated, cut to error_size; error may be NULL).
 */
int			vs_check_network_list(const char *list, char *error, size_t error_size);

/*
 * A URL fit for a message: "scheme://host[:port]/path", with any userinfo
 * ("user:password@") dropped, the query string replaced by "?…" (U+2026)
 * and any fragment dropped, invalid UTF-8 and control bytes replaced, cut
 * to about 300 bytes. Pre-signed URLs carry their credentials in the query
 * string. malloc'd (free with vs_free); NULL when memory runs out; "" for
 * a NULL url.
 */
char	   *vs_mask_url(const char *url);

/* Frees the strings inside *r (not r itself). */
void		vs_call_result_free(vs_call_result *r);

/* Frees a string the core returned. */
void		vs_free(void *p);

#ifdef __cplusplus
}
#endif

#endif							/* VS_CORE_H */
