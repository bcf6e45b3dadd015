/* fs_xattrs.c - the read-only extended attributes user.idbmount.* (see
 * src/DESIGN.md, "The tree", and fs_ops.c for what all handlers share).
 */
#include "fs_internal.h"

#include "idbmount/fs/fs.h"
#include "idbmount/store/store.h"
#include "idbmount/util/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#define XATTR_PREFIX  "user.idbmount."
#define XATTR_REV     "user.idbmount.rev"
#define XATTR_SEQ     "user.idbmount.seq"
#define XATTR_ORIGIN  "user.idbmount.origin"
#define XATTR_KEYPATH "user.idbmount.keypath"
#define XATTR_AUTOINC "user.idbmount.autoincrement"

/* ---- extended attributes ---------------------------------------------------- */

/* Builds the xattrs of `node` as "name\0value\0..." pairs into `out`. */
static int collect_xattrs(struct fs_session *s, struct store *st, fuse_ino_t node, struct buf *out)
{
	int64_t rev;
	uint64_t ino = session_store_ino(s, node, &rev);
	if (store_ino_kind(ino) == STORE_FILE) {
		struct store_node n;
		int rc = session_getattr(s, st, node, &n);
		if (rc)
			return rc;
		if (n.state != STORE_LIVE)
			return 0;
		buf_printf(out, "%s%c%lld%c", XATTR_REV, 0, (long long)n.rev, 0);
		buf_printf(out, "%s%c%lld%c", XATTR_SEQ, 0, (long long)n.seq, 0);
		buf_printf(out, "%s%c%s%c", XATTR_ORIGIN, 0, store_origin_name(n.origin), 0);
		return 0;
	}
	if (store_ino_kind(ino) == STORE_OBJSTORE) {
		char *keypath = NULL;
		bool autoinc = false;
		int rc = store_objstore_info(st, ino, &keypath, &autoinc);
		if (rc)
			return rc;
		buf_printf(out, "%s%c%s%c", XATTR_KEYPATH, 0, keypath, 0);
		buf_printf(out, "%s%c%s%c", XATTR_AUTOINC, 0, autoinc ? "true" : "false", 0);
		free(keypath);
	}
	return 0;
}

/* The pair of collect_xattrs' output at *at, moving *at past it; false
 * at the end. */
static bool xattr_next(const struct buf *all, size_t *at, const char **name, const char **value)
{
	if (*at >= all->len)
		return false;
	*name = all->data + *at;
	*value = *name + strlen(*name) + 1;
	*at = (size_t)(*value - all->data) + strlen(*value) + 1;
	return true;
}

static void reply_sized(fuse_req_t req, const char *data, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, data, len);
}

/* Attribute namespaces the mount does not have at all. `ls -l` asks every
 * file for its SELinux label (security.selinux) and its ACL
 * (system.posix_acl_access); told "not supported" once, it stops asking
 * for the rest of that file system, where "no such attribute" made it ask
 * again for every file (a round trip each). */
static bool xattr_namespace_unsupported(const char *name)
{
	return strncmp(name, "security.", 9) == 0 || strncmp(name, "trusted.", 8) == 0 ||
	       strncmp(name, "system.posix_acl_", 17) == 0;
}

void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	if (xattr_namespace_unsupported(name)) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	if (strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) != 0) {
		/* Ours are all user.idbmount.*: no need to read the record. */
		fuse_reply_err(req, ENODATA);
		return;
	}
	struct store *st = req_store(req, req_fs(req));
	if (!st)
		return;
	struct buf all;
	buf_init(&all, 1 << 16);
	int rc = collect_xattrs(req_session(req), st, ino, &all);
	if (rc) {
		buf_free(&all);
		fuse_reply_err(req, -rc);
		return;
	}
	const char *n, *v;
	for (size_t at = 0; xattr_next(&all, &at, &n, &v);) {
		if (strcmp(n, name) == 0) {
			reply_sized(req, v, strlen(v), size);
			buf_free(&all);
			return;
		}
	}
	buf_free(&all);
	fuse_reply_err(req, ENODATA);
}

void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct store *st = req_store(req, req_fs(req));
	if (!st)
		return;
	struct buf all, names;
	buf_init(&all, 1 << 16);
	buf_init(&names, 1 << 16);
	int rc = collect_xattrs(req_session(req), st, ino, &all);
	const char *n, *v;
	for (size_t at = 0; rc == 0 && xattr_next(&all, &at, &n, &v);)
		buf_append(&names, n, strlen(n) + 1);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_sized(req, names.data ? names.data : "", names.len, size);
	buf_free(&all);
	buf_free(&names);
}

void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                 int flags)
{
	(void)ino;
	(void)value;
	(void)size;
	(void)flags;
	/* Ours are read-only; others are not kept (like a filesystem without
	 * user xattrs, which cp and rsync handle quietly). */
	fuse_reply_err(req,
	               strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) == 0 ? EPERM : ENOTSUP);
}

void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	fuse_reply_err(req,
	               strncmp(name, XATTR_PREFIX, strlen(XATTR_PREFIX)) == 0 ? EPERM : ENOTSUP);
}
