/*
 * json_out.hpp: the JSON documents built from a vs_call_result (the
 * dispatch_logs row and the value SQL receives). They never hold secrets.
 */
#ifndef VS_JSON_OUT_HPP
#define VS_JSON_OUT_HPP

#include "vs_core.h"

#include <string>

namespace vibescaling {

/* The dispatch_logs object for one call (keys as in vs_core.h); NULL ids become JSON null. */
std::string dispatch_log_json(const vs_call_result &r, const char *post_id,
							  const char *account_id, const char *trigger,
							  const char *endpoint);

/* The object vibescaling._tiktok_call returns (keys as in vs_core.h); "data" is an object. */
std::string result_json(const vs_call_result &r);

}								/* namespace vibescaling */

#endif
