/* gucs.cpp: vibescaling's configuration parameters. */
#include "pg_headers.h"
#include "gucs.h"
#include "../core/vs_core.h"

char	   *vs_guc_api_base_url = NULL;
int			vs_guc_connect_timeout_ms = 5000;
int			vs_guc_request_timeout_ms = 30000;
char	   *vs_guc_client_key = NULL;
char	   *vs_guc_client_secret = NULL;
char	   *vs_guc_token_encryption_key = NULL;
int			vs_guc_token_refresh_margin_s = 300;
int			vs_guc_creator_info_ttl_s = 60;
int			vs_guc_max_open_posts_per_owner = 10000;
int			vs_guc_max_upload_mb_per_owner_day = 65536;
char	   *vs_guc_pull_url_prefixes = NULL;
int			vs_guc_upload_chunk_size_mb = 10;
int			vs_guc_upload_chunk_attempts = 3;
int			vs_guc_retry_base_delay_s = 60;
int			vs_guc_retry_max_delay_s = 3600;
int			vs_guc_max_attempts = 5;
int			vs_guc_webhook_tolerance_s = 300;
int			vs_guc_rate_limit_window_s = 60;
int			vs_guc_rate_limit_max_wait_ms = 10000;
int			vs_guc_max_concurrent_requests = 128;
int			vs_guc_dispatch_sessions = 4;
char	   *vs_guc_ca_file = NULL;
char	   *vs_guc_source_allowed_networks = NULL;
int			vs_guc_source_connect_timeout_ms = 5000;
int			vs_guc_source_stall_timeout_ms = 10000;
char	   *vs_guc_log_retention = NULL;
int			vs_guc_log_lock_timeout_ms = 200;
int			vs_guc_unknown_outcome_policy = 0;
int			vs_guc_unknown_outcome_quiet_period_s = 21600;
int			vs_guc_publish_confirm_timeout_s = 7200;
int			vs_guc_metrics_follow_days = 90;
bool		vs_guc_media_checks = true;
bool		vs_guc_probe_pull_urls = false;
bool		vs_guc_app_audited = true;
int			vs_guc_max_posts_per_account_day = 15;
int			vs_guc_caps_policy = 0;

/* vibescaling.unknown_outcome_policy's values (read by SQL as text). */
static const struct config_enum_entry unknown_outcome_policies[] = {
	{"hold", 0, false},
	{"retry_after_quiet_period", 1, false},
	{NULL, 0, false}
};

/* vibescaling.caps_policy's values (read by SQL as text). */
static const struct config_enum_entry caps_policies[] = {
	{"refuse", 0, false},
	{"warn", 1, false},
	{NULL, 0, false}
};

/*
 * Secrets: settable by superusers only, shown to superusers only, left out
 * of SHOW ALL. Before this library is loaded a setting is a placeholder that
 * anyone can SHOW, hence docs/install.md's advice to preload vibescaling.
 */
static const int secret_flags = GUC_SUPERUSER_ONLY | GUC_NO_SHOW_ALL;

/* Check hook of vibescaling.source_allowed_networks: refuses a malformed list when it is set. */
static bool
check_source_allowed_networks(char **newval, void **extra, GucSource source)
{
	char		why[256];

	if (vs_check_network_list(*newval, why, sizeof(why)))
		return true;
	GUC_check_errdetail("%s", why);
	GUC_check_errhint("Give comma-separated IPv4/IPv6 addresses or CIDRs, e.g. \"127.0.0.1/32, fd00::/8\".");
	return false;
}

/*
 * The shortest vibescaling.log_retention: TikTok redelivers a webhook for
 * 72 hours (webhook_events dedupes over what is kept), and the upload quota
 * looks back one day.
 */
static const double min_log_retention_s = 7 * 86400.0;

/*
 * Check hook of vibescaling.log_retention: the value must read as an
 * interval (interval_in's grammar, parsed with its non-throwing parts: a
 * check hook must not raise) of at least seven days, months counted as 30.
 */
static bool
check_log_retention(char **newval, void **extra, GucSource source)
{
	char		workbuf[256];
	char	   *field[MAXDATEFIELDS];
	int			ftype[MAXDATEFIELDS];
	int			nf;
	int			dtype;
	struct pg_itm_in itm_in;
	Interval	span;
	double		seconds;

	if (*newval == NULL || strlen(*newval) >= sizeof(workbuf) - 1)
	{
		GUC_check_errdetail("vibescaling.log_retention must be an interval such as '90 days'.");
		return false;
	}
	memset(&itm_in, 0, sizeof(itm_in));
	if (ParseDateTime(*newval, workbuf, sizeof(workbuf), field, ftype, MAXDATEFIELDS, &nf) != 0 ||
		(DecodeInterval(field, ftype, nf, INTERVAL_FULL_RANGE, &dtype, &itm_in) != 0 &&
		 DecodeISO8601Interval(*newval, &dtype, &itm_in) != 0) ||
		dtype != DTK_DELTA || itmin2interval(&itm_in, &span) != 0)
	{
		GUC_check_errdetail("\"%s\" is not an interval such as '90 days'.", *newval);
		return false;
	}
	seconds = (span.month * 30.0 + span.day) * 86400.0 + span.time / 1e6;
	if (seconds < min_log_retention_s)
	{
		GUC_check_errdetail("vibescaling.log_retention must be at least 7 days: TikTok redelivers webhooks for 72 hours "
							"and the upload quota looks back one day.");
		return false;
	}
	return true;
}

/* Defines the vibescaling.* GUCs; called once from _PG_init. */
void
vs_define_gucs(void)
{
	/*
	 * Superuser-only: whoever sets the base URL receives the accounts'
	 * bearer tokens, so an API role must not be able to point it elsewhere.
	 */
	DefineCustomStringVariable("vibescaling.api_base_url",
							   "Base URL of TikTok's API (point it at the simulator for tests).",
							   NULL,
							   &vs_guc_api_base_url,
							   "https://open.tiktokapis.com",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("vibescaling.connect_timeout_ms",
							"Longest wait for a TCP/TLS connection to TikTok.",
							NULL,
							&vs_guc_connect_timeout_ms,
							5000, 1, 600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("vibescaling.request_timeout_ms",
							"Longest time one call to TikTok may take, connection included.",
							NULL,
							&vs_guc_request_timeout_ms,
							30000, 1, 3600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomStringVariable("vibescaling.client_key",
							   "The TikTok app's client key (Login Kit).",
							   NULL,
							   &vs_guc_client_key,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	DefineCustomStringVariable("vibescaling.client_secret",
							   "The TikTok app's client secret (secret: superusers only).",
							   NULL,
							   &vs_guc_client_secret,
							   "",
							   PGC_SUSET,
							   secret_flags,
							   NULL, NULL, NULL);

	/* Read by token_seal.cpp to encrypt tokens with pgcrypto. */
	DefineCustomStringVariable("vibescaling.token_encryption_key",
							   "Key that encrypts the accounts' tokens at rest (secret: superusers only).",
							   NULL,
							   &vs_guc_token_encryption_key,
							   "",
							   PGC_SUSET,
							   secret_flags,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("vibescaling.token_refresh_margin",
							"An access token expiring within this margin is refreshed before a call.",
							NULL,
							&vs_guc_token_refresh_margin_s,
							300, 0, 86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	/* Read by SQL (vibescaling.creator_info). */
	DefineCustomIntVariable("vibescaling.creator_info_ttl",
							"How long creator_info() answers from its cache.",
							NULL,
							&vs_guc_creator_info_ttl_s,
							60, 0, 86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	/* Read by SQL (vibescaling._upload_method). */
	DefineCustomStringVariable("vibescaling.pull_url_prefixes",
							   "Comma-separated URL prefixes verified for the app in TikTok's portal: "
							   "video_url under them is pulled by TikTok, other videos are uploaded.",
							   NULL,
							   &vs_guc_pull_url_prefixes,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	/* Read by SQL (vibescaling._check_post_limits). */
	DefineCustomIntVariable("vibescaling.max_open_posts_per_owner",
							"Most posts one tenant (owner) may have in draft or scheduled (0: no quota).",
							NULL,
							&vs_guc_max_open_posts_per_owner,
							10000, 0, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	/* Read by SQL (vibescaling._check_upload_quota). */
	DefineCustomIntVariable("vibescaling.max_upload_mb_per_owner_day",
							"Most megabytes one tenant (owner) may upload to TikTok in 24 hours (0: no quota).",
							NULL,
							&vs_guc_max_upload_mb_per_owner_day,
							65536, 0, INT_MAX,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("vibescaling.upload_chunk_size_mb",
							"Preferred FILE_UPLOAD chunk size in MB (TikTok allows 5 to 64).",
							NULL,
							&vs_guc_upload_chunk_size_mb,
							10, 5, 64,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("vibescaling.upload_chunk_attempts",
							"Attempts per chunk before an upload fails (retryable failures only).",
							NULL,
							&vs_guc_upload_chunk_attempts,
							3, 1, 20,
							PGC_USERSET,
							0,
							NULL, NULL, NULL);

	/* Read by SQL (the dispatcher's retry schedule, vibescaling._retry_delay). */
	DefineCustomIntVariable("vibescaling.retry_base_delay",
							"First delay before the dispatcher retries a post after a transient failure.",
							NULL,
							&vs_guc_retry_base_delay_s,
							60, 1, 86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("vibescaling.retry_max_delay",
							"Longest delay between two dispatch attempts of a post (the exponential backoff's cap).",
							NULL,
							&vs_guc_retry_max_delay_s,
							3600, 1, 604800,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("vibescaling.max_attempts",
							"Dispatch attempts of a scheduled post before it fails for good.",
							NULL,
							&vs_guc_max_attempts,
							5, 1, 100,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	/* Read by SQL (vibescaling.handle_webhook). */
	DefineCustomIntVariable("vibescaling.webhook_tolerance",
							"Largest age of a webhook's signed timestamp (replay protection).",
							NULL,
							&vs_guc_webhook_tolerance_s,
							300, 1, 86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	/* Read by SQL (vibescaling._rate_limit_wait). */
	DefineCustomIntVariable("vibescaling.rate_limit_window",
							"The window of TikTok's per-token rate limits (TikTok: one minute).",
							NULL,
							&vs_guc_rate_limit_window_s,
							60, 1, 3600,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("vibescaling.rate_limit_max_wait",
							"Longest a call waits for a free slot in its account's rate limit before it "
							"fails with a local, retryable rate_limited error.",
							NULL,
							&vs_guc_rate_limit_max_wait_ms,
							10000, 0, 600000,
							PGC_USERSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	/*
	 * Superuser-only: it bounds the sockets, memory and worker time one
	 * dispatcher or poller takes (and the load put on TikTok).
	 */
	DefineCustomIntVariable("vibescaling.max_concurrent_requests",
							"Most TikTok calls the dispatcher and the status poller have in flight at once "
							"(also the most posts one dispatcher round takes).",
							NULL,
							&vs_guc_max_concurrent_requests,
							128, 1, 1024,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	/*
	 * Superuser-only, like max_concurrent_requests: each session but the
	 * caller's is a background worker, taken from max_worker_processes.
	 */
	DefineCustomIntVariable("vibescaling.dispatch_sessions",
							"Most sessions one dispatch_due_posts run uses, its own included; the others are "
							"background workers started for the run's rounds, and "
							"max_concurrent_requests is shared among them.",
							NULL,
							&vs_guc_dispatch_sessions,
							4, 1, 16,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	/*
	 * Superuser-only, like api_base_url: whoever chooses which certificates
	 * are trusted can have the bearer tokens sent to a server of their own.
	 */
	DefineCustomStringVariable("vibescaling.ca_file",
							   "PEM file of the certificate authorities trusted for TikTok's https "
							   "(empty: the system's).",
							   NULL,
							   &vs_guc_ca_file,
							   "",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	/*
	 * Superuser-only: the extension downloads a post's video_url itself
	 * (FILE_UPLOAD), and a tenant must not be able to point that download
	 * at the database host or its private network. Only public addresses
	 * are reached unless listed here (the simulator and tests: 127.0.0.1/32).
	 */
	DefineCustomStringVariable("vibescaling.source_allowed_networks",
							   "Comma-separated networks (CIDR) that video source downloads may reach "
							   "although loopback, private or otherwise non-public.",
							   NULL,
							   &vs_guc_source_allowed_networks,
							   "",
							   PGC_SUSET,
							   0,
							   check_source_allowed_networks, NULL, NULL);

	DefineCustomIntVariable("vibescaling.source_connect_timeout_ms",
							"Longest wait for a connection to a video source the extension downloads.",
							NULL,
							&vs_guc_source_connect_timeout_ms,
							5000, 1, 600000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("vibescaling.source_stall_timeout_ms",
							"A video source download that receives no data for this long is abandoned.",
							NULL,
							&vs_guc_source_stall_timeout_ms,
							10000, 100, 3600000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	/*
	 * Read by SQL (vibescaling.maintain_logs): how long dispatch_logs and
	 * webhook_events rows are kept. Whole weekly partitions are dropped once
	 * they are older, after moving out the rows the extension still needs.
	 */
	DefineCustomStringVariable("vibescaling.log_retention",
							   "How long dispatch_logs and webhook_events rows are kept (an interval, at least 7 days).",
							   NULL,
							   &vs_guc_log_retention,
							   "90 days",
							   PGC_SUSET,
							   0,
							   check_log_retention, NULL, NULL);

	/*
	 * Read by SQL: attaching and detaching a partition locks its log for a
	 * moment; a step that would wait longer than this (behind a long query
	 * on the log, with dispatch queued behind it) gives up until the next run.
	 */
	DefineCustomIntVariable("vibescaling.log_lock_timeout",
							"Longest wait of a maintain_logs step for its locks before it is left to the next run.",
							NULL,
							&vs_guc_log_lock_timeout_ms,
							200, 1, 600000,
							PGC_SUSET,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	/*
	 * Read by SQL (vibescaling.settle_unknown_outcomes). Superuser-only: the
	 * policy decides whether a post may be sent twice.
	 */
	DefineCustomEnumVariable("vibescaling.unknown_outcome_policy",
							 "What happens to a scheduled post whose init had an unknown outcome and "
							 "of which TikTok showed no sign within the quiet period: hold (it fails; "
							 "a person publishes it again) or retry_after_quiet_period (back on the queue).",
							 NULL,
							 &vs_guc_unknown_outcome_policy,
							 0, unknown_outcome_policies,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("vibescaling.unknown_outcome_quiet_period",
							"How long after an init of unknown outcome its absence from TikTok's signals "
							"(webhooks, the creator's video list) counts as evidence that TikTok does not have it.",
							NULL,
							&vs_guc_unknown_outcome_quiet_period_s,
							21600, 60, 30 * 86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	/* Read by SQL (vibescaling.poll_publish_statuses). */
	DefineCustomIntVariable("vibescaling.publish_confirm_timeout",
							"Longest the status poller follows a publish without a final status from TikTok; "
							"then the publish is unconfirmed.",
							NULL,
							&vs_guc_publish_confirm_timeout_s,
							7200, 60, 30 * 86400,
							PGC_SUSET,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	/* Read by SQL (vibescaling.collect_metrics). */
	DefineCustomIntVariable("vibescaling.metrics_follow_days",
							"How many days after its publish collect_metrics follows a public post's counts.",
							NULL,
							&vs_guc_metrics_follow_days,
							90, 1, 3650,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	/*
	 * Read by SQL (vibescaling._check_media). Superuser-only: turning the
	 * checks off lets media through that TikTok refuses after the upload.
	 */
	DefineCustomBoolVariable("vibescaling.media_checks",
							 "Probe a post's media (FFmpeg's libavformat) and refuse what TikTok would refuse, "
							 "before anything is sent.",
							 NULL,
							 &vs_guc_media_checks,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("vibescaling.probe_pull_urls",
							 "Also probe the videos and photos TikTok pulls itself (range requests to their URLs).",
							 NULL,
							 &vs_guc_probe_pull_urls,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	/* Read by SQL (vibescaling._check_caps). */
	DefineCustomBoolVariable("vibescaling.app_audited",
							 "Whether TikTok has audited the app: an unaudited one may only post SELF_ONLY, "
							 "from at most 5 accounts a day.",
							 NULL,
							 &vs_guc_app_audited,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("vibescaling.max_posts_per_account_day",
							"Most Direct Posts scheduling plans for one account a UTC day (TikTok's cap: about 15; "
							"a lower cap TikTok shows is learned).",
							NULL,
							&vs_guc_max_posts_per_account_day,
							15, 1, 1000,
							PGC_SUSET,
							0,
							NULL, NULL, NULL);

	DefineCustomEnumVariable("vibescaling.caps_policy",
							 "What scheduling does with a post that would exceed one of TikTok's caps on its day "
							 "(the daily Direct Post cap, 5 pending inbox drafts, an unaudited app's 5 accounts): "
							 "refuse it (53400), or schedule it with a warning.",
							 NULL,
							 &vs_guc_caps_policy,
							 0, caps_policies,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("vibescaling");
}
