/* store_step.c - stepping a query that answers one integer or at most one
 * row, for every store file (see store_internal.h). store_step_done, which
 * also queues writes, is in store.c with the writers' queue.
 */
#include "store_internal.h"

#include <errno.h>

/* Runs a one-row, one-integer query; *out keeps its value when no row. */
int store_step_int(struct store *st, sqlite3_stmt *s, int64_t *out)
{
	int rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	int res = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_fail(st, rc);
	sqlite3_reset(s);
	return res;
}

int store_step_row(struct store *st, sqlite3_stmt *s, store_row_fn read_row, void *out)
{
	int rc = sqlite3_step(s);
	int res = -ENOENT;
	if (rc == SQLITE_ROW) {
		read_row(s, out);
		res = 0;
	} else if (rc != SQLITE_DONE) {
		res = store_sql_fail(st, rc);
	}
	sqlite3_reset(s);
	return res;
}
