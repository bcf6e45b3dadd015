/* store_step.c - stepping a statement that answers at most one row, for
 * every store file (see store_internal.h).
 *
 * It sits beside store.c's store_step_done and store_step_int rather than
 * with them only because store.c was being changed elsewhere when it was
 * written; they belong together and may move here.
 */
#include "store_internal.h"

#include <errno.h>

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
