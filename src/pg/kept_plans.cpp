/* kept_plans.cpp: fixed SPI statements prepared once per backend (see kept_plans.h). */
#include "pg_headers.h"
#include "kept_plans.h"

/* Runs sql from the plan kept in *kept, preparing it the first time (see kept_plans.h). */
int
vs_execute_kept(SPIPlanPtr *kept, const char *sql, int nargs, Oid *argtypes, Datum *args,
				const char *nulls, bool read_only, long count)
{
	if (*kept == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "vibescaling: could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		*kept = plan;
	}
	return SPI_execute_plan(*kept, args, nulls, read_only, count);
}
