/*
 * call_many.hpp: a batch of TikTok calls end to end, sent concurrently over
 * kept-alive connections (multi_transport.hpp).
 */
#ifndef VS_CALL_MANY_HPP
#define VS_CALL_MANY_HPP

#include "call_outcome.hpp"
#include "vs_core.h"

#include <vector>

namespace vibescaling {

/*
 * Performs the n calls of specs (n >= 0, specs non-null when n > 0) at most
 * max_concurrent at a time, each exactly as perform_call would build,
 * interpret and redact it, and returns their outcomes in order. A refused
 * call (invalid_param) does not affect the others. started (n flags, may be
 * null) gets started[i] = true once call i may leave the process, so a
 * caller catching an exception knows which outcomes are unknown. Throws
 * std::bad_alloc (and, on bugs, other std::exception).
 */
std::vector<CallOutcome> perform_call_many(const vs_http_options *opt, int max_concurrent,
										   int n, const vs_call_spec *specs, bool *started);

}								/* namespace vibescaling */

#endif
