/* store_backup.h - online backup of a data directory's database into one
 * file, and restore of such a file into a new data directory (see
 * src/DESIGN.md, "Backup and restore").
 *
 * A backup is a consistent snapshot of everything in the database (clients
 * and tokens, records, the change log, the sinks' cursors and intents, the
 * sync state) taken while the daemon goes on serving. A restored directory
 * gets a new store epoch, so that nothing after the backup point is ever
 * named or numbered as something already shipped or pulled.
 */
#ifndef IDBMOUNT_STORE_BACKUP_H
#define IDBMOUNT_STORE_BACKUP_H

#include "idbmount/store/store.h"

#include <stddef.h>
#include <stdint.h>

/* What a backup holds, or what a restore made. */
struct store_backup_info {
	char epoch[17];     /* the store epoch the backup was taken of */
	char new_epoch[17]; /* restore: the restored directory's epoch */
	int64_t last_seq;   /* the last change in the backup */
	int64_t bytes;      /* the backup file's size */
	int64_t taken_ms;   /* when the backup's snapshot was taken */
	int schema_version; /* of the backup file */
	int64_t sinks;      /* sinks in the backup */
	int64_t intents;    /* restore: intents renamed to the new epoch */
};

/* Writes a snapshot of the database of `st` into the new file `dest`
 * (mode 0600), which must not exist: -EEXIST otherwise, and an existing
 * file is never touched. The copy is written under a hidden temporary
 * name beside `dest`, checked, synced, and then given its name, so a
 * `dest` that exists is complete. Writers go on while it runs. Returns 0
 * or -errno with the reason in store_last_error(). */
int store_backup(struct store *st, const char *dest, struct store_backup_info *info);

/* Makes the new data directory `datadir` (or fills an empty one) from the
 * backup file `backup`, which is only read: checked to be an intact
 * idbmount database of a schema version this idbmount knows, copied,
 * given a new store epoch, its sinks' staged intents made pending and
 * renamed to the new epoch, its done flags moved to now, and the restore
 * noted in it (store_restore_note). A directory that holds anything is
 * refused (-ENOTEMPTY). Returns 0 or -errno with the reason in `err`. */
int store_restore(const char *backup, const char *datadir, struct store_backup_info *info,
                  char *err, size_t errlen);

/* For the daemon's log: "restored at TIME from a backup of store epoch E
 * taken at TIME (up to seq N); store epoch now F" when the data directory
 * was made by store_restore, else "". */
int store_restore_note(struct store *st, char *out, size_t outlen);

#endif
