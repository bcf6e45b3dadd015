/* datadir.h - where idbmount keeps its data when not told. */
#ifndef IDBMOUNT_DATADIR_H
#define IDBMOUNT_DATADIR_H

#include <stddef.h>

/* Writes the default data directory into `out`: $IDBMOUNT_DATA, else
 * $XDG_DATA_HOME/idbmount, else $HOME/.local/share/idbmount. Parents are
 * made as needed. Returns 0 or -errno. */
int datadir_default(char *out, size_t outlen);

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
