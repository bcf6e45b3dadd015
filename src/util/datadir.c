/* datadir.c - the embedded default data directory (see datadir.h). Both
 * programs use it, so `idbmount MNT` and `idbmountctl` agree with no
 * configuration at all. */
#include "idbmount/util/datadir.h"
#include "idbmount/util/mkdirs.h"

#include <errno.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int datadir_default(char *out, size_t outlen)
{
	const char *env = getenv("IDBMOUNT_DATA");
	const char *xdg = getenv("XDG_DATA_HOME");
	const char *home = getenv("HOME");
	if (!home || !*home) {
		struct passwd *pw = getpwuid(getuid());
		home = pw ? pw->pw_dir : "/";
	}
	int n;
	if (env && *env)
		n = snprintf(out, outlen, "%s", env);
	else if (xdg && *xdg)
		n = snprintf(out, outlen, "%s/idbmount", xdg);
	else
		n = snprintf(out, outlen, "%s/.local/share/idbmount", home);
	if (n < 0 || (size_t)n >= outlen)
		return -ENAMETOOLONG;
	return mkdirs(out, 0700, false, NULL, 0);
}

int datadir_private_file(const char *path, bool create)
{
	/* By path only, never an open(): closing any descriptor of a file
	 * drops every POSIX lock the process holds on it, and SQLite's
	 * connections of this process hold theirs on the database and -shm. */
	if (create && mknod(path, S_IFREG | 0600, 0) != 0 && errno != EEXIST)
		return -errno;
	struct stat sb;
	if (stat(path, &sb) != 0)
		return errno == ENOENT && !create ? 0 : -errno;
	/* chmod, not only the mode given to mknod: the umask may have taken
	 * bits off 0600 too, and a file that existed keeps its mode. */
	if ((sb.st_mode & 0777) != 0600 && chmod(path, 0600) != 0 && errno != EPERM)
		return -errno;
	return 0;
}

bool datadir_open_to_others(const char *dir, char *warning, size_t warning_len)
{
	struct stat sb;
	if (stat(dir, &sb) != 0 || (sb.st_mode & 077) == 0)
		return false;
	snprintf(warning, warning_len,
	         "warning: the data directory %s is open to other users (mode %04o); its files "
	         "are readable by their owner only, but 'chmod 700 %s' keeps others from even "
	         "listing it",
	         dir, (unsigned)(sb.st_mode & 07777), dir);
	return true;
}

void datadir_node_name(char *out, size_t outlen)
{
	if (gethostname(out, outlen) != 0 || !*out)
		snprintf(out, outlen, "localhost");
	out[outlen - 1] = '\0';
}

enum process_state process_state(int pid)
{
	if (pid <= 0)
		return PROCESS_GONE;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return errno == ENOENT || errno == ESRCH ? PROCESS_GONE : PROCESS_ALIVE;
	char line[1024];
	bool read = fgets(line, sizeof(line), f) != NULL;
	fclose(f);
	/* "PID (COMM) STATE ...": COMM may hold anything, so the state is
	 * after the last ')'. */
	const char *close = read ? strrchr(line, ')') : NULL;
	if (!close || close[1] != ' ')
		return PROCESS_ALIVE;
	char state = close[2];
	/* A zombie leader with threads left is a process dying (a thread
	 * stuck in the kernel keeps it); X is one being reaped. */
	if (state == 'Z' || state == 'X')
		return PROCESS_DYING;
	return PROCESS_ALIVE;
}
