/* gucs.h: vibescaling's configuration parameters (vibescaling.*). */
#ifndef VS_GUCS_H
#define VS_GUCS_H

extern char *vs_guc_api_base_url;
extern int	vs_guc_connect_timeout_ms;
extern int	vs_guc_request_timeout_ms;
extern char *vs_guc_client_key;
extern char *vs_guc_client_secret;
extern char *vs_guc_token_encryption_key;
extern int	vs_guc_token_refresh_margin_s;
extern int	vs_guc_upload_chunk_size_mb;
extern int	vs_guc_upload_chunk_attempts;
extern int	vs_guc_rate_limit_max_wait_ms;
extern int	vs_guc_max_concurrent_requests;
extern int	vs_guc_dispatch_sessions;
extern char *vs_guc_ca_file;
extern char *vs_guc_source_allowed_networks;
extern int	vs_guc_source_connect_timeout_ms;
extern int	vs_guc_source_stall_timeout_ms;
extern char *vs_guc_log_retention;
extern int	vs_guc_log_lock_timeout_ms;
extern int	vs_guc_unknown_outcome_policy;
extern int	vs_guc_unknown_outcome_quiet_period_s;
extern int	vs_guc_publish_confirm_timeout_s;
extern int	vs_guc_metrics_follow_days;
extern bool vs_guc_media_checks;
extern bool vs_guc_probe_pull_urls;
extern bool vs_guc_app_audited;
extern int	vs_guc_max_posts_per_account_day;
extern int	vs_guc_caps_policy;

/* Defines the vibescaling.* GUCs; called once from _PG_init. */
void		vs_define_gucs(void);

#endif
