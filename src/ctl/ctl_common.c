/* ctl_common.c - what every idbmountctl command uses (see ctl_common.h).
 *
 * Visibility. After a change, if a daemon serves this data directory
 * (store_daemon_status), idbmountctl waits until the daemon's notifier has
 * invalidated the kernel's caches up to the change's seq (and tree-log id
 * for created directories), polling every 2 ms. So what idbmountctl changed
 * shows in the mount when it returns, even with cache=always. The wait
 * gives up after 3 s in which the daemon made no progress (a big import is
 * not cut short while the daemon keeps up), with a warning; the exit status
 * is still 0, the change is committed. */
#include "ctl_common.h"

#include "idbmount/codec/key.h"
#include "idbmount/store/store.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

volatile sig_atomic_t ctl_interrupted;

static void on_signal(int sig)
{
	(void)sig;
	ctl_interrupted = 1;
}

void ctl_catch_interrupts(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

/* ---- messages ----------------------------------------------------------- */

/* Every message starts "idbmountctl: ", wherever it comes from. */
__attribute__((format(printf, 1, 0))) void ctl_vsay(const char *fmt, va_list ap)
{
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
}

void ctl_say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ctl_vsay(fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Reports a failed store call: "idbmountctl: <what>: <reason>". */
int ctl_store_fail(struct store *st, int rc, const char *what)
{
	const char *why = st ? store_last_error(st) : "";
	ctl_say("%s: %s", what, *why ? why : strerror(rc < 0 ? -rc : rc));
	return EXIT_FAIL;
}

void ctl_usage(FILE *out)
{
	fprintf(out,
	        "usage: " PROG " [--data DIR] COMMAND ...\n"
	        "\n"
	        "Administers an idbmount data directory, also while the daemon runs.\n"
	        "\n"
	        "commands:\n"
	        "  client add NAME [--node NODE]   create a client and print its token\n"
	        "                                  (NODE.HEX with --node: a proxy routes on NODE)\n"
	        "  client list                     list clients, one per line\n"
	        "  pipeline add NAME [--node NODE] create a pipeline token (reads /v1/changes\n"
	        "                                  only) and print it\n"
	        "  pipeline list                   list pipelines, one per line\n"
	        "  mkstore CLIENT/DB/STORE [--keypath JSON] [--autoincrement]\n"
	        "                                  make a store; keyPath is JSON text: null\n"
	        "                                  (out-of-line keys, the default), \"id\",\n"
	        "                                  \"a.b\" or [\"a\",\"b\"]\n"
	        "  put CLIENT/DB/STORE KEY JSON    write a record (making the database and\n"
	        "                                  store when missing); prints rev and seq\n"
	        "  get CLIENT/DB/STORE KEY         print a record's file\n"
	        "  rm CLIENT/DB/STORE KEY          delete a record\n"
	        "  ls [CLIENT[/DB[/STORE]]]        list clients, databases, stores or keys\n"
	        "  log [--since SEQ] [--limit N]   print the change lines after SEQ\n"
	        "  import CLIENT/DB/STORE FILE|-   load JSON lines, all or nothing:\n"
	        "                                  {\"key\":K,\"value\":V}, {\"key\":K,\"op\":"
	        "\"delete\"},\n"
	        "                                  change lines, or records with an inline key\n"
	        "  status [--json]                 per sink: lag (changes, seconds), deliveries,\n"
	        "                                  retries, failures, the last error\n"
	        "  sink list                       the sinks of this data directory, then every\n"
	        "                                  sink type with its keys and defaults\n"
	        "  sink replay NAME --from SEQ [--no-wait]\n"
	        "                                  ship the changes from SEQ on again (new file\n"
	        "                                  names); waits with a progress bar on a "
	        "terminal\n"
	        "  sink unpark NAME [--id ID]      send parked batches (or one) again\n"
	        "  backup DEST                     write a consistent snapshot of the data\n"
	        "                                  directory into the new file DEST, while the\n"
	        "                                  daemon runs\n"
	        "  restore BACKUP DIR              make the new data directory DIR from a backup\n"
	        "                                  (with a new store epoch)\n"
	        "\n"
	        "KEY is an IndexedDB key as JSON in tagged form: 5, \"alice\",\n"
	        "{\"~d\":\"2026-01-02T03:04:05.000Z\"}, {\"~b\":\"AAEC\"}, [\"u1\",7].\n"
	        "Names in paths are the raw names, not the escaped file names.\n"
	        "\n"
	        "options:\n"
	        "  --data DIR   data directory (default $IDBMOUNT_DATA, else\n"
	        "               $XDG_DATA_HOME/idbmount, else ~/.local/share/idbmount)\n"
	        "  -h, --help   this text\n"
	        "\n"
	        "exit status: 0 ok, 1 the operation failed, 2 usage error\n");
}

__attribute__((format(printf, 1, 2))) int ctl_usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ctl_vsay(fmt, ap);
	fputs("\n\n", stderr);
	va_end(ap);
	ctl_usage(stderr);
	return EXIT_USAGE;
}

/* A wrong argument of a known command: the message and its synopsis. */
__attribute__((format(printf, 2, 3))) int ctl_arg_error(const char *synopsis, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	ctl_vsay(fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fprintf(stderr, "usage: " PROG " [--data DIR] %s\n", synopsis);
	return EXIT_USAGE;
}

/* Flushes stdout; a failed write is a failed command. */
int ctl_finish_stdout(int status)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_say("writing to standard output: %s", strerror(errno));
		return EXIT_FAIL;
	}
	return status;
}

/* ---- small helpers ------------------------------------------------------- */

/* Parses a decimal integer >= 0 (digits only). */
bool ctl_parse_count(const char *text, int64_t *out)
{
	if (!*text)
		return false;
	for (const char *p = text; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	errno = 0;
	char *end = NULL;
	long long v = strtoll(text, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/* Matches "--name VALUE" and "--name=VALUE" at argv[*i]; advances *i past
 * the value. Returns 1 on a match, 0 if argv[*i] is another argument, -1
 * when the value is missing (message printed). */
int ctl_take_option(int argc, char **argv, int *i, const char *name, const char **value,
                    const char *synopsis)
{
	size_t n = strlen(name);
	const char *a = argv[*i];
	if (strncmp(a, name, n) != 0)
		return 0;
	if (a[n] == '=') {
		*value = a + n + 1;
		return 1;
	}
	if (a[n] != '\0')
		return 0;
	if (*i + 1 >= argc) {
		ctl_arg_error(synopsis, "%s needs a value", name);
		return -1;
	}
	*value = argv[++*i];
	return 1;
}

bool ctl_is_help(const char *a)
{
	return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

/* ---- paths --------------------------------------------------------------- */

static const char *const level_name[3] = {"client", "database", "store"};

void ctl_path_free(struct ctl_path *p)
{
	free(p->copy);
	p->copy = NULL;
}

/* Splits `arg` into `min`..`max` non-empty parts, each a valid name.
 * Returns 0, or EXIT_USAGE after a message. */
int ctl_path_parse(const char *arg, int min, int max, const char *synopsis, struct ctl_path *p)
{
	memset(p, 0, sizeof(*p));
	p->text = arg;
	p->copy = strdup(arg);
	if (!p->copy) {
		ctl_say("out of memory");
		return EXIT_FAIL;
	}
	char *s = p->copy;
	for (;;) {
		char *slash = strchr(s, '/');
		if (slash)
			*slash = '\0';
		if (p->n == max) {
			ctl_path_free(p);
			return ctl_arg_error(synopsis, "'%s': too many parts (want %s)", arg,
			                     max == 3 ? "CLIENT/DB/STORE"
			                              : "at most CLIENT/DB/STORE");
		}
		if (!*s) {
			ctl_path_free(p);
			return ctl_arg_error(synopsis, "'%s': empty %s name", arg,
			                     level_name[p->n]);
		}
		char *escaped = name_escape(s, strlen(s));
		bool utf8 = escaped != NULL;
		size_t elen = utf8 ? strlen(escaped) : 0;
		free(escaped);
		if (!utf8 || elen > KEY_NAME_MAX) {
			ctl_arg_error(synopsis, "'%s': the %s name %s", arg, level_name[p->n],
			              utf8 ? "is too long (255 bytes escaped at most)"
			                   : "is not valid UTF-8");
			ctl_path_free(p);
			return EXIT_USAGE;
		}
		p->part[p->n++] = s;
		if (!slash)
			break;
		s = slash + 1;
	}
	if (p->n < min) {
		ctl_path_free(p);
		return ctl_arg_error(synopsis, "'%s': want %s", arg,
		                     min == 3 ? "CLIENT/DB/STORE" : "CLIENT[/DB[/STORE]]");
	}
	return 0;
}

struct store_path ctl_path_store(const struct ctl_path *p)
{
	struct store_path sp = {.client = p->part[0], .db = p->part[1], .objstore = p->part[2]};
	return sp;
}

/* Looks the parts of `p` up in the tree as the mount does. *found is how
 * many levels exist (0..n), ino[] their inodes. Returns 0 or -errno for a
 * failure other than a missing level. */
int ctl_path_lookup(struct store *st, const struct ctl_path *p, int *found, uint64_t ino[3])
{
	*found = 0;
	uint64_t parent = STORE_ROOT_INO;
	for (int i = 0; i < p->n; i++) {
		char *fname = name_escape(p->part[i], strlen(p->part[i]));
		if (!fname)
			return -EINVAL;
		struct store_node node;
		int rc = store_lookup(st, parent, fname, &node);
		free(fname);
		if (rc == -ENOENT)
			return 0;
		if (rc)
			return rc;
		ino[i] = parent = node.ino;
		*found = i + 1;
	}
	return 0;
}

/* The message for a path whose level `found` is missing. */
void ctl_path_missing(const char *what, const struct ctl_path *p, int found)
{
	if (found == 0)
		ctl_say("%s: no client named '%s'", what, p->part[0]);
	else if (found == 1)
		ctl_say("%s: client '%s' has no database '%s'", what, p->part[0], p->part[1]);
	else
		ctl_say("%s: database '%s' has no store '%s'", what, p->part[1], p->part[2]);
}

/* Says on stderr what store_put / import made because it was missing. */
void ctl_note_created(const struct ctl_path *p, int found)
{
	if (found >= 3)
		return;
	ctl_say("%s %s/%s/%s did not exist; created it (out-of-line keys, no autoIncrement)",
	        found == 2 ? "store" : "database and store", p->part[0], p->part[1], p->part[2]);
}

/* ---- the store and the mount ---------------------------------------------- */

/* Opens the store of `datadir`, which must already hold one (a mistyped
 * --data makes nothing); NULL after a message. */
struct store *ctl_open_existing(const char *datadir)
{
	char db[PATH_MAX + 16];
	int n = snprintf(db, sizeof(db), "%s/idbmount.db", datadir);
	struct stat sb;
	if (n < 0 || (size_t)n >= sizeof(db)) {
		ctl_say("%s: path too long", datadir);
		return NULL;
	}
	if (stat(db, &sb) != 0) {
		if (errno == ENOENT)
			ctl_say("no idbmount data in %s (no idbmount.db); '" PROG " --data %s "
			        "client add NAME' makes it",
			        datadir, datadir);
		else
			ctl_say("%s: %s", db, strerror(errno));
		return NULL;
	}
	struct store *st = NULL;
	char err[8192];
	int rc = store_open(datadir, &st, err, sizeof(err));
	if (rc) {
		ctl_say("%s", err[0] ? err : strerror(-rc));
		return NULL;
	}
	return st;
}

/* Opens the store; only `client add` (`create`) may make a new one. */
int ctl_open_store(struct ctl *c, bool create)
{
	if (!create) {
		c->st = ctl_open_existing(c->datadir);
		return c->st ? 0 : EXIT_FAIL;
	}
	char err[8192];
	int rc = store_open(c->datadir, &c->st, err, sizeof(err));
	if (rc) {
		ctl_say("%s", err[0] ? err : strerror(-rc));
		return EXIT_FAIL;
	}
	return 0;
}

/* Waits until a daemon serving this data directory has invalidated the
 * kernel's caches up to change `seq` and tree-log entry `tree_id`, so that
 * what was changed shows in the mount. Gives up with a warning once the
 * daemon has made no progress for WAIT_IDLE_MS. */
void ctl_wait_visible(struct store *st, int64_t seq, int64_t tree_id)
{
	if (store_daemon_wait_shown(st, seq, tree_id, WAIT_IDLE_MS, &ctl_interrupted) == -ETIMEDOUT)
		ctl_say("warning: the mount has not caught up after %d s; the change is saved and "
		        "will show there shortly",
		        WAIT_IDLE_MS / 1000);
}

/* The tree-log id to wait for after directories may have been made. */
int64_t ctl_tree_mark(struct store *st)
{
	int64_t id = store_last_tree_id(st);
	return id > 0 ? id : 0;
}

/* Parses a KEY argument. Returns a new reference or NULL after a message. */
json_t *ctl_key_arg(const char *text, const char *synopsis)
{
	char why[200];
	json_t *key = key_from_json_text(text, strlen(text), why, sizeof(why));
	if (!key)
		ctl_arg_error(synopsis,
		              "KEY '%s' is not a key in tagged JSON: %s (a string key is quoted: "
		              "'\"alice\"')",
		              text, why);
	return key;
}
