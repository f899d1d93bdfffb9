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
	VS_EP_STATUS_FETCH,			/* "status_fetch"     POST /v2/post/publish/status/fetch/ */
	VS_EP_OAUTH_TOKEN,			/* "oauth_token"      POST /v2/oauth/token/ (form, no bearer) */
	VS_EP_OAUTH_REVOKE,			/* "oauth_revoke"     POST /v2/oauth/revoke/ (form, no bearer) */
	VS_EP_USER_INFO				/* "user_info"        GET  /v2/user/info/?fields=open_id,union_id,avatar_url,display_name */
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
 * Builds the TikTok request body for an endpoint from the flat options
 * object SQL passes:
 *   {"caption", "title", "privacy_level", "mode" ("direct"|"inbox"),
 *    "disable_comment", "disable_duet", "disable_stitch",
 *    "brand_content_toggle", "brand_organic_toggle",
 *    "video_url", "photo_urls": [..], "photo_cover_index", "publish_id"}
 * For the publish endpoints the body is compact JSON.
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
 * the reply into *out. The publish endpoints are POSTs of JSON with
 * "Authorization: Bearer <access_token>"; user_info is a GET (no body)
 * with the same bearer header; oauth_token and oauth_revoke POST a form
 * and send NO Authorization header (access_token is not sent; it may be
 * NULL). oauth_token is never silently re-sent on a reused connection
 * (a code is single-use and a refresh token rotates), like the inits.
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
 * the mapping table is documented in README.md. Static string.
 */
const char *vs_sqlstate_for(const char *error_code, long http_status);

/* 1 when a failure with this code / HTTP status may be retried later. */
int			vs_is_retryable(const char *error_code, long http_status);

/*
 * The JSON object dispatch_logs stores for one call (no secrets: it never
 * includes data_json, and vs_call has redacted secrets from error_message):
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
 *
 * It carries "data" whole. For oauth_token that is the new access_token and
 * refresh_token: this document then holds SECRETS. Hand it only to the
 * caller that stores the tokens; never log it, RAISE it, or write it to
 * dispatch_logs (use vs_dispatch_log_json for logging, which has no data).
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
