/*
 * patroni-citus stand-in for the Citus shared library: NOT Citus.
 *
 * Citus is in no package registry the test machines reach, so the test harness installs this
 * library as `citus.so` into a private copy of the PostgreSQL tree. It exists only so that
 * shared_preload_libraries = 'citus' starts the server; everything the project relies on is
 * modelled in SQL by the `citus` stand-in extension (citus--13.2-standin.sql).
 */
#include "postgres.h"

#include "fmgr.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

void
_PG_init(void)
{
	/* say it loudly: a log that mentions Citus must never be mistaken for real Citus */
	ereport(LOG,
			(errmsg("citus stand-in loaded (patroni-citus test double, not real Citus)")));
}
