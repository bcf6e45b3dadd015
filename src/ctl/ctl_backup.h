/* ctl_backup.h - idbmountctl's backup and restore (ctl_backup.c), called by
 * the command table in ctl.c. Each returns the exit status (0, 1 failed,
 * 2 usage).
 */
#ifndef IDBMOUNT_CTL_BACKUP_H
#define IDBMOUNT_CTL_BACKUP_H

/* backup DEST: a snapshot of the data directory `datadir` into new file DEST. */
int ctl_backup_command(const char *datadir, int argc, char **argv);

/* restore BACKUP DIR: a new data directory DIR from a backup. */
int ctl_restore_command(int argc, char **argv);

#endif
