/*
 * patroni-citus stand-in for the Citus shared library: NOT Citus.
 *
 * Citus is in no package registry the test machines reach, so the test harness installs this
 * library as `citus.so` into a private copy of the PostgreSQL tree. It lets
 * shared_preload_libraries = 'citus' start the server; the metadata functions are modelled in
 * SQL by the `citus` stand-in extension (citus--13.2-standin.sql).
 *
 * When preloaded it also models one job of Citus's maintenance daemon: after citus_update_node
 * marks metadata workers unsynced, Citus resyncs them in the background within a few seconds,
 * so pg_dist_node shows metadatasynced = true again without anyone calling a function.
 *
 *   - A launcher (static background worker, restarted 5 s after it fails or is terminated) runs
 *     on a primary only: it starts once recovery has finished (at promotion), so a standby has
 *     none. It attaches to no database, only to the shared catalogs, so it sees whether the
 *     database exists yet (Patroni creates it after bootstrap) without holding any open.
 *   - About once a second it starts a short-lived dynamic worker that connects to the database,
 *     runs pg_catalog.citus_standin_resync_stale() in one transaction if the extension is
 *     installed there, and exits. Connecting afresh each cycle means no process stays in the
 *     database: DROP DATABASE (which waits up to 5 s for other sessions) is never blocked.
 *     Errors are logged at LOG and the next cycle tries again.
 *
 * Setting (PGC_SIGHUP, so a reload changes it):
 *   citus_standin.database   the database to resync (default 'citus', like Patroni's
 *                            citus.database); real Citus resyncs every database it runs in.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

PG_MODULE_MAGIC;

#define CYCLE_MS 1000L
#define LAUNCHER_RESTART_SECONDS 5

void		_PG_init(void);
PGDLLEXPORT void citus_standin_launcher_main(Datum main_arg);
PGDLLEXPORT void citus_standin_resync_main(Datum main_arg);

static char *standin_database = NULL;

static void
describe_worker(BackgroundWorker *worker, const char *function, const char *type)
{
	memset(worker, 0, sizeof(*worker));
	worker->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker->bgw_start_time = BgWorkerStart_RecoveryFinished;
	strlcpy(worker->bgw_library_name, "citus", BGW_MAXLEN);
	strlcpy(worker->bgw_function_name, function, BGW_MAXLEN);
	strlcpy(worker->bgw_type, type, BGW_MAXLEN);
	snprintf(worker->bgw_name, BGW_MAXLEN, "%s (NOT Citus)", type);
}

void
_PG_init(void)
{
	BackgroundWorker launcher;

	/* say it loudly: a log that mentions Citus must never be mistaken for real Citus */
	ereport(LOG,
			(errmsg("citus stand-in loaded (patroni-citus test double, not real Citus)")));

	DefineCustomStringVariable("citus_standin.database",
							   "Database whose Citus metadata the patroni-citus stand-in resyncs.",
							   "Read only by the patroni-citus test stand-in (NOT Citus): its "
							   "background worker marks stale metadata workers synced there.",
							   &standin_database,
							   "citus",
							   PGC_SIGHUP,
							   0,
							   NULL, NULL, NULL);
	MarkGUCPrefixReserved("citus_standin");

	if (!process_shared_preload_libraries_in_progress)
		return;					/* loaded by LOAD or CREATE EXTENSION: no daemon */

	describe_worker(&launcher, "citus_standin_launcher_main",
					"patroni-citus stand-in metadata sync launcher");
	launcher.bgw_restart_time = LAUNCHER_RESTART_SECONDS;
	RegisterBackgroundWorker(&launcher);
}

/*
 * The database's OID if it exists and takes connections. A heap scan, not get_database_oid():
 * without a database, the relcache can only open the nailed shared catalogs, not their indexes.
 */
static Oid
find_database(const char *name)
{
	ScanKeyData key;
	Relation	pg_database;
	TableScanDesc scan;
	HeapTuple	tuple;
	Oid			found = InvalidOid;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	(void) GetTransactionSnapshot();	/* sets the xmin horizon heap page pruning relies on */
	ScanKeyInit(&key, Anum_pg_database_datname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum(name));
	pg_database = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(pg_database, 1, &key);
	tuple = heap_getnext(scan, ForwardScanDirection);
	if (HeapTupleIsValid(tuple))
	{
		Form_pg_database row = (Form_pg_database) GETSTRUCT(tuple);

		/* -2 (DATCONNLIMIT_INVALID_DB): left behind by an interrupted DROP DATABASE */
		if (row->datallowconn && row->datconnlimit != -2)
			found = row->oid;
	}
	table_endscan(scan);
	table_close(pg_database, AccessShareLock);
	CommitTransactionCommand();
	return found;
}

/* Start one resync worker for the database and wait until it is done; quiet if none exists. */
static void
resync_once(void)
{
	Oid			database_id;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	pid_t		pid;

	database_id = find_database(standin_database);
	if (!OidIsValid(database_id))
		return;					/* not created yet: try again next cycle */

	describe_worker(&worker, "citus_standin_resync_main", "patroni-citus stand-in metadata sync");
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	worker.bgw_main_arg = ObjectIdGetDatum(database_id);
	worker.bgw_notify_pid = MyProcPid;
	strlcpy(worker.bgw_extra, standin_database, BGW_EXTRALEN);
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		ereport(DEBUG1,
				(errmsg("patroni-citus stand-in: no free background worker slot for the metadata sync")));
		return;
	}

	/* the postmaster signals us when it stops; stop waiting at shutdown, it gets SIGTERM too */
	while (!ShutdownRequestPending && GetBackgroundWorkerPid(handle, &pid) != BGWH_STOPPED)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 CYCLE_MS / 10, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
	pfree(handle);
}

void
citus_standin_launcher_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();

	/* shared catalogs only (pg_database): this process never holds a database open */
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);
	ereport(LOG,
			(errmsg("patroni-citus stand-in metadata sync started (models Citus's maintenance "
					"daemon; not real Citus)")));

	while (!ShutdownRequestPending)
	{
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 CYCLE_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!ShutdownRequestPending && !RecoveryInProgress())
			resync_once();
	}
	proc_exit(1);				/* 1, not 0: if killed outside a shutdown, come back in 5 s */
}

static void
run_resync(const char *database)
{
	bool		isnull;
	bool		installed;
	int			resynced;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "patroni-citus stand-in metadata resync");

	if (SPI_execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'citus')"
					" AND to_regprocedure('pg_catalog.citus_standin_resync_stale()') IS NOT NULL",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "checking for the citus extension failed");
	installed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	if (installed)
	{
		if (SPI_execute("SELECT pg_catalog.citus_standin_resync_stale()", false, 1) != SPI_OK_SELECT)
			elog(ERROR, "citus_standin_resync_stale() failed");
		resynced = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											   &isnull));
		if (resynced > 0)
			ereport(LOG,
					(errmsg("patroni-citus stand-in marked %d metadata worker(s) synced in database "
							"\"%s\" (modelling Citus's maintenance daemon; not real Citus)",
							resynced, database)));
	}

	SPI_finish();
	PopActiveSnapshot();
	pgstat_report_activity(STATE_IDLE, NULL);
}

void
citus_standin_resync_main(Datum main_arg)
{
	char		database[NAMEDATALEN];

	strlcpy(database, MyBgworkerEntry->bgw_extra, sizeof(database));
	pqsignal(SIGTERM, die);		/* e.g. DROP DATABASE ... WITH (FORCE), or shutdown */
	BackgroundWorkerUnblockSignals();
	/* fails (FATAL, logged once) only if the database was dropped since the launcher looked */
	BackgroundWorkerInitializeConnectionByOid(DatumGetObjectId(main_arg), InvalidOid, 0);

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		run_resync(database);
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *error;

		MemoryContextSwitchTo(TopMemoryContext);
		error = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG,
				(errmsg("patroni-citus stand-in metadata resync in database \"%s\" failed: %s",
						database, error->message)));
	}
	PG_END_TRY();
	proc_exit(0);
}
