/* claim.h - one daemon per data directory, and what a daemon that died
 * left behind.
 *
 * The daemon holds an exclusive flock(2) on DATADIR/idbmount.lock for its
 * whole life (its watchdog process shares it, so it is held until the
 * mounts of a daemon that died are cleared). The file says who holds it:
 *
 *   pid 4242
 *   mount 0:52 /mnt/idb
 *
 * so that the next start can tell a live daemon (refused), a dying one (a
 * thread stuck in the kernel after SIGKILL: its mounts are aborted, which
 * lets it die) and a dead one whose mounts nobody cleared (they are
 * detached), from what the kernel lists, never by looking into a mount
 * that may hang.
 */
#ifndef IDBMOUNT_CLAIM_H
#define IDBMOUNT_CLAIM_H

#include <stddef.h>

struct fs_mount_id;

struct claim {
	int fd; /* -1: not held */
};

/* How long a start waits for a dead daemon's watchdog to let go. */
#define CLAIM_WAIT_MS 15000

/* Takes the lock of `datadir`, clearing what a dead or dying predecessor
 * left (see above). Returns 0; -EBUSY when a live daemon serves the data
 * directory; or -errno. `err` says why, for stderr; `note` (may be empty)
 * says what was cleared, for the log. */
int claim_take(const char *datadir, struct claim *out, char *err, size_t errlen, char *note,
               size_t notelen);

/* Records this process and its mounts in the lock file: after detaching,
 * which changes the pid. Returns 0 or -errno. */
int claim_record(struct claim *c, const struct fs_mount_id *mounts, size_t n);

/* A clean stop: empties the record and lets go of the lock. */
void claim_release(struct claim *c);

#endif
