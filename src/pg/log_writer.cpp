/*
 * log_writer.cpp: the permanent dispatch log writer (see log_writer.h):
 * the queue in shared memory, the backends' side (vs_log_writer_write)
 * and the writer's (vs_log_writer_main).
 */
#include "pg_headers.h"
#include "log_writer.h"
#include "dispatch_log_writer.h"
#include "session_worker.h"

extern "C" {
#include "catalog/pg_database.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"
}

#include <signal.h>
#include <string.h>

/* Batches queued at once, and databases with a writer at once. */
#define WRITER_SLOTS 128
#define WRITER_DATABASES 8

/* A writer with nothing to do for this long leaves. */
static const long writer_idle_ms = 60000;
/* Longest a backend waits for its batch's commit. */
static const long caller_wait_ms = 60000;
/* A writer that has not come up this long after it was asked for has failed to start. */
static const long writer_start_ms = 10000;

typedef enum SlotState
{
	SLOT_FREE = 0,
	SLOT_QUEUED,				/* waiting for the writer */
	SLOT_TAKEN,					/* in the writer's transaction */
	SLOT_DONE,					/* committed */
	SLOT_FAILED					/* the writer could not commit it (error says why) */
} SlotState;

/* One batch handed to a writer. */
typedef struct WriterSlot
{
	SlotState	state;
	Oid			database_id;
	int			caller_procno;	/* whose latch to set when it is done */
	dsm_handle	handle;
	char		error[256];
} WriterSlot;

/* The writer of one database. */
typedef struct WriterEntry
{
	Oid			database_id;	/* InvalidOid: a free entry */
	pid_t		pid;			/* 0 while starting */
	int			procno;			/* the writer's, for its latch */
	TimestampTz asked_at;		/* when a backend asked for it to start */
} WriterEntry;

typedef struct WriterShared
{
	slock_t		mutex;
	WriterEntry writers[WRITER_DATABASES];
	WriterSlot	slots[WRITER_SLOTS];
} WriterShared;

static WriterShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* Asks for the queue's shared memory. */
static void
writer_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(WriterShared)));
}

/* Creates (or finds) the queue in shared memory. */
static void
writer_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = (WriterShared *) ShmemInitStruct("vibescaling log writer", sizeof(WriterShared), &found);
	if (!found)
	{
		memset(shared, 0, sizeof(WriterShared));
		SpinLockInit(&shared->mutex);
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Asks for the queue's shared memory (see log_writer.h). */
void
vs_log_writer_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		return;					/* loaded late: batches go to workers of their own */
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = writer_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = writer_shmem_startup;
}

/* The entry of this database's writer, made if need be; NULL when all are taken. Under the mutex. */
static WriterEntry *
writer_entry(Oid database_id)
{
	WriterEntry *free_entry = NULL;

	for (int i = 0; i < WRITER_DATABASES; i++)
	{
		if (shared->writers[i].database_id == database_id)
			return &shared->writers[i];
		if (free_entry == NULL && shared->writers[i].database_id == InvalidOid)
			free_entry = &shared->writers[i];
	}
	if (free_entry != NULL)
	{
		free_entry->database_id = database_id;
		free_entry->pid = 0;
		free_entry->procno = -1;
		free_entry->asked_at = 0;
	}
	return free_entry;
}

/* Registers this database's writer (the next batch starts it again if it stops); false when no worker slot is free. */
static bool
start_writer(Oid database_id)
{
	char		name[BGW_MAXLEN];
	BackgroundWorkerHandle *handle;

	snprintf(name, sizeof(name), "vibescaling log writer for database %u", database_id);
	return vs_register_worker("vs_log_writer_main", "vibescaling log writer", name,
							  ObjectIdGetDatum(database_id), 0, &handle);
}

/* Hands a batch to this database's writer and waits (see log_writer.h). */
VsLogWriterResult
vs_log_writer_write(dsm_segment *seg, char *why, Size why_len)
{
	WriterSlot *slot = NULL;
	WriterEntry *writer;
	bool		start = false;
	int			writer_procno = -1;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz deadline = TimestampTzPlusMilliseconds(now, caller_wait_ms);
	VsLogWriterResult result;

	if (shared == NULL)
		return VS_LOG_WRITER_NOT_QUEUED;

	/*
	 * A slot of the queue. When all are taken (more backends writing at
	 * once than the queue holds), wait for one: the writer frees them by
	 * the hundred at each commit. Falling back to a worker of our own
	 * instead would need a free worker slot, which a busy server may not
	 * have, and the row of a call already sent would then be lost.
	 * Interrupts are held off: this may be the outcome of a call TikTok
	 * has answered.
	 */
	HOLD_INTERRUPTS();
	for (;;)
	{
		SpinLockAcquire(&shared->mutex);
		writer = writer_entry(MyDatabaseId);
		for (int i = 0; writer != NULL && i < WRITER_SLOTS; i++)
		{
			if (shared->slots[i].state == SLOT_FREE)
			{
				slot = &shared->slots[i];
				slot->state = SLOT_QUEUED;
				slot->database_id = MyDatabaseId;
				slot->caller_procno = MyProc->pgprocno;
				slot->handle = dsm_segment_handle(seg);
				slot->error[0] = '\0';
				break;
			}
		}
		if (slot != NULL || writer == NULL || GetCurrentTimestamp() >= deadline)
			break;
		SpinLockRelease(&shared->mutex);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 5, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	RESUME_INTERRUPTS();
	now = GetCurrentTimestamp();
	if (slot != NULL)
	{
		if (writer->pid != 0)
			writer_procno = writer->procno;
		else if (writer->asked_at == 0 ||
				 TimestampDifferenceExceeds(writer->asked_at, now, writer_start_ms))
		{
			writer->asked_at = now;
			start = true;
		}
	}
	SpinLockRelease(&shared->mutex);
	if (slot == NULL)
		return VS_LOG_WRITER_NOT_QUEUED;

	if (start && !start_writer(MyDatabaseId))
	{
		SpinLockAcquire(&shared->mutex);
		writer->asked_at = 0;
		slot->state = SLOT_FREE;
		SpinLockRelease(&shared->mutex);
		return VS_LOG_WRITER_NOT_QUEUED;
	}
	if (writer_procno >= 0)
		SetLatch(&ProcGlobal->allProcs[writer_procno].procLatch);

	/*
	 * Wait for the commit with cancel held off: leaving now would destroy
	 * the segment under the writer, losing rows the caller counts on.
	 */
	HOLD_INTERRUPTS();
	for (;;)
	{
		bool		finished = true;
		bool		writer_gone;

		SpinLockAcquire(&shared->mutex);
		writer_gone = writer->pid == 0 &&
			(writer->asked_at == 0 ||
			 TimestampDifferenceExceeds(writer->asked_at, GetCurrentTimestamp(), writer_start_ms));
		if (slot->state == SLOT_DONE)
			result = VS_LOG_WRITER_COMMITTED;
		else if (slot->state == SLOT_FAILED)
		{
			strlcpy(why, slot->error, why_len);
			result = VS_LOG_WRITER_FAILED;
		}
		else if (slot->state == SLOT_QUEUED && (writer_gone || GetCurrentTimestamp() >= deadline))
			result = VS_LOG_WRITER_NOT_QUEUED;	/* nobody took it: nothing was written */
		else if (slot->state == SLOT_TAKEN && writer_gone)
		{
			strlcpy(why, "the log writer stopped while writing them", why_len);
			result = VS_LOG_WRITER_FAILED;
		}
		else
			finished = false;	/* queued, or taken by a writer at work (its statement_timeout bounds it) */
		if (finished)
			slot->state = SLOT_FREE;
		SpinLockRelease(&shared->mutex);
		if (finished)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	RESUME_INTERRUPTS();
	return result;
}

/* This process's entry, while it is the writer of its database. */
static WriterEntry *my_entry = NULL;

/* On the writer's exit, whatever the cause: no batch stays taken, the entry is free again. */
static void
writer_exit(int code, Datum arg)
{
	if (shared == NULL || my_entry == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < WRITER_SLOTS; i++)
	{
		WriterSlot *slot = &shared->slots[i];

		if (slot->state == SLOT_TAKEN && slot->database_id == my_entry->database_id)
		{
			strlcpy(slot->error, "the log writer stopped while writing them", sizeof(slot->error));
			slot->state = SLOT_FAILED;
			SetLatch(&ProcGlobal->allProcs[slot->caller_procno].procLatch);
		}
	}
	my_entry->pid = 0;
	my_entry->procno = -1;
	my_entry->asked_at = 0;
	my_entry = NULL;
	SpinLockRelease(&shared->mutex);
}

/* Takes the batches queued for this database: fills slots[] with their indexes, returns how many. Under no lock. */
static int
take_batches(int *slots)
{
	int			n = 0;

	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < WRITER_SLOTS; i++)
	{
		if (shared->slots[i].state == SLOT_QUEUED && shared->slots[i].database_id == MyDatabaseId)
		{
			shared->slots[i].state = SLOT_TAKEN;
			slots[n++] = i;
		}
	}
	SpinLockRelease(&shared->mutex);
	return n;
}

/* Marks the taken batches done, or failed with why (NULL: done), and wakes their callers. */
static void
finish_batches(const int *slots, int n, const char *why)
{
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < n; i++)
	{
		WriterSlot *slot = &shared->slots[slots[i]];

		if (why != NULL)
			strlcpy(slot->error, why, sizeof(slot->error));
		slot->state = why == NULL ? SLOT_DONE : SLOT_FAILED;
		SetLatch(&ProcGlobal->allProcs[slot->caller_procno].procLatch);
	}
	SpinLockRelease(&shared->mutex);
}

/*
 * Stores the given batches in one transaction and commits; NULL when it
 * committed, else why not (the transaction rolled back, nothing written).
 */
static const char *
commit_batches(const int *slots, int n, dsm_segment **segs)
{
	static char why[256];
	MemoryContext context = CurrentMemoryContext;
	volatile bool ok = false;

	PG_TRY();
	{
		SetCurrentStatementStartTimestamp();
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		for (int i = 0; i < n; i++)
			vs_store_log_batch(dsm_segment_address(segs[i]));
		PopActiveSnapshot();
		CommitTransactionCommand();
		ok = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(context);
		edata = CopyErrorData();
		FlushErrorState();
		strlcpy(why, edata->message ? edata->message : "unknown error", sizeof(why));
		FreeErrorData(edata);
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	return ok ? NULL : why;
}

/* Writes the batches taken: all in one commit, or, when that fails, each in one of its own. */
static void
write_batches(const int *slots, int n)
{
	dsm_segment *segs[WRITER_SLOTS];
	int			attached[WRITER_SLOTS];
	int			nattached = 0;
	const char *why;

	for (int i = 0; i < n; i++)
	{
		dsm_segment *seg = dsm_attach(shared->slots[slots[i]].handle);

		if (seg == NULL)
		{
			finish_batches(&slots[i], 1, "its segment was gone");
			continue;
		}
		dsm_pin_mapping(seg);	/* survives the transactions below */
		segs[nattached] = seg;
		attached[nattached++] = slots[i];
	}
	if (nattached == 0)
		return;
	why = commit_batches(attached, nattached, segs);
	if (why == NULL)
		finish_batches(attached, nattached, NULL);
	else
	{
		/* One bad batch must not fail the others. */
		for (int i = 0; i < nattached; i++)
		{
			const char *one = commit_batches(&attached[i], 1, &segs[i]);

			finish_batches(&attached[i], 1, one);
		}
	}
	for (int i = 0; i < nattached; i++)
		dsm_detach(segs[i]);
}

/*
 * Whether a session wants this database to itself (DROP DATABASE, ALTER
 * DATABASE ... RENAME): it holds the database's lock, which it takes
 * before it waits (5 s) for the other sessions to leave.
 */
static bool
database_wanted_alone(void)
{
	LOCKTAG		tag;

	SET_LOCKTAG_OBJECT(tag, InvalidOid, DatabaseRelationId, MyDatabaseId, 0);
	if (LockAcquire(&tag, RowExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
		return true;
	LockRelease(&tag, RowExclusiveLock, true);
	return false;
}

extern "C" {
PGDLLEXPORT void vs_log_writer_main(Datum main_arg);

/*
 * The writer of one database: commits the batches backends queue, until a
 * minute passes without any or a session wants the database to itself.
 */
void
vs_log_writer_main(Datum main_arg)
{
	Oid			database_id = DatumGetObjectId(main_arg);
	TimestampTz last_work = GetCurrentTimestamp();
	int			slots[WRITER_SLOTS];

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	/* Written as the bootstrap superuser: the writer runs fixed INSERT/UPDATE statements. */
	BackgroundWorkerInitializeConnectionByOid(database_id, BOOTSTRAP_SUPERUSERID, 0);
	/* Never wait forever: backends wait for us. A superuser session: no name through public. */
	SetConfigOption("lock_timeout", "5s", PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("statement_timeout", "30s", PGC_SUSET, PGC_S_SESSION);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION);

	SpinLockAcquire(&shared->mutex);
	my_entry = writer_entry(database_id);
	if (my_entry != NULL && my_entry->pid == 0)
	{
		my_entry->pid = MyProcPid;
		my_entry->procno = MyProc->pgprocno;
	}
	else
		my_entry = NULL;		/* another writer serves this database */
	SpinLockRelease(&shared->mutex);
	if (my_entry == NULL)
		proc_exit(0);
	before_shmem_exit(writer_exit, 0);
	pgstat_report_activity(STATE_IDLE, NULL);

	for (;;)
	{
		int			n;

		CHECK_FOR_INTERRUPTS();
		n = take_batches(slots);
		if (n > 0)
		{
			pgstat_report_activity(STATE_RUNNING, "vibescaling: writing dispatch log rows");
			write_batches(slots, n);
			/* A long-lived process: its table statistics show as it goes, not at its exit. */
			pgstat_report_stat(true);
			pgstat_report_activity(STATE_IDLE, NULL);
			last_work = GetCurrentTimestamp();
			continue;
		}
		if (TimestampDifferenceExceeds(last_work, GetCurrentTimestamp(), writer_idle_ms) ||
			database_wanted_alone())
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	/* Leave only with nothing queued: a batch queued now finds no writer and starts one. */
	proc_exit(0);
}
}
