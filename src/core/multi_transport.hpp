/*
 * multi_transport.hpp: many HTTP(S) requests at once through libcurl's
 * multi interface, on one process-wide connection pool that keeps
 * connections alive between batches (HTTP/1.1 keep-alive, HTTP/2
 * multiplexing over TLS), without ever letting libcurl re-send a request
 * by itself.
 */
#ifndef VS_MULTI_TRANSPORT_HPP
#define VS_MULTI_TRANSPORT_HPP

#include "http_transport.hpp"

#include <vector>

namespace vibescaling {

/* Most transfers (and connections) a batch may have in flight; larger asks are capped. */
constexpr int kMaxBatchConcurrency = 1024;

/*
 * Sends every non-null requests[i] over the process's shared multi handle,
 * at most max_concurrent (capped to 1 .. kMaxBatchConcurrency) in flight
 * and as many connections open (max_concurrent 0: one at a time, leaving
 * the pool's connection limits as the last batch set them: how vs_call
 * sends its single call), and returns one HttpReply per entry, in
 * order (a default one, completed false and no error_code, for a null
 * entry). A request with control characters in a header value gets
 * error_code "invalid_param" and is not sent.
 *
 * A request is sent at most once: when libcurl would re-send it on its own
 * (a reused connection closed before any reply byte), the transfer is
 * stopped instead and fails with "transport_error", outcome_unknown.
 * should_abort (may be null) is polled at least every 100 ms; once it
 * answers nonzero every transfer still running is stopped ("aborted",
 * outcome_unknown when the request may have left the process) and the
 * requests not yet started are not sent ("aborted", outcome known).
 *
 * started (n flags, may be null) gets started[i] = true just before request
 * i is handed to libcurl, so a caller catching an exception knows which
 * requests may have been sent. Throws std::bad_alloc or std::runtime_error;
 * on a throw, every transfer of the batch has been stopped and removed.
 */
std::vector<HttpReply> http_send_many(const std::vector<const HttpRequest *> &requests,
									  int max_concurrent, int (*should_abort) (void),
									  bool *started);

}								/* namespace vibescaling */

#endif
