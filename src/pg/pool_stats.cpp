/* pool_stats.cpp: vibescaling.http_pool_stats(), this backend's connection pool counters. */
#include "pg_headers.h"
#include "../core/vs_core.h"

extern "C" {
PG_FUNCTION_INFO_V1(vs_http_pool_stats);

/*
 * vibescaling.http_pool_stats() RETURNS jsonb: {"transfers",
 * "connections_opened", "connections_reused"} of this backend's pool of
 * kept-alive connections since it started: the batched calls
 * (_tiktok_call_many), the single ones (_tiktok_call) but OAuth's, chunk
 * PUTs and video source downloads. How well keep-alive spares a
 * connection (and TLS handshake) per request.
 */
Datum
vs_http_pool_stats(PG_FUNCTION_ARGS)
{
	vs_pool_stats stats;

	vs_get_pool_stats(&stats);
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(
		psprintf("{\"transfers\": %lld, \"connections_opened\": %lld, \"connections_reused\": %lld}",
				 stats.transfers, stats.connections_opened, stats.connections_reused))));
}
}
