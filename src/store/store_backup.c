/* store_backup.c - online backup into one file and restore into a new data
 * directory (store_backup.h; src/DESIGN.md, "Backup and restore").
 *
 * The backup is SQLite's `VACUUM INTO`, not the online backup API
 * (sqlite3_backup_step). Both read one consistent snapshot, and in WAL mode
 * a reader never blocks a writer, so neither holds the daemon up. The
 * backup API copies in steps only to let writers in between steps, which
 * WAL does not need, and it starts over whenever another process writes
 * between two steps: idbmountctl is another process, so under a steady
 * stream of pushes a stepped backup might never end, and one step of the
 * whole database is then what remains. VACUUM INTO takes that snapshot in
 * one statement, writes a compact file without free pages, and keeps the
 * header fields (application_id, user_version). What neither avoids: the
 * WAL cannot be checkpointed past the snapshot while it is read, so it
 * grows for the length of the backup and shrinks at the next checkpoint.
 */
#include "idbmount/store/store_backup.h"

#include "store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define COPY_BLOCK (1u << 20)

/* ---- small helpers on a connection of this file's own ------------------- */

/* The integer `sql` answers on `db` (0 when no row). */
static int db_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *s = NULL;
	*out = 0;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW)
			*out = sqlite3_column_int64(s, 0);
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(s);
	return rc;
}

/* The text `sql` answers on `db` into `out` ("" when no row). */
static int db_text(sqlite3 *db, const char *sql, char *out, size_t outlen)
{
	sqlite3_stmt *s = NULL;
	out[0] = '\0';
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW && sqlite3_column_text(s, 0))
			snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(s, 0));
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
	}
	sqlite3_finalize(s);
	return rc;
}

/* Checks the idbmount backup (or database) open as `db` and reads what it
 * holds into `info`; `path` is for the messages. Returns 0 or -errno. */
static int inspect(sqlite3 *db, const char *path, struct store_backup_info *info, char *err,
                   size_t errlen)
{
	int64_t id = 0, version = 0, taken = 0;
	char check[512];
	int rc = db_int(db, "PRAGMA application_id", &id);
	if (rc == SQLITE_OK && (uint32_t)id != STORE_APPLICATION_ID) {
		snprintf(err, errlen,
		         "%s is not an idbmount backup: its application_id is 0x%08x (idbmount's "
		         "is 0x%08x)",
		         path, (unsigned)id, STORE_APPLICATION_ID);
		return -EPROTO;
	}
	if (rc == SQLITE_OK)
		rc = db_int(db, "PRAGMA user_version", &version);
	if (rc == SQLITE_OK && version > store_schema_latest()) {
		snprintf(err, errlen,
		         "%s has schema version %lld, newer than this idbmount knows (%d): restore "
		         "it with the idbmount that made it, or a newer one",
		         path, (long long)version, store_schema_latest());
		return -EPROTO;
	}
	/* The whole file, not just its first page: a backup cut short or
	 * damaged on its way is refused before it becomes a data directory. */
	if (rc == SQLITE_OK)
		rc = db_text(db, "PRAGMA quick_check", check, sizeof(check));
	if (rc == SQLITE_OK && strcmp(check, "ok") != 0) {
		snprintf(err, errlen, "%s is damaged: %s", path, check);
		return -EIO;
	}
	if (rc == SQLITE_OK)
		rc = db_text(db, "SELECT value FROM meta WHERE name = 'epoch'", info->epoch,
		             sizeof(info->epoch));
	if (rc == SQLITE_OK && !info->epoch[0]) {
		snprintf(err, errlen, "%s is not an idbmount backup: it has no store epoch", path);
		return -EPROTO;
	}
	if (rc == SQLITE_OK)
		rc = db_int(db, "SELECT coalesce(max(seq), 0) FROM changes", &info->last_seq);
	if (rc == SQLITE_OK)
		rc = db_int(db, "SELECT value FROM meta WHERE name = 'backup_ms'", &taken);
	if (rc == SQLITE_OK)
		rc = db_int(db,
		            "SELECT CASE WHEN EXISTS (SELECT 1 FROM sqlite_master WHERE name = "
		            "'sinks') THEN (SELECT count(*) FROM sinks) ELSE 0 END",
		            &info->sinks);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s is not an idbmount backup: %s", path, sqlite3_errmsg(db));
		return -EPROTO;
	}
	info->taken_ms = taken;
	info->schema_version = (int)version;
	return 0;
}

/* fsync of a file or directory by path. */
static int sync_path(const char *path, bool directory)
{
	int fd = open(path, (directory ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int rc = fsync(fd) == 0 ? 0 : -errno;
	close(fd);
	return rc;
}

/* The directory part of `path` ("." when it has none). */
static void parent_of(const char *path, char *out, size_t outlen)
{
	const char *slash = strrchr(path, '/');
	if (!slash)
		snprintf(out, outlen, ".");
	else if (slash == path)
		snprintf(out, outlen, "/");
	else
		snprintf(out, outlen, "%.*s", (int)(slash - path), path);
}

/* ---- backup ---------------------------------------------------------------- */

/* Marks the fresh copy at `tmp` as a backup taken now, makes it one file
 * of its own (no WAL beside it) and checks it. */
static int seal_copy(struct store *st, const char *tmp, struct store_backup_info *info)
{
	sqlite3 *db = NULL;
	char err[1024] = "";
	int rc = sqlite3_open_v2(tmp, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	char sql[128];
	snprintf(sql, sizeof(sql),
	         "PRAGMA journal_mode = DELETE;"
	         "INSERT OR REPLACE INTO meta(name, value) VALUES ('backup_ms', '%lld')",
	         (long long)(store_now_ns() / 1000000));
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	int res = 0;
	if (rc != SQLITE_OK) {
		store_set_error(st, "writing the backup %s: %s", tmp,
		                db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		res = -EIO;
	} else {
		res = inspect(db, tmp, info, err, sizeof(err));
		if (res)
			store_set_error(st, "the backup just written fails its check: %s", err);
	}
	sqlite3_close(db);
	return res;
}

int store_backup(struct store *st, const char *dest, struct store_backup_info *info)
{
	memset(info, 0, sizeof(*info));
	struct stat sb;
	if (lstat(dest, &sb) == 0) {
		store_set_error(st, "%s exists: a backup is written to a new file, never over one",
		                dest);
		return -EEXIST;
	}
	if (errno != ENOENT) {
		int e = errno;
		store_set_error(st, "%s: %s", dest, strerror(e));
		return -e;
	}
	const char *base = strrchr(dest, '/') ? strrchr(dest, '/') + 1 : dest;
	if (!*base) {
		store_set_error(st, "%s: a backup is a file; give it a file name", dest);
		return -EISDIR;
	}
	/* Hidden beside `dest`, so a cut-short backup is never taken for one
	 * and the last step is a rename within the directory. */
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%.*s.%s.partial-%d", (int)(base - dest), dest, base,
	             (int)getpid()) >= (int)sizeof(tmp)) {
		store_set_error(st, "%s: path too long", dest);
		return -ENAMETOOLONG;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		int e = errno;
		store_set_error(st, "cannot create %s: %s", tmp, strerror(e));
		return -e;
	}
	close(fd);
	sqlite3_stmt *s = NULL;
	int rc = sqlite3_prepare_v2(st->db, "VACUUM INTO ?1", -1, &s, NULL);
	int res = 0;
	if (rc == SQLITE_OK) {
		store_bind_text(s, 1, tmp);
		rc = sqlite3_step(s);
	}
	if (rc != SQLITE_DONE && rc != SQLITE_OK) {
		store_set_error(st, "copying the database into %s: %s", tmp,
		                sqlite3_errmsg(st->db));
		res = -EIO;
	}
	sqlite3_finalize(s);
	if (!res)
		res = seal_copy(st, tmp, info);
	if (!res && (res = sync_path(tmp, false)) != 0)
		store_set_error(st, "syncing %s: %s", tmp, strerror(-res));
	if (!res && stat(tmp, &sb) == 0)
		info->bytes = sb.st_size;
	/* The name is given without replacing anything: a file that appeared
	 * at `dest` meanwhile is kept. */
	if (!res && renameat2(AT_FDCWD, tmp, AT_FDCWD, dest, RENAME_NOREPLACE) != 0) {
		int e = errno;
		/* File systems without renameat2's flags: link() refuses an
		 * existing name too. */
		if ((e == EINVAL || e == ENOSYS) && link(tmp, dest) == 0)
			e = 0;
		else if (e == EINVAL || e == ENOSYS)
			e = errno;
		if (e == EEXIST)
			store_set_error(
			        st, "%s exists: a backup is written to a new file, never over one",
			        dest);
		else if (e)
			store_set_error(st, "cannot name the backup %s: %s", dest, strerror(e));
		res = -e;
	}
	unlink(tmp); /* after link(), or after a failure */
	if (!res) {
		char dir[PATH_MAX];
		parent_of(dest, dir, sizeof(dir));
		res = sync_path(dir, true);
		if (res)
			store_set_error(st, "syncing the directory %s: %s", dir, strerror(-res));
	}
	return res;
}

/* ---- restore ---------------------------------------------------------------- */

/* Whether `dir` is missing (*exists false) or an empty directory; the
 * reason otherwise. */
static int check_target(const char *dir, bool *exists, char *err, size_t errlen)
{
	DIR *d = opendir(dir);
	*exists = d != NULL;
	if (!d) {
		if (errno == ENOENT)
			return 0;
		int e = errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(e));
		return -e;
	}
	struct dirent *de;
	int res = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(err, errlen,
		         "%s is not empty (it holds %s): a restore makes a new data directory; "
		         "give it a new or empty directory",
		         dir, de->d_name);
		res = -ENOTEMPTY;
		break;
	}
	closedir(d);
	return res;
}

/* `path` as an SQLite URI that opens it read-only without locks or WAL
 * (immutable): reading a backup never writes beside it. */
static int immutable_uri(const char *path, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;
	const char *prefix = "file:";
	for (const char *p = prefix; *p && n + 1 < outlen; p++)
		out[n++] = *p;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (n + 4 >= outlen)
			return -ENAMETOOLONG;
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("/-._~", *p)) {
			out[n++] = (char)*p;
		} else {
			out[n++] = '%';
			out[n++] = hex[*p >> 4];
			out[n++] = hex[*p & 15];
		}
	}
	const char *suffix = "?immutable=1";
	if (n + strlen(suffix) + 1 > outlen)
		return -ENAMETOOLONG;
	snprintf(out + n, outlen - n, "%s", suffix);
	return 0;
}

/* Checks `backup` without changing it: readable, an SQLite database, an
 * intact idbmount database of a known schema version. */
static int check_backup(const char *backup, struct store_backup_info *info, char *err,
                        size_t errlen)
{
	int fd = open(backup, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot read the backup %s: %s", backup, strerror(e));
		return -e;
	}
	struct stat sb;
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		snprintf(err, errlen, "the backup %s is not a file", backup);
		return -EINVAL;
	}
	char head[16] = "";
	ssize_t got = read(fd, head, sizeof(head));
	close(fd);
	if (got != (ssize_t)sizeof(head) || memcmp(head, "SQLite format 3", 16) != 0) {
		snprintf(err, errlen, "%s is not an idbmount backup (not an SQLite database)",
		         backup);
		return -EPROTO;
	}
	char uri[PATH_MAX * 3 + 32];
	if (immutable_uri(backup, uri, sizeof(uri)) != 0) {
		snprintf(err, errlen, "%s: path too long", backup);
		return -ENAMETOOLONG;
	}
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(
	        uri, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX, NULL);
	int res = 0;
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "cannot open the backup %s: %s", backup,
		         db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		res = -EIO;
	} else {
		res = inspect(db, backup, info, err, errlen);
	}
	sqlite3_close(db);
	return res;
}

/* Copies file `from` to the new file `to` (0600) and syncs it. */
static int copy_file(const char *from, const char *to, char *err, size_t errlen)
{
	int in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		int e = errno;
		snprintf(err, errlen, "cannot read the backup %s: %s", from, strerror(e));
		return -e;
	}
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		int e = errno;
		close(in);
		snprintf(err, errlen, "cannot create %s: %s", to, strerror(e));
		return -e;
	}
	char *block = malloc(COPY_BLOCK);
	int res = block ? 0 : -ENOMEM;
	while (!res) {
		ssize_t n = read(in, block, COPY_BLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			res = -errno;
			snprintf(err, errlen, "reading the backup %s: %s", from, strerror(-res));
			break;
		}
		if (n == 0)
			break;
		for (ssize_t done = 0; done < n && !res;) {
			ssize_t w = write(out, block + done, (size_t)(n - done));
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				res = -errno;
				snprintf(err, errlen, "writing %s: %s", to, strerror(-res));
			} else {
				done += w;
			}
		}
	}
	if (!res && fsync(out) != 0) {
		res = -errno;
		snprintf(err, errlen, "syncing %s: %s", to, strerror(-res));
	}
	free(block);
	close(in);
	close(out);
	return res;
}

/* In the copy, opened as a store: the new epoch and what a restore must
 * change so that nothing later reuses a name or a flagged period, in one
 * transaction. */
static int make_restored(struct store *st, const char *backup, struct store_backup_info *info)
{
	char now[32], taken[32], last[32];
	int64_t now_ms = store_now_ns() / 1000000;
	snprintf(now, sizeof(now), "%lld", (long long)now_ms);
	snprintf(taken, sizeof(taken), "%lld", (long long)info->taken_ms);
	snprintf(last, sizeof(last), "%lld", (long long)info->last_seq);
	int rc = store_epoch_new(info->new_epoch);
	if (rc)
		return rc;
	rc = store_txn_begin(st);
	if (!rc)
		rc = store_meta_put(st, "epoch", info->new_epoch);
	if (!rc)
		rc = store_meta_put(st, "restored_from_epoch", info->epoch);
	if (!rc)
		rc = store_meta_put(st, "restored_ms", now);
	if (!rc)
		rc = store_meta_put(st, "restored_backup_ms", taken);
	if (!rc)
		rc = store_meta_put(st, "restored_last_seq", last);
	if (!rc)
		rc = store_meta_put(st, "restored_from", backup);
	/* The backup's daemon is not this directory's. */
	if (!rc)
		rc = store_exec(st,
		                "DELETE FROM daemon; DELETE FROM meta WHERE name = 'backup_ms'");
	/* Intents keep their batches (the same seqs, the same changes) under
	 * names of the new epoch. A staged copy was made under the old name,
	 * so the batch is made again (pending) rather than looked for. One
	 * published under the old name cannot be watched under the new one:
	 * it counts as taken, as it would have before the backup kept those. */
	sqlite3_stmt *s = NULL;
	if (!rc)
		rc = store_exec(st, "DELETE FROM sink_intents WHERE state = 2");
	if (!rc && sqlite3_prepare_v2(st->db,
	                              "UPDATE sink_intents SET state = CASE state WHEN 1 THEN 0 "
	                              "ELSE state END, name = replace(name, '-' || ?1, '-' || ?2)",
	                              -1, &s, NULL) != SQLITE_OK)
		rc = store_sql_fail(st, sqlite3_errcode(st->db));
	if (!rc) {
		store_bind_text(s, 1, info->epoch);
		store_bind_text(s, 2, info->new_epoch);
		rc = store_step_done(st, s);
		info->intents = sqlite3_changes(st->db);
	}
	sqlite3_finalize(s);
	/* Periods up to now may have been flagged after the backup was taken,
	 * and a flagged period is never written again: done flags go on from
	 * the restore. */
	char periods[200];
	snprintf(periods, sizeof(periods),
	         "UPDATE sink_periods SET flags_from_ms = max(flags_from_ms, %lld);"
	         "UPDATE sinks SET open_partition = ''",
	         (long long)now_ms);
	if (!rc)
		rc = store_exec(st, periods);
	return store_txn_end(st, rc);
}

int store_restore(const char *backup, const char *datadir, struct store_backup_info *info,
                  char *err, size_t errlen)
{
	memset(info, 0, sizeof(*info));
	bool existed = false;
	int res = check_target(datadir, &existed, err, errlen);
	if (!res)
		res = check_backup(backup, info, err, errlen);
	if (res)
		return res;
	if (!existed && mkdir(datadir, 0700) != 0) {
		res = -errno;
		snprintf(err, errlen, "cannot create %s: %s", datadir, strerror(-res));
		return res;
	}
	/* Made in a hidden directory inside and moved into place once it is
	 * whole: an interrupted restore leaves no database that a daemon
	 * would start on. */
	char staging[PATH_MAX], db[PATH_MAX + 16], staged[PATH_MAX + 16];
	snprintf(staging, sizeof(staging), "%s/.restoring", datadir);
	snprintf(staged, sizeof(staged), "%s/idbmount.db", staging);
	snprintf(db, sizeof(db), "%s/idbmount.db", datadir);
	if (mkdir(staging, 0700) != 0) {
		res = -errno;
		snprintf(err, errlen, "cannot create %s: %s", staging, strerror(-res));
		goto out;
	}
	res = copy_file(backup, staged, err, errlen);
	struct store *st = NULL;
	if (!res)
		res = store_open(staging, &st, err, errlen);
	if (!res) {
		res = make_restored(st, backup, info);
		if (res)
			snprintf(err, errlen, "restoring into %s: %s", datadir,
			         store_last_error(st));
	}
	store_close(st); /* the last connection: the WAL goes back into the file */
	char wal[PATH_MAX + 32];
	snprintf(wal, sizeof(wal), "%s-wal", staged);
	if (!res && access(wal, F_OK) == 0) {
		snprintf(err, errlen, "restoring into %s: %s remains after closing", datadir, wal);
		res = -EIO;
	}
	if (!res && (res = sync_path(staged, false)) != 0)
		snprintf(err, errlen, "syncing %s: %s", staged, strerror(-res));
	if (!res && renameat2(AT_FDCWD, staged, AT_FDCWD, db, RENAME_NOREPLACE) != 0) {
		res = -errno;
		snprintf(err, errlen, "cannot move the restored database to %s: %s", db,
		         strerror(-res));
	}
	if (!res && (res = sync_path(datadir, true)) != 0)
		snprintf(err, errlen, "syncing %s: %s", datadir, strerror(-res));
out:
	/* What a failed restore made goes again; the backup was only read. */
	unlink(staged);
	snprintf(wal, sizeof(wal), "%s-wal", staged);
	unlink(wal);
	snprintf(wal, sizeof(wal), "%s-shm", staged);
	unlink(wal);
	rmdir(staging);
	if (res && !existed)
		rmdir(datadir);
	return res;
}

/* ---- the note of a restore ---------------------------------------------- */

/* `ms` (text) as UTC ISO 8601 into `out`, or "an unknown time". */
static void format_ms(const char *ms, char *out, size_t outlen)
{
	char *end = NULL;
	long long v = strtoll(ms, &end, 10);
	struct tm tm;
	time_t t = (time_t)(v / 1000);
	if (!*ms || *end || v <= 0 || !gmtime_r(&t, &tm) ||
	    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, outlen, "an unknown time");
}

int store_restore_note(struct store *st, char *out, size_t outlen)
{
	char from[32], restored[32], taken[32], last[32];
	out[0] = '\0';
	int rc = store_meta_get(st, "restored_from_epoch", from, sizeof(from));
	if (rc == -ENOENT)
		return 0;
	if (!rc)
		rc = store_meta_get(st, "restored_ms", restored, sizeof(restored));
	if (!rc)
		rc = store_meta_get(st, "restored_backup_ms", taken, sizeof(taken));
	if (!rc)
		rc = store_meta_get(st, "restored_last_seq", last, sizeof(last));
	if (rc)
		return rc;
	char when[40], taken_at[40];
	format_ms(restored, when, sizeof(when));
	format_ms(taken, taken_at, sizeof(taken_at));
	snprintf(out, outlen,
	         "restored at %s from a backup of store epoch %s taken at %s (up to seq %s); "
	         "store epoch now %s",
	         when, from, taken_at, last, st->epoch);
	return 0;
}
