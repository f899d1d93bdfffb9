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
} vs_http_options;

/* The outcome of one call to TikTok. All strings are malloc'd, never NULL. */
typedef struct vs_call_result
{
	int			ok;				/* 1 iff an HTTP reply came and error.code == "ok" */
	long		http_status;	/* 0 when no HTTP reply arrived */
	char	   *error_code;		/* TikTok's error.code ("ok" on success), or a
								 * transport code: "timeout", "connect_failed",
								 * "aborted", "bad_response", "transport_error" */
	char	   *error_message;	/* TikTok's error.message or the transport's */
	char	   *log_id;			/* TikTok's error.log_id, "" when absent */
	char	   *publish_id;		/* data.publish_id when present, else "" */
	char	   *data_json;		/* the reply's "data" object as JSON text, "{}" if none */
	char	   *sqlstate;		/* 5-char SQLSTATE for a failure (see vs_sqlstate_for),
								 * "00000" on success */
	double		duration_ms;	/* wall time of the HTTP exchange */
	int			retryable;		/* 1 when retrying later is safe and may succeed */
	int			outcome_unknown;	/* 1 when the request may have reached TikTok
									 * but no reply was read (timeout after send,
									 * connection dropped): not safe to resend init */
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
	VS_EP_STATUS_FETCH			/* "status_fetch"     POST /v2/post/publish/status/fetch/ */
} vs_endpoint;

/* Maps a logical endpoint name to its enum; VS_EP_UNKNOWN when unknown. */
vs_endpoint vs_endpoint_from_name(const char *name);

/* The URL path of an endpoint (static string), "" for VS_EP_UNKNOWN. */
const char *vs_endpoint_path(vs_endpoint ep);

/*
 * Builds the TikTok JSON request body for an endpoint from the flat
 * options object SQL passes:
 *   {"caption", "title", "privacy_level", "mode" ("direct"|"inbox"),
 *    "disable_comment", "disable_duet", "disable_stitch",
 *    "brand_content_toggle", "brand_organic_toggle",
 *    "video_url", "photo_urls": [..], "photo_cover_index", "publish_id"}
 * Returns a malloc'd JSON string, or NULL with *error set to a malloc'd
 * message (missing/ill-typed option).
 */
char	   *vs_build_request_body(vs_endpoint ep, const char *options_json, char **error);

/*
 * Performs one call: builds the body, POSTs it to base_url + path with
 * "Authorization: Bearer <access_token>", parses the reply into *out.
 * Never throws; always fills *out (free it with vs_call_result_free).
 */
void		vs_call(const vs_http_options *opt, vs_endpoint ep, const char *access_token,
					const char *options_json, vs_call_result *out);

/*
 * Parses a raw HTTP reply (status + body) into *out, as vs_call does after
 * the transfer. Exposed for unit tests and for callers with their own
 * transport. duration_ms is left 0.
 */
void		vs_parse_reply(long http_status, const char *body, size_t body_len, vs_call_result *out);

/*
 * SQLSTATE for a TikTok error code (or transport code) and HTTP status;
 * the mapping table is documented in README.md. Static string.
 */
const char *vs_sqlstate_for(const char *error_code, long http_status);

/* 1 when a failure with this code / HTTP status may be retried later. */
int			vs_is_retryable(const char *error_code, long http_status);

/*
 * The JSON object dispatch_logs stores for one call (no secrets):
 * {"post_id", "tiktok_account_id", "trigger", "endpoint", "http_status",
 *  "outcome" ("success"|"failure"), "error_code", "error_message",
 *  "log_id", "publish_id", "duration_ms", "outcome_unknown"}
 * post_id / account_id may be NULL (JSON null). malloc'd.
 */
char	   *vs_dispatch_log_json(const vs_call_result *r, const char *post_id,
								 const char *account_id, const char *trigger,
								 const char *endpoint);

/*
 * The JSON object SQL receives from vibescaling._tiktok_call:
 * {"ok", "http_status", "error_code", "error_message", "log_id",
 *  "publish_id", "data", "sqlstate", "duration_ms", "retryable",
 *  "outcome_unknown"}. malloc'd.
 */
char	   *vs_result_json(const vs_call_result *r);

/* Frees the strings inside *r (not r itself). */
void		vs_call_result_free(vs_call_result *r);

/* Frees a string the core returned. */
void		vs_free(void *p);

#ifdef __cplusplus
}
#endif

#endif							/* VS_CORE_H */
