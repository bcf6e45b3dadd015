/* datadir.h - where idbmount keeps its data when not told. */
#ifndef IDBMOUNT_DATADIR_H
#define IDBMOUNT_DATADIR_H

#include <stdbool.h>
#include <stddef.h>

/* Writes the default data directory into `out`: $IDBMOUNT_DATA, else
 * $XDG_DATA_HOME/idbmount, else $HOME/.local/share/idbmount. Parents are
 * made as needed. Returns 0 or -errno. */
int datadir_default(char *out, size_t outlen);

/* Gives the file `path` mode 0600, whatever the umask: one that exists
 * (a database or log of an earlier version, made 0644) is changed, a
 * missing one is made empty when `create` is set. Every file of the data
 * directory goes through here before it is first opened (SQLite makes
 * -wal and -shm with the mode of the database). A file of another user,
 * whose mode cannot be changed, is left as it is. Returns 0 or -errno. */
int datadir_private_file(const char *path, bool create);

/* Whether users other than its owner can read, search or write directory
 * `dir` (mode & 077), with the warning to print in `warning`. False also
 * when it cannot be looked at (the caller's next step says why). */
bool datadir_open_to_others(const char *dir, char *warning, size_t warning_len);

/* This machine's name for the change line's "node" field. */
void datadir_node_name(char *out, size_t outlen);

/* What has become of process `pid`: gone, dying (killed, but a thread of
 * it is still in the kernel; its main thread is a zombie) or alive. */
enum process_state {
	PROCESS_GONE,
	PROCESS_DYING,
	PROCESS_ALIVE,
};
enum process_state process_state(int pid);

#endif
