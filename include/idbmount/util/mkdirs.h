/* mkdirs.h - mkdir -p, for the data directory and the dir sink. */
#ifndef IDBMOUNT_MKDIRS_H
#define IDBMOUNT_MKDIRS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Makes directory `path` (absolute) and every missing parent with `mode`;
 * one that exists already (as anything) is fine. With `sync`, each
 * directory made is fsynced into its parent, so what goes inside it later
 * survives a crash. On failure `failed` (when not NULL) names the
 * directory that could not be made or synced. Returns 0 or -errno
 * (-ENAMETOOLONG for a path of PATH_MAX bytes or more). */
int mkdirs(const char *path, mode_t mode, bool sync, char *failed, size_t failed_len);

#endif
