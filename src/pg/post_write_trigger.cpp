/*
 * post_write_trigger.cpp: the BEFORE INSERT OR UPDATE trigger of
 * vibescaling.posts, and the check of who may read a post's video source.
 *
 * The trigger's checks (vibescaling._post_write_checked) read what the
 * writing role may not read (accounts, creator_info, large objects), so
 * they run as the table's owner. A SECURITY DEFINER function taking the row
 * would let any role that may call it run them on a row it made up (another
 * tenant's account, say). A trigger function cannot be called but as a
 * trigger, and only on a table its owner attached it to; and here, in C, it
 * still knows the role that is writing, which a SECURITY DEFINER function
 * no longer does.
 */
#include "pg_headers.h"
#include "kept_plans.h"

extern "C" {
#include "access/htup_details.h"
#include "commands/trigger.h"
#include "catalog/pg_largeobject_metadata.h"
#include "catalog/pg_largeobject.h"
#include "storage/large_object.h"
#include "utils/acl.h"
#include "utils/datum.h"
#include "utils/rel.h"
}

#include <ctype.h>
#include <string.h>

/* The roles PostgREST switches to (setup_api_roles creates them). */
static const char *const api_roles[] = {
	"vibescaling_anon", "vibescaling_user", "vibescaling_webhook", "vibescaling_authenticator"
};

/* True when the role is one of the API roles. */
static bool
is_api_role(Oid role)
{
	char	   *name = GetUserNameFromId(role, true);

	if (name == NULL)
		return false;
	for (size_t i = 0; i < lengthof(api_roles); i++)
		if (strcmp(name, api_roles[i]) == 0)
			return true;
	return false;
}

/* Raises unless the trigger fires BEFORE INSERT OR UPDATE FOR EACH ROW on vibescaling.posts. */
static void
require_posts_row_trigger(FunctionCallInfo fcinfo)
{
	TriggerData *td;
	Relation	rel;
	char	   *schema;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("vibescaling._posts_before_write() can only be called as a trigger")));
	td = (TriggerData *) fcinfo->context;
	rel = td->tg_relation;
	schema = get_namespace_name(RelationGetNamespace(rel));
	if (!TRIGGER_FIRED_BEFORE(td->tg_event) || !TRIGGER_FIRED_FOR_ROW(td->tg_event) ||
		TRIGGER_FIRED_BY_DELETE(td->tg_event) || TRIGGER_FIRED_BY_TRUNCATE(td->tg_event) ||
		schema == NULL || strcmp(schema, "vibescaling") != 0 ||
		strcmp(RelationGetRelationName(rel), "posts") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("vibescaling._posts_before_write() only serves BEFORE INSERT OR UPDATE row triggers on vibescaling.posts")));
}

/*
 * Runs vibescaling._post_write_checked(new, old, api, writer) as the table's
 * owner and returns the row it answers, formed in the trigger's memory
 * context.
 */
static HeapTuple
checked_row(Relation rel, HeapTuple newtup, HeapTuple oldtup, Oid writer)
{
	/* Kept for the posts table's row type it was prepared with (the extension may be re-created). */
	static SPIPlanPtr kept_check = NULL;
	static Oid	kept_check_rowtype = InvalidOid;
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			rowtype = rel->rd_rel->reltype;
	Oid			argtypes[4] = {rowtype, rowtype, BOOLOID, OIDOID};
	Datum		args[4];
	char		nulls[4] = {' ', oldtup ? ' ' : 'n', ' ', ' '};
	MemoryContext upper = CurrentMemoryContext;
	Oid			saved_user;
	int			saved_context;
	HeapTuple	result = NULL;

	args[0] = heap_copy_tuple_as_datum(newtup, desc);
	args[1] = oldtup ? heap_copy_tuple_as_datum(oldtup, desc) : (Datum) 0;
	args[2] = BoolGetDatum(is_api_role(writer));
	args[3] = ObjectIdGetDatum(writer);

	GetUserIdAndSecContext(&saved_user, &saved_context);
	SetUserIdAndSecContext(rel->rd_rel->relowner, saved_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		bool		isnull;
		Datum		row;

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (kept_check != NULL && kept_check_rowtype != rowtype)
		{
			SPI_freeplan(kept_check);
			kept_check = NULL;
		}
		kept_check_rowtype = rowtype;
		if (vs_execute_kept(&kept_check, "SELECT vibescaling._post_write_checked($1, $2, $3, $4)",
							4, argtypes, args, nulls, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not check the post");
		row = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
		{
			HeapTupleHeader header = DatumGetHeapTupleHeader(row);
			HeapTupleData tmp;
			Datum	   *values = (Datum *) palloc(desc->natts * sizeof(Datum));
			bool	   *isnulls = (bool *) palloc(desc->natts * sizeof(bool));
			MemoryContext spi_context;

			tmp.t_len = HeapTupleHeaderGetDatumLength(header);
			ItemPointerSetInvalid(&tmp.t_self);
			tmp.t_tableOid = InvalidOid;
			tmp.t_data = header;
			heap_deform_tuple(&tmp, desc, values, isnulls);
			/* Formed (and so copied) where the trigger's caller expects it. */
			spi_context = MemoryContextSwitchTo(upper);
			result = heap_form_tuple(desc, values, isnulls);
			MemoryContextSwitchTo(spi_context);
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_context);
	}
	PG_END_TRY();
	return result;
}

/* The columns the publisher's bookkeeping writes (see shortcut_row). */
static const char *const bookkeeping_columns[] = {
	"status", "posted_at", "attempts", "next_attempt_at", "last_error", "updated_at"
};

/* The text of a non-null text column of tup, or NULL. */
static char *
text_column(HeapTuple tup, TupleDesc desc, int attnum)
{
	bool		isnull;
	Datum		value = heap_getattr(tup, attnum, desc, &isnull);

	return isnull ? NULL : TextDatumGetCString(value);
}

/*
 * The row an UPDATE stores without _post_write_checked's checks, or NULL
 * when they must run: an UPDATE that changes nothing (the row as it is),
 * the dispatcher's bookkeeping on a post that stays scheduled (attempts,
 * next_attempt_at, last_error), or the publisher's verdict, posted or
 * failed, by a writer that is not an API role (with posted_at and the
 * bookkeeping). Neither changes anything the checks look at (content,
 * account, schedule, source); both get updated_at stamped. Decided here,
 * without a round trip to SQL, because a dispatcher round writes every
 * post it settles. A column whose stored form differs but means the same
 * (a value compressed once, not the other time) counts as changed: the
 * checks then run, which is only slower.
 */
static HeapTuple
shortcut_row(Relation rel, HeapTuple newtup, HeapTuple oldtup, bool api)
{
	TupleDesc	desc = RelationGetDescr(rel);
	bool		bookkeeping_only = true;
	bool		status_changed = false;
	bool		posted_at_changed = false;
	bool		any_change = false;
	int			status_attnum = SPI_fnumber(desc, "status");
	int			updated_attnum = SPI_fnumber(desc, "updated_at");
	char	   *old_status;
	char	   *new_status;

	if (status_attnum <= 0 || updated_attnum <= 0)
		return NULL;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		bool		old_null;
		bool		new_null;
		Datum		old_value;
		Datum		new_value;
		bool		bookkeeping = false;

		if (att->attisdropped)
			continue;
		old_value = heap_getattr(oldtup, i + 1, desc, &old_null);
		new_value = heap_getattr(newtup, i + 1, desc, &new_null);
		if (old_null == new_null &&
			(old_null || datumIsEqual(old_value, new_value, att->attbyval, att->attlen)))
			continue;
		any_change = true;
		for (size_t k = 0; k < lengthof(bookkeeping_columns); k++)
			if (strcmp(NameStr(att->attname), bookkeeping_columns[k]) == 0)
				bookkeeping = true;
		if (!bookkeeping)
			bookkeeping_only = false;
		if (i + 1 == status_attnum)
			status_changed = true;
		if (strcmp(NameStr(att->attname), "posted_at") == 0)
			posted_at_changed = true;
	}
	if (!any_change)
		return newtup;
	if (!bookkeeping_only)
		return NULL;
	old_status = text_column(oldtup, desc, status_attnum);
	new_status = text_column(newtup, desc, status_attnum);
	if (new_status == NULL || old_status == NULL)
		return NULL;
	/* The bookkeeping on a post that stays scheduled, or the verdict. */
	if (!(!status_changed && !posted_at_changed && strcmp(new_status, "scheduled") == 0) &&
		!(!api && (strcmp(new_status, "posted") == 0 || strcmp(new_status, "failed") == 0)))
		return NULL;
	{
		Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		bool		not_null = false;

		return heap_modify_tuple_by_cols(newtup, desc, 1, &updated_attnum, &now, &not_null);
	}
}

/*
 * True when a superuser loads rows with COPY FROM: pg_restore (and a DBA's
 * bulk load). Those rows were checked where they were written; checking
 * them again would refuse a scheduled post whose time has come, and call
 * TikTok for creator_info in the middle of a restore.
 */
static bool
superuser_bulk_load(void)
{
	const char *q = debug_query_string;

	if (q == NULL || !superuser())
		return false;
	while (isspace((unsigned char) *q))
		q++;
	return pg_strncasecmp(q, "copy", 4) == 0 && isspace((unsigned char) q[4]);
}

extern "C" {
PG_FUNCTION_INFO_V1(vs_posts_before_write);
PG_FUNCTION_INFO_V1(vs_role_can_read_source);

/*
 * vibescaling._posts_before_write() RETURNS trigger: stamps and checks the
 * row being written (see _post_write_checked), for the role writing it;
 * a superuser's COPY FROM (a restore) stores its rows as they are.
 */
Datum
vs_posts_before_write(PG_FUNCTION_ARGS)
{
	TriggerData *td;
	bool		update;
	HeapTuple	result;

	require_posts_row_trigger(fcinfo);
	td = (TriggerData *) fcinfo->context;
	update = TRIGGER_FIRED_BY_UPDATE(td->tg_event);
	if (!update && superuser_bulk_load())
		return PointerGetDatum(td->tg_trigtuple);
	if (update)
	{
		result = shortcut_row(td->tg_relation, td->tg_newtuple, td->tg_trigtuple, is_api_role(GetUserId()));
		if (result != NULL)
			return PointerGetDatum(result);
	}
	result = checked_row(td->tg_relation, update ? td->tg_newtuple : td->tg_trigtuple,
						 update ? td->tg_trigtuple : NULL, GetUserId());
	return PointerGetDatum(result);
}

/*
 * vibescaling._role_can_read_source(role oid, large_object oid, media_id uuid)
 * RETURNS boolean: whether the role may read the video source: SELECT on
 * the large object (unless lo_compat_privileges), SELECT on
 * vibescaling.media for a media row. A NULL source is readable, and so is
 * a large object that does not exist (nothing to read: the publisher's
 * checks refuse it, P0002); a role that no longer exists reads nothing.
 */
Datum
vs_role_can_read_source(PG_FUNCTION_ARGS)
{
	Oid			role;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(false);
	role = PG_GETARG_OID(0);
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(role)))
		PG_RETURN_BOOL(false);
	if (!PG_ARGISNULL(1))
	{
		Oid			lo = PG_GETARG_OID(1);

		if (LargeObjectExists(lo) && !lo_compat_privileges &&
			pg_largeobject_aclcheck_snapshot(lo, role, ACL_SELECT, NULL) != ACLCHECK_OK)
			PG_RETURN_BOOL(false);
	}
	if (!PG_ARGISNULL(2))
	{
		Oid			media = get_relname_relid("media", get_namespace_oid("vibescaling", false));

		if (!OidIsValid(media) || pg_class_aclcheck(media, role, ACL_SELECT) != ACLCHECK_OK)
			PG_RETURN_BOOL(false);
	}
	PG_RETURN_BOOL(true);
}
}
