/* ctl_backup.c - `idbmountctl backup DEST` and `idbmountctl restore BACKUP
 * DIR` (ctl_backup.h; src/DESIGN.md, "Backup and restore").
 *
 * The backup runs beside the daemon: one consistent snapshot, writers are
 * not held up. The restore makes a new data directory with a new store
 * epoch; it refuses a directory that holds anything, and changes nothing
 * when the backup is refused. Messages go to stderr; the summary of what
 * was done too, so stdout stays empty.
 */
#include "ctl_backup.h"

#include "ctl_common.h"

#include "idbmount/store/store.h"
#include "idbmount/store/store_backup.h"
#include "idbmount/util/clock.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define PROG "idbmountctl"

int ctl_backup_command(const char *datadir, int argc, char **argv)
{
	if (argc != 1 || !*argv[0])
		return ctl_arg_error("backup DEST", "backup: want one argument, the new file DEST");
	/* Never make a data directory: a mistyped --data backs nothing up. */
	struct store *st = ctl_open_existing(datadir);
	if (!st)
		return 1;
	if (*store_open_notice(st))
		ctl_say("%s", store_open_notice(st));
	struct store_backup_info info;
	int64_t start = clock_mono_ms();
	int rc = store_backup(st, argv[0], &info);
	if (rc) {
		ctl_say("backup: %s", store_last_error(st));
		store_close(st);
		return 1;
	}
	ctl_say("backed up %s to %s: store epoch %s, changes up to seq %lld, %.1f MiB, %.1f s",
	        datadir, argv[0], info.epoch, (long long)info.last_seq,
	        (double)info.bytes / (1024 * 1024), (double)(clock_mono_ms() - start) / 1000);
	store_close(st);
	return 0;
}

int ctl_restore_command(int argc, char **argv)
{
	if (argc != 2 || !*argv[0] || !*argv[1])
		return ctl_arg_error(
		        "restore BACKUP DIR", "%s",
		        "restore: want two arguments, the backup file and the new data "
		        "directory");
	struct store_backup_info info;
	char err[8192];
	if (store_restore(argv[0], argv[1], &info, err, sizeof(err)) != 0) {
		ctl_say("restore: %s", err);
		return 1;
	}
	ctl_say("restored %s into %s: changes up to seq %lld; store epoch %s (the backup's was "
	        "%s)",
	        argv[0], argv[1], (long long)info.last_seq, info.new_epoch, info.epoch);
	ctl_say("browsers see a new epoch and pull everything again; sinks ship the changes "
	        "their cursors had not passed, under new file names");
	if (info.intents)
		ctl_say("%lld unfinished or parked batches keep their changes under names of the "
		        "new epoch",
		        (long long)info.intents);
	return 0;
}
