/*
 * kept_plans.h: running a fixed SPI statement from a plan prepared once per
 * backend and kept (SPI_keepplan), instead of parsing and planning it at
 * every call. For the small fixed statements of the call path, which run
 * several times for each call to TikTok.
 */
#ifndef VS_KEPT_PLANS_H
#define VS_KEPT_PLANS_H

/*
 * Runs sql (which must never change for a given *kept) with SPI, as
 * SPI_execute_with_args would, from the plan in *kept, prepared the first
 * time and kept for the backend's life (or until the caller frees it with
 * SPI_freeplan and sets *kept to NULL). PostgreSQL plans it again by itself
 * when what it reads changes (a table's definition or statistics, the
 * search_path, DISCARD PLANS, which the dispatcher runs every round). Call
 * it between SPI_connect and SPI_finish.
 */
int			vs_execute_kept(SPIPlanPtr *kept, const char *sql, int nargs, Oid *argtypes, Datum *args,
							const char *nulls, bool read_only, long count);

#endif
