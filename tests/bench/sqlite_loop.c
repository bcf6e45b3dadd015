/* sqlite_loop.c - the floor for bench_sync.py: a plain C loop that inserts
 * the rows a synced put makes (one records row, one change-log row), 1,000
 * per transaction, into SQLite with the store's settings (WAL,
 * synchronous=NORMAL) and the store's indexes on those two tables. No
 * JSON, no HTTP, no checks: what the disk and SQLite allow.
 *
 *   cc -O2 -o sqlite_loop sqlite_loop.c -lsqlite3
 *   ./sqlite_loop DB_PATH ROWS VALUE_FILE
 *
 * VALUE_FILE holds one compact value per line, as the benchmark pushes
 * them; each row stores it twice (record file text and change value), as
 * the store does. Prints "rows SECONDS".
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void check(int rc, sqlite3 *db, const char *what)
{
	if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
		fprintf(stderr, "%s: %s\n", what, sqlite3_errmsg(db));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: sqlite_loop DB_PATH ROWS VALUE_FILE\n");
		return 2;
	}
	long rows = strtol(argv[2], NULL, 10);
	FILE *vf = fopen(argv[3], "r");
	if (!vf) {
		perror(argv[3]);
		return 1;
	}
	char **values = calloc((size_t)rows, sizeof(*values));
	char line[65536];
	for (long i = 0; i < rows && fgets(line, sizeof(line), vf); i++) {
		line[strcspn(line, "\n")] = '\0';
		values[i] = strdup(line);
	}
	fclose(vf);
	sqlite3 *db;
	check(sqlite3_open(argv[1], &db), db, "open");
	check(sqlite3_exec(
	              db,
	              "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
	              "CREATE TABLE records(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	              " store_id INTEGER NOT NULL, state INTEGER NOT NULL, name TEXT, key TEXT,"
	              " value BLOB, size INTEGER NOT NULL DEFAULT 0, rev INTEGER NOT NULL,"
	              " seq INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, origin INTEGER NOT NULL);"
	              "CREATE UNIQUE INDEX records_by_name ON records(store_id, name);"
	              "CREATE INDEX records_listing ON records(store_id, id, state, name, size,"
	              " mtime_ns, rev, seq, origin) WHERE state <= 1;"
	              "CREATE TABLE changes(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
	              " ts_ms INTEGER NOT NULL, client_id INTEGER NOT NULL,"
	              " store_id INTEGER NOT NULL, name TEXT NOT NULL, key TEXT NOT NULL,"
	              " op INTEGER NOT NULL, rev INTEGER NOT NULL, origin INTEGER NOT NULL,"
	              " value TEXT);"
	              "CREATE INDEX changes_by_client ON changes(client_id, seq);",
	              NULL, NULL, NULL),
	      db, "schema");
	sqlite3_stmt *rec, *chg;
	check(sqlite3_prepare_v2(
	              db,
	              "INSERT INTO records(store_id, state, name, key, value, size, rev, "
	              "seq, mtime_ns, origin) VALUES (1, 0, ?1, ?2, ?3, ?4, 1, ?5, ?6, 0)",
	              -1, &rec, NULL),
	      db, "prepare");
	check(sqlite3_prepare_v2(
	              db,
	              "INSERT INTO changes(ts_ms, client_id, store_id, name, key, op, rev, "
	              "origin, value) VALUES (?1, 1, 1, ?2, ?3, 0, 1, 0, ?4)",
	              -1, &chg, NULL),
	      db, "prepare");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (long i = 0; i < rows; i++) {
		if (i % 1000 == 0)
			check(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), db, "begin");
		char name[32], key[32];
		snprintf(key, sizeof(key), "%ld", i);
		snprintf(name, sizeof(name), "%ld.json", i);
		const char *v = values[i] ? values[i] : "{}";
		int64_t now = (int64_t)time(NULL);
		sqlite3_bind_text(chg, 1, NULL, 0, SQLITE_STATIC);
		sqlite3_bind_int64(chg, 1, now * 1000);
		sqlite3_bind_text(chg, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(chg, 3, key, -1, SQLITE_STATIC);
		sqlite3_bind_text(chg, 4, v, -1, SQLITE_STATIC);
		check(sqlite3_step(chg), db, "insert change");
		sqlite3_reset(chg);
		sqlite3_bind_text(rec, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(rec, 2, key, -1, SQLITE_STATIC);
		sqlite3_bind_blob(rec, 3, v, (int)strlen(v), SQLITE_STATIC);
		sqlite3_bind_int64(rec, 4, (int64_t)strlen(v));
		sqlite3_bind_int64(rec, 5, sqlite3_last_insert_rowid(db));
		sqlite3_bind_int64(rec, 6, now * 1000000000);
		check(sqlite3_step(rec), db, "insert record");
		sqlite3_reset(rec);
		if (i % 1000 == 999 || i == rows - 1)
			check(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), db, "commit");
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("%ld %.6f\n", rows,
	       (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	sqlite3_finalize(rec);
	sqlite3_finalize(chg);
	sqlite3_close(db);
	for (long i = 0; i < rows; i++)
		free(values[i]);
	free(values);
	return 0;
}
