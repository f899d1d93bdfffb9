/*
 * call_result.h: a call's result as SQL receives it. The call path keeps
 * each call's vs_call_result with its strings copied into palloc'd memory;
 * this turns it into a vibescaling._call_result row (what _tiktok_call and
 * _tiktok_call_many return since 0.1.5), or into the JSON object the
 * symbols of earlier releases returned (an old catalog calls them until
 * ALTER EXTENSION ... UPDATE).
 */
#ifndef VS_CALL_RESULT_H
#define VS_CALL_RESULT_H

#include "pg_headers.h"
#include "../core/vs_core.h"

/*
 * Copies *src into *dst with every string in palloc'd memory (NULL stays
 * NULL); src is left alone (the caller frees a core result itself).
 */
void		vs_copy_call_result(vs_call_result *dst, const vs_call_result *src);

/*
 * Moves the strings of a result the core filled (malloc'd) into palloc'd
 * memory, freeing the core's: *r is then as vs_copy_call_result leaves it.
 */
void		vs_take_call_result(vs_call_result *r);

/* The row type vibescaling._call_result, blessed for heap_form_tuple. */
TupleDesc	vs_call_result_desc(void);

/*
 * The vibescaling._call_result row of r (desc from vs_call_result_desc).
 * data: the row's data column when not (Datum) 0, else r's data_json.
 */
Datum		vs_call_result_row(const vs_call_result *r, TupleDesc desc, Datum data);

/* The text of that JSON object (palloc'd; it may hold secrets, see vs_result_json); raises on OOM. */
char	   *vs_call_result_json_text(const vs_call_result *r);

/* The same result as the JSON object _tiktok_call returned before 0.1.5. */
Datum		vs_call_result_jsonb(const vs_call_result *r);

#endif
