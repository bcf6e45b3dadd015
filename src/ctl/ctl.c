/* ctl.c - idbmountctl: administration of an idbmount data directory.
 *
 *   idbmountctl [--data DIR] COMMAND ...
 *
 * Design. Every command is one short-lived store connection (store.h) on
 * the same SQLite database the daemon uses; WAL mode lets it run while the
 * daemon serves the mount. This file speaks no SQL. Paths CLIENT/DB/STORE
 * are split on '/' into raw (unescaped) names, so a name holding '/' cannot
 * be named here; the nodes are found with store_lookup on the escaped names,
 * exactly as the mount finds them. Output meant for programs (tokens, keys,
 * records, change lines, "rev N seq S") goes to stdout, everything else to
 * stderr. Exit status: 0 ok, 1 the operation failed (the message says what
 * and why), 2 the command line is wrong (unknown command or option, missing
 * or extra arguments, a malformed path, KEY or JSON argument). A data
 * directory without a database is an error for every command but
 * `client add`, which makes it, so a mistyped --data creates nothing.
 *
 * Visibility. After a change, if a daemon serves this data directory
 * (store_daemon_status), idbmountctl waits until the daemon's notifier has
 * invalidated the kernel's caches up to the change's seq (and tree-log id
 * for created directories), polling every 2 ms. So what idbmountctl changed
 * shows in the mount when it returns, even with cache=always. The wait
 * gives up after 3 s in which the daemon made no progress (a big import is
 * not cut short while the daemon keeps up), with a warning; the exit status
 * is still 0, the change is committed.
 *
 * Import. `import CLIENT/DB/STORE FILE` loads JSON lines, all or nothing:
 *   - {"key":K,"value":V} puts V under K; {"key":K,"op":"delete"} deletes;
 *     the change lines `log` prints (and /v1/pull changes) import too:
 *     a line is read this way when it is an object with "key" and with
 *     "value" or "op", and no members but seq, ts, node, client, db, store,
 *     key, op, rev, origin and value (all but key, op and value are
 *     ignored: the target is the one on the command line);
 *   - any other line, when the store has an inline keyPath, is a record
 *     whose key is at the keyPath (records coming back from a Hadoop job).
 *     A record whose own members look like the above (keyPath "key" and
 *     only key and value members) is read as {"key":K,"value":V}; wrap it;
 *   - blank lines are skipped, a UTF-8 BOM and "\r\n" endings are accepted;
 *     lines apply in file order, so a later line for a key wins.
 * Pass 1 reads every line and checks it as the store would (json_text_parse,
 * the key, the keyPath agreement and the 16 MiB record cap, through
 * store_check_put; lines over 16 MiB are errors). If any line is bad it
 * prints "FILE:LINE: reason" for the first 20 and how many more, imports
 * nothing and exits 1: after fixing the file a rerun is simple and nothing
 * is half-applied. Pass 2 applies the lines in transactions of 1000
 * (origin import, database and store made when missing, out-of-line), so
 * the daemon and browsers are never locked out for long. Should pass 2
 * still fail (disk full, the store changed meanwhile, ctl_interrupted), the
 * batches committed so far stay and the message says up to which line;
 * importing the same file again is then safe, as puts of the same values
 * and deletes repeat harmlessly. Standard input ('-') and other files that
 * cannot be read twice (pipes, <(zcat x.gz)) are first copied to an
 * unlinked temp file in $TMPDIR. On a terminal both passes draw a progress
 * bar on stderr (bytes, lines, rate; at most 10 redraws a second).
 */
#include "ctl_backup.h"
#include "ctl_sinks.h"

#include "idbmount/util/buf.h"
#include "idbmount/codec/changeline.h"
#include "idbmount/util/clock.h"
#include "idbmount/util/datadir.h"
#include "idbmount/codec/import_line.h"
#include "idbmount/codec/json_text.h"
#include "idbmount/codec/key.h"
#include "idbmount/store/store.h"
#include "idbmount/store/store_sync.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROG "idbmountctl"

enum exit_code {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
};

#define LINE_MAX_BYTES (16u * 1024 * 1024)
#define READ_BLOCK     (256u * 1024)
#define BATCH_LINES    1000
#define MAX_REPORTED   20
#define WAIT_IDLE_MS   3000
#define PROGRESS_MS    100
#define LOG_PAGE       1000
/* A change line holds a value of up to 2 x 16 MiB compact JSON (the
 * store's cap on the change log's form) plus its fields. */
#define LOG_LINE_MAX (40u * 1024 * 1024)

struct ctl {
	char datadir[PATH_MAX];
	struct store *st;
};

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
__attribute__((format(printf, 1, 0))) static void say_prefixed(const char *fmt, va_list ap)
{
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
}

void ctl_say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say_prefixed(fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Reports a failed store call: "idbmountctl: <what>: <reason>". */
static int store_fail(struct store *st, int rc, const char *what)
{
	const char *why = st ? store_last_error(st) : "";
	ctl_say("%s: %s", what, *why ? why : strerror(rc < 0 ? -rc : rc));
	return EXIT_FAIL;
}

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: " PROG " [--data DIR] COMMAND ...\n"
	        "\n"
	        "Administers an idbmount data directory, also while the daemon runs.\n"
	        "\n"
	        "commands:\n"
	        "  client add NAME                 create a client and print its token\n"
	        "  client list                     list clients, one per line\n"
	        "  pipeline add NAME               create a pipeline token (reads /v1/changes\n"
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
	        "%s%s"
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
	        "exit status: 0 ok, 1 the operation failed, 2 usage error\n",
	        ctl_sinks_usage, ctl_backup_usage);
}

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say_prefixed(fmt, ap);
	fputs("\n\n", stderr);
	va_end(ap);
	usage(stderr);
	return EXIT_USAGE;
}

/* A wrong argument of a known command: the message and its synopsis. */
__attribute__((format(printf, 2, 3))) static int arg_error(const char *synopsis, const char *fmt,
                                                           ...)
{
	va_list ap;
	va_start(ap, fmt);
	say_prefixed(fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	fprintf(stderr, "usage: " PROG " [--data DIR] %s\n", synopsis);
	return EXIT_USAGE;
}

/* Flushes stdout; a failed write is a failed command. */
static int finish_stdout(int status)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		ctl_say("writing to standard output: %s", strerror(errno));
		return EXIT_FAIL;
	}
	return status;
}

/* ---- small helpers ------------------------------------------------------- */

/* Parses a decimal integer >= 0 (digits only). */
static bool parse_count(const char *text, int64_t *out)
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
static int take_option(int argc, char **argv, int *i, const char *name, const char **value,
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
		arg_error(synopsis, "%s needs a value", name);
		return -1;
	}
	*value = argv[++*i];
	return 1;
}

static bool is_help(const char *a)
{
	return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

/* ---- paths --------------------------------------------------------------- */

static const char *const level_name[3] = {"client", "database", "store"};

/* CLIENT[/DB[/STORE]] split into raw names. */
struct path {
	char *copy;
	const char *part[3];
	int n;
	const char *text; /* as given, for messages */
};

static void path_free(struct path *p)
{
	free(p->copy);
	p->copy = NULL;
}

/* Splits `arg` into `min`..`max` non-empty parts, each a valid name.
 * Returns 0, or EXIT_USAGE after a message. */
static int path_parse(const char *arg, int min, int max, const char *synopsis, struct path *p)
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
			path_free(p);
			return arg_error(synopsis, "'%s': too many parts (want %s)", arg,
			                 max == 3 ? "CLIENT/DB/STORE" : "at most CLIENT/DB/STORE");
		}
		if (!*s) {
			path_free(p);
			return arg_error(synopsis, "'%s': empty %s name", arg, level_name[p->n]);
		}
		char *escaped = name_escape(s, strlen(s));
		bool utf8 = escaped != NULL;
		size_t elen = utf8 ? strlen(escaped) : 0;
		free(escaped);
		if (!utf8 || elen > KEY_NAME_MAX) {
			arg_error(synopsis, "'%s': the %s name %s", arg, level_name[p->n],
			          utf8 ? "is too long (255 bytes escaped at most)"
			               : "is not valid UTF-8");
			path_free(p);
			return EXIT_USAGE;
		}
		p->part[p->n++] = s;
		if (!slash)
			break;
		s = slash + 1;
	}
	if (p->n < min) {
		path_free(p);
		return arg_error(synopsis, "'%s': want %s", arg,
		                 min == 3 ? "CLIENT/DB/STORE" : "CLIENT[/DB[/STORE]]");
	}
	return 0;
}

static struct store_path path_store(const struct path *p)
{
	struct store_path sp = {.client = p->part[0], .db = p->part[1], .objstore = p->part[2]};
	return sp;
}

/* Looks the parts of `p` up in the tree as the mount does. *found is how
 * many levels exist (0..n), ino[] their inodes. Returns 0 or -errno for a
 * failure other than a missing level. */
static int path_lookup(struct store *st, const struct path *p, int *found, uint64_t ino[3])
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
static void path_missing(const char *what, const struct path *p, int found)
{
	if (found == 0)
		ctl_say("%s: no client named '%s'", what, p->part[0]);
	else if (found == 1)
		ctl_say("%s: client '%s' has no database '%s'", what, p->part[0], p->part[1]);
	else
		ctl_say("%s: database '%s' has no store '%s'", what, p->part[1], p->part[2]);
}

/* Says on stderr what store_put / import made because it was missing. */
static void note_created(const struct path *p, int found)
{
	if (found >= 3)
		return;
	ctl_say("%s %s/%s/%s did not exist; created it (out-of-line keys, no autoIncrement)",
	        found == 2 ? "store" : "database and store", p->part[0], p->part[1], p->part[2]);
}

/* ---- the store and the mount ---------------------------------------------- */

/* Opens the store; only `client add` (`create`) may make a new one. */
static int open_store(struct ctl *c, bool create)
{
	if (!create) {
		char db[PATH_MAX + 16];
		int n = snprintf(db, sizeof(db), "%s/idbmount.db", c->datadir);
		struct stat sb;
		if (n < 0 || (size_t)n >= sizeof(db)) {
			ctl_say("%s: path too long", c->datadir);
			return EXIT_FAIL;
		}
		if (stat(db, &sb) != 0) {
			if (errno == ENOENT)
				ctl_say("no idbmount data in %s (no idbmount.db); '" PROG
				        " --data %s "
				        "client add NAME' makes it",
				        c->datadir, c->datadir);
			else
				ctl_say("%s: %s", db, strerror(errno));
			return EXIT_FAIL;
		}
	}
	char err[512];
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
static void wait_visible(struct store *st, int64_t seq, int64_t tree_id)
{
	if (store_daemon_wait_shown(st, seq, tree_id, WAIT_IDLE_MS, &ctl_interrupted) == -ETIMEDOUT)
		ctl_say("warning: the mount has not caught up after %d s; the change is saved and "
		        "will show there shortly",
		        WAIT_IDLE_MS / 1000);
}

/* The tree-log id to wait for after directories may have been made. */
static int64_t tree_mark(struct store *st)
{
	int64_t id = store_last_tree_id(st);
	return id > 0 ? id : 0;
}

/* Parses a KEY argument. Returns a new reference or NULL after a message. */
static json_t *key_arg(const char *text, const char *synopsis)
{
	char why[200];
	json_t *key = key_from_json_text(text, strlen(text), why, sizeof(why));
	if (!key)
		arg_error(synopsis,
		          "KEY '%s' is not a key in tagged JSON: %s (a string key is quoted: "
		          "'\"alice\"')",
		          text, why);
	return key;
}

/* ---- client -------------------------------------------------------------- */

#define SYN_CLIENT_ADD  "client add NAME"
#define SYN_CLIENT_LIST "client list"

static int print_name(void *ctx, const char *name)
{
	(void)ctx;
	puts(name);
	return ferror(stdout) ? 1 : 0;
}

/* Prints the names `list` gives (clients or pipelines), one a line. */
static int list_names(struct ctl *c, int (*list)(struct store *, store_name_fn, void *),
                      const char *what)
{
	int rc = open_store(c, false);
	if (rc)
		return rc;
	rc = list(c->st, print_name, NULL);
	return rc ? store_fail(c->st, rc, what) : finish_stdout(EXIT_OK);
}

/* Makes a client or pipeline with `add` and prints its token, which is
 * shown this once (only its hash is kept). A client is a directory of the
 * mount (`in_mount`): it is waited for there, whether or not the token
 * could be printed. */
static int add_with_token(struct ctl *c, int (*add)(struct store *, const char *, char[65]),
                          const char *name, const char *what, bool in_mount)
{
	int rc = open_store(c, true);
	if (rc)
		return rc;
	char token[65];
	rc = add(c->st, name, token);
	if (rc)
		return store_fail(c->st, rc, what);
	printf("%s\n", token);
	int status = finish_stdout(EXIT_OK);
	if (in_mount)
		wait_visible(c->st, 0, tree_mark(c->st));
	return status;
}

static int cmd_client(struct ctl *c, int argc, char **argv)
{
	if (argc < 1)
		return usage_error("client: want 'client add NAME' or 'client list'");
	const char *sub = argv[0];
	if (strcmp(sub, "add") == 0) {
		if (argc != 2)
			return arg_error(SYN_CLIENT_ADD, "client add: want exactly one NAME");
		const char *name = argv[1];
		/* The name is not echoed: it may be what is wrong with it. */
		const char *why = store_client_name_problem(name);
		if (why)
			return arg_error(SYN_CLIENT_ADD, "client add: not a client name: %s", why);
		return add_with_token(c, store_client_add, name, "client add", true);
	}
	if (strcmp(sub, "list") == 0) {
		if (argc != 1)
			return arg_error(SYN_CLIENT_LIST, "client list takes no arguments");
		return list_names(c, store_client_list, "client list");
	}
	return usage_error("client: unknown subcommand '%s'", sub);
}

/* ---- pipeline ------------------------------------------------------------ */

#define SYN_PIPELINE_ADD  "pipeline add NAME"
#define SYN_PIPELINE_LIST "pipeline list"

/* A pipeline token reads the whole change log through /v1/changes and
 * nothing else; like a client token, it is printed once and only its hash
 * is kept. */
static int cmd_pipeline(struct ctl *c, int argc, char **argv)
{
	if (argc < 1)
		return usage_error("pipeline: want 'pipeline add NAME' or 'pipeline list'");
	const char *sub = argv[0];
	if (strcmp(sub, "add") == 0) {
		if (argc != 2)
			return arg_error(SYN_PIPELINE_ADD, "pipeline add: want exactly one NAME");
		const char *why = store_pipeline_name_problem(argv[1]);
		if (why)
			return arg_error(SYN_PIPELINE_ADD, "pipeline add: not a pipeline name: %s",
			                 why);
		return add_with_token(c, store_pipeline_add, argv[1], "pipeline add", false);
	}
	if (strcmp(sub, "list") == 0) {
		if (argc != 1)
			return arg_error(SYN_PIPELINE_LIST, "pipeline list takes no arguments");
		return list_names(c, store_pipeline_list, "pipeline list");
	}
	return usage_error("pipeline: unknown subcommand '%s'", sub);
}

/* ---- mkstore ------------------------------------------------------------- */

#define SYN_MKSTORE "mkstore CLIENT/DB/STORE [--keypath JSON] [--autoincrement]"

static int cmd_mkstore(struct ctl *c, int argc, char **argv)
{
	const char *target = NULL, *keypath_text = "null";
	bool autoincrement = false;
	for (int i = 0; i < argc; i++) {
		const char *value = NULL;
		int m = take_option(argc, argv, &i, "--keypath", &value, SYN_MKSTORE);
		if (m < 0)
			return EXIT_USAGE;
		if (m > 0) {
			keypath_text = value;
		} else if (strcmp(argv[i], "--autoincrement") == 0) {
			autoincrement = true;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return arg_error(SYN_MKSTORE, "mkstore: unknown option '%s'", argv[i]);
		} else if (!target) {
			target = argv[i];
		} else {
			return arg_error(SYN_MKSTORE, "mkstore: unexpected argument '%s'", argv[i]);
		}
	}
	if (!target)
		return arg_error(SYN_MKSTORE, "mkstore: want CLIENT/DB/STORE");
	char why[200];
	json_t *kp = json_text_parse(keypath_text, strlen(keypath_text), why, sizeof(why));
	if (!kp)
		return arg_error(SYN_MKSTORE,
		                 "--keypath '%s' is not JSON (%s); a key path is quoted: "
		                 "--keypath '\"id\"'",
		                 keypath_text, why);
	const char *problem = store_keypath_problem(kp, autoincrement);
	struct buf compact;
	buf_init(&compact, 64 * 1024);
	int rc = problem ? 0 : json_text_compact(&compact, kp);
	json_decref(kp);
	if (problem || rc) {
		buf_free(&compact);
		return arg_error(SYN_MKSTORE, "--keypath %s: %s", keypath_text,
		                 problem ? problem : "too long");
	}
	struct path p;
	rc = path_parse(target, 3, 3, SYN_MKSTORE, &p);
	if (rc) {
		buf_free(&compact);
		return rc;
	}
	int status = open_store(c, false);
	if (!status) {
		struct store_path sp = path_store(&p);
		rc = store_make_objstore(c->st, &sp, compact.data, autoincrement);
		if (rc) {
			char what[64 + PATH_MAX];
			snprintf(what, sizeof(what), "mkstore %s", p.text);
			status = store_fail(c->st, rc, what);
		} else {
			wait_visible(c->st, 0, tree_mark(c->st));
		}
	}
	buf_free(&compact);
	path_free(&p);
	return status;
}

/* ---- put, get, rm -------------------------------------------------------- */

#define SYN_PUT "put CLIENT/DB/STORE KEY JSON"
#define SYN_GET "get CLIENT/DB/STORE KEY"
#define SYN_RM  "rm CLIENT/DB/STORE KEY"

/* "put a/b/c 5" for messages (the key as given). */
static void what_of(char *out, size_t outlen, const char *cmd, const struct path *p,
                    const char *key)
{
	snprintf(out, outlen, "%s %s %s", cmd, p->text, key);
}

static int cmd_put(struct ctl *c, int argc, char **argv)
{
	if (argc != 3)
		return arg_error(SYN_PUT, "put: want CLIENT/DB/STORE, KEY and JSON");
	struct path p;
	int status = path_parse(argv[0], 3, 3, SYN_PUT, &p);
	if (status)
		return status;
	json_t *key = key_arg(argv[1], SYN_PUT);
	char why[200];
	json_t *value = key ? json_text_parse(argv[2], strlen(argv[2]), why, sizeof(why)) : NULL;
	if (!key) {
		status = EXIT_USAGE;
	} else if (!value) {
		status = arg_error(SYN_PUT, "put: the value is not JSON: %s", why);
	} else {
		status = open_store(c, false);
	}
	int found = 0;
	uint64_t ino[3];
	char what[256];
	what_of(what, sizeof(what), "put", &p, argv[1]);
	if (!status) {
		int rc = path_lookup(c->st, &p, &found, ino);
		if (rc)
			status = store_fail(c->st, rc, what);
		else if (found == 0)
			status = EXIT_FAIL;
		if (found == 0)
			path_missing(what, &p, found);
	}
	if (!status) {
		struct store_path sp = path_store(&p);
		int64_t rev = 0, seq = 0;
		int rc = store_put(c->st, &sp, key, value, ORIGIN_IMPORT, true, &rev, &seq);
		if (rc) {
			status = store_fail(c->st, rc, what);
		} else {
			note_created(&p, found);
			printf("rev %lld seq %lld\n", (long long)rev, (long long)seq);
			status = finish_stdout(EXIT_OK);
			wait_visible(c->st, seq, found < 3 ? tree_mark(c->st) : 0);
		}
	}
	json_decref(key);
	json_decref(value);
	path_free(&p);
	return status;
}

/* The CLIENT/DB/STORE and KEY arguments of get and rm, with the store
 * opened for them. Returns 0, or the exit status after a message with
 * nothing left to free. */
static int record_args(struct ctl *c, char **argv, const char *synopsis, struct path *p,
                       json_t **key)
{
	int status = path_parse(argv[0], 3, 3, synopsis, p);
	if (status)
		return status;
	*key = key_arg(argv[1], synopsis);
	status = *key ? open_store(c, false) : EXIT_USAGE;
	if (status) {
		json_decref(*key);
		path_free(p);
	}
	return status;
}

static int cmd_get(struct ctl *c, int argc, char **argv)
{
	if (argc != 2)
		return arg_error(SYN_GET, "get: want CLIENT/DB/STORE and KEY");
	struct path p;
	json_t *key = NULL;
	int status = record_args(c, argv, SYN_GET, &p, &key);
	if (status)
		return status;
	struct store_path sp = path_store(&p);
	char *data = NULL;
	size_t len = 0;
	int64_t rev = 0;
	char what[256];
	what_of(what, sizeof(what), "get", &p, argv[1]);
	int rc = store_get(c->st, &sp, key, &data, &len, &rev);
	if (rc == -ENOENT && !*store_last_error(c->st)) {
		ctl_say("%s: no such record", what);
		status = EXIT_FAIL;
	} else if (rc) {
		status = store_fail(c->st, rc, what);
	} else {
		fwrite(data, 1, len, stdout);
		status = finish_stdout(EXIT_OK);
	}
	free(data);
	json_decref(key);
	path_free(&p);
	return status;
}

static int cmd_rm(struct ctl *c, int argc, char **argv)
{
	if (argc != 2)
		return arg_error(SYN_RM, "rm: want CLIENT/DB/STORE and KEY");
	struct path p;
	json_t *key = NULL;
	int status = record_args(c, argv, SYN_RM, &p, &key);
	if (status)
		return status;
	struct store_path sp = path_store(&p);
	int64_t seq = 0;
	char what[256];
	what_of(what, sizeof(what), "rm", &p, argv[1]);
	int rc = store_delete(c->st, &sp, key, ORIGIN_IMPORT, &seq);
	if (rc) {
		status = store_fail(c->st, rc, what);
	} else if (seq == 0) {
		ctl_say("%s: no such record", what);
		status = EXIT_FAIL;
	} else {
		wait_visible(c->st, seq, 0);
	}
	json_decref(key);
	path_free(&p);
	return status;
}

/* ---- ls ------------------------------------------------------------------ */

#define SYN_LS "ls [CLIENT[/DB[/STORE]]]"

/* Prints a directory entry by its raw name. */
static int print_dir_entry(void *ctx, const char *fname, const struct store_node *node,
                           int64_t cursor)
{
	(void)ctx;
	(void)node;
	(void)cursor;
	size_t len = 0;
	char *raw = name_unescape(fname, &len);
	if (raw)
		fwrite(raw, 1, len, stdout);
	else
		fputs(fname, stdout);
	fputc('\n', stdout);
	free(raw);
	return ferror(stdout) ? 1 : 0;
}

static int print_key(void *ctx, const char *key, int64_t cursor)
{
	(void)ctx;
	(void)cursor;
	puts(key);
	return ferror(stdout) ? 1 : 0;
}

static int cmd_ls(struct ctl *c, int argc, char **argv)
{
	if (argc > 1)
		return arg_error(SYN_LS, "ls: want at most one CLIENT[/DB[/STORE]]");
	if (argc == 0)
		return list_names(c, store_client_list, "ls");
	struct path p;
	int status = path_parse(argv[0], 1, 3, SYN_LS, &p);
	if (status)
		return status;
	status = open_store(c, false);
	char what[64 + PATH_MAX];
	snprintf(what, sizeof(what), "ls %s", p.text);
	int found = 0;
	uint64_t ino[3];
	if (!status) {
		int rc = path_lookup(c->st, &p, &found, ino);
		if (rc) {
			status = store_fail(c->st, rc, what);
		} else if (found < p.n) {
			path_missing(what, &p, found);
			status = EXIT_FAIL;
		}
	}
	if (!status) {
		int rc;
		if (p.n == 3) {
			struct store_path sp = path_store(&p);
			rc = store_list_keys(c->st, &sp, 0, print_key, NULL);
		} else {
			rc = store_readdir(c->st, ino[p.n - 1], 0, print_dir_entry, NULL);
		}
		status = rc ? store_fail(c->st, rc, what) : finish_stdout(EXIT_OK);
	}
	path_free(&p);
	return status;
}

/* ---- log ----------------------------------------------------------------- */

#define SYN_LOG "log [--since SEQ] [--limit N]"

struct log_ctx {
	struct buf line;
	const char *node;
	int64_t last_seq;
	int error; /* -errno of a failed render, or 1 for a failed write */
};

static int log_line(void *ctx, const struct store_change *change)
{
	struct log_ctx *l = ctx;
	buf_reset(&l->line);
	int rc = changeline_render(&l->line, change, l->node);
	if (rc) {
		l->error = rc;
		return 1;
	}
	l->last_seq = change->seq;
	if (fwrite(l->line.data, 1, l->line.len, stdout) != l->line.len) {
		l->error = 1;
		return 1;
	}
	return 0;
}

static int cmd_log(struct ctl *c, int argc, char **argv)
{
	int64_t since = 0, limit = INT64_MAX;
	for (int i = 0; i < argc; i++) {
		const char *value = NULL;
		int m = take_option(argc, argv, &i, "--since", &value, SYN_LOG);
		if (m < 0)
			return EXIT_USAGE;
		if (m > 0) {
			if (!parse_count(value, &since))
				return arg_error(SYN_LOG,
				                 "--since wants a seq (0 or more), not '%s'",
				                 value);
			continue;
		}
		m = take_option(argc, argv, &i, "--limit", &value, SYN_LOG);
		if (m < 0)
			return EXIT_USAGE;
		if (m > 0) {
			if (!parse_count(value, &limit))
				return arg_error(SYN_LOG, "--limit wants a count, not '%s'", value);
			continue;
		}
		return arg_error(SYN_LOG, "log: unexpected argument '%s'", argv[i]);
	}
	int status = open_store(c, false);
	if (status)
		return status;
	char node[256];
	datadir_node_name(node, sizeof(node));
	struct log_ctx l = {.node = node, .last_seq = since};
	buf_init(&l.line, LOG_LINE_MAX);
	while (limit > 0 && !status) {
		int64_t page = limit < LOG_PAGE ? limit : LOG_PAGE;
		int64_t got = store_changes_since(c->st, l.last_seq, page, 0, log_line, &l);
		if (l.error == 1) {
			status = finish_stdout(EXIT_FAIL);
		} else if (l.error) {
			ctl_say("log: cannot render change %lld: %s", (long long)l.last_seq + 1,
			        strerror(-l.error));
			status = EXIT_FAIL;
		} else if (got < 0) {
			status = store_fail(c->st, (int)got, "log");
		} else if (got < page) {
			break;
		}
		limit -= page;
	}
	buf_free(&l.line);
	return status ? status : finish_stdout(EXIT_OK);
}

/* ---- import: reading lines -------------------------------------------------- */

#define SYN_IMPORT "import CLIENT/DB/STORE FILE|-"

/* Reads lines from a file descriptor, block by block. */
struct reader {
	int fd;
	char *block;
	size_t pos, end;
	bool eof;
	uint64_t offset; /* bytes consumed */
};

/* Reads the next line into `line` (without "\n" and a trailing "\r").
 * Returns 1 for a line, 0 at the end, -errno on a read error. A line over
 * LINE_MAX_BYTES is consumed whole and reported with *too_long. */
static int reader_next(struct reader *r, struct buf *line, bool *too_long)
{
	buf_reset(line);
	*too_long = false;
	bool any = false;
	for (;;) {
		if (r->pos == r->end) {
			if (r->eof)
				break;
			ssize_t n = read(r->fd, r->block, READ_BLOCK);
			if (n < 0) {
				if (errno == EINTR && !ctl_interrupted)
					continue;
				return -errno;
			}
			r->pos = 0;
			r->end = (size_t)n;
			r->eof = n == 0;
			continue;
		}
		any = true;
		char *start = r->block + r->pos;
		char *nl = memchr(start, '\n', r->end - r->pos);
		size_t chunk = nl ? (size_t)(nl - start) : r->end - r->pos;
		if (!*too_long && buf_append(line, start, chunk) != 0)
			*too_long = true;
		r->pos += chunk + (nl ? 1 : 0);
		r->offset += chunk + (nl ? 1 : 0);
		if (nl)
			break;
	}
	if (!any)
		return 0;
	if (!*too_long && line->len && line->data[line->len - 1] == '\r')
		buf_set_len(line, line->len - 1);
	if (line->len > LINE_MAX_BYTES)
		*too_long = true;
	return 1;
}

static int reader_rewind(struct reader *r)
{
	if (lseek(r->fd, 0, SEEK_SET) < 0)
		return -errno;
	r->pos = r->end = 0;
	r->eof = false;
	r->offset = 0;
	return 0;
}

/* Copies `in` to an unlinked temp file in $TMPDIR; *out is its fd. */
static int spool_to_temp(int in, const char *label, int *out)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	char tmpl[PATH_MAX];
	if (snprintf(tmpl, sizeof(tmpl), "%s/idbmountctl-import-XXXXXX", dir) >=
	    (int)sizeof(tmpl)) {
		ctl_say("import: $TMPDIR is too long");
		return EXIT_FAIL;
	}
	int fd = mkstemp(tmpl);
	if (fd < 0) {
		ctl_say("import: cannot make a temp file in %s to buffer %s: %s", dir, label,
		        strerror(errno));
		return EXIT_FAIL;
	}
	unlink(tmpl);
	char *block = malloc(READ_BLOCK);
	if (!block) {
		close(fd);
		ctl_say("out of memory");
		return EXIT_FAIL;
	}
	int status = EXIT_OK;
	for (;;) {
		ssize_t n = read(in, block, READ_BLOCK);
		if (n < 0 && errno == EINTR && !ctl_interrupted)
			continue;
		if (n < 0) {
			ctl_say("import: cannot read %s: %s", label,
			        ctl_interrupted ? "ctl_interrupted" : strerror(errno));
			status = EXIT_FAIL;
			break;
		}
		if (n == 0)
			break;
		for (ssize_t done = 0; done < n;) {
			ssize_t w = write(fd, block + done, (size_t)(n - done));
			if (w < 0 && errno == EINTR && !ctl_interrupted)
				continue;
			if (w < 0) {
				ctl_say("import: cannot buffer %s in %s: %s", label, dir,
				        strerror(errno));
				status = EXIT_FAIL;
				break;
			}
			done += w;
		}
		if (status)
			break;
	}
	free(block);
	if (status) {
		close(fd);
		return status;
	}
	*out = fd;
	return EXIT_OK;
}

/* ---- import: the progress bar ----------------------------------------------- */

struct progress {
	bool on;
	const char *label;
	uint64_t total;
	int64_t start_ms, last_ms;
	int tier;  /* how much the text after the bar says (see progress_tail) */
	int width; /* of the bar; 0 for none */
};

static void human_bytes(uint64_t n, char *out, size_t outlen)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
	if (n < 1024) {
		snprintf(out, outlen, "%llu B", (unsigned long long)n);
		return;
	}
	double v = (double)n / 1024;
	int u = 0;
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(out, outlen, "%.1f %s", v, unit[u]);
}

static void human_rate(double per_sec, char *out, size_t outlen)
{
	if (per_sec >= 1e6)
		snprintf(out, outlen, "%.1fM", per_sec / 1e6);
	else if (per_sec >= 1e3)
		snprintf(out, outlen, "%.1fk", per_sec / 1e3);
	else
		snprintf(out, outlen, "%.0f", per_sec);
}

static int terminal_columns(void)
{
	struct winsize ws;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

/* The text after the bar: tier 0 with the byte rate, 1 without, 2 short. */
static int progress_tail(const struct progress *p, int tier, uint64_t done, uint64_t lines,
                         double secs, char *out, size_t outlen)
{
	int pct = p->total ? (int)(done * 100 / p->total) : 100;
	char sdone[32], stotal[32], lrate[32], brate[32];
	human_bytes(done, sdone, sizeof(sdone));
	human_bytes(p->total, stotal, sizeof(stotal));
	human_rate((double)lines / secs, lrate, sizeof(lrate));
	human_bytes((uint64_t)((double)done / secs), brate, sizeof(brate));
	unsigned long long n = lines;
	if (tier == 0)
		return snprintf(out, outlen, " %3d%% %s / %s  %llu lines  %s lines/s  %s/s", pct,
		                sdone, stotal, n, lrate, brate);
	if (tier == 1)
		return snprintf(out, outlen, " %3d%% %s / %s  %llu lines  %s lines/s", pct, sdone,
		                stotal, n, lrate);
	return snprintf(out, outlen, " %3d%% %llu lines", pct, n);
}

/* Starts a bar on stderr if it is a terminal. The layout is chosen once,
 * for the widest text the import can show, so the bar does not jitter. */
static void progress_start(struct progress *p, const char *label, uint64_t total)
{
	p->on = isatty(STDERR_FILENO) == 1;
	p->label = label;
	p->total = total;
	p->start_ms = clock_mono_ms();
	p->last_ms = p->start_ms; /* the first draw after PROGRESS_MS */
	int cols = terminal_columns() - 1;
	int fixed = (int)strlen(label) + 3; /* label, " [", "]" */
	char tail[200];
	for (p->tier = 0; p->tier < 3; p->tier++) {
		/* Widest: 7-digit line counts, 3-digit rates (0.001 s). */
		int len = progress_tail(p, p->tier, total ? total : 1023, 9999999, 0.01, tail,
		                        sizeof(tail));
		p->width = cols - fixed - len;
		if (p->width >= 10 || p->tier == 2)
			break;
	}
	if (p->width > 40)
		p->width = 40;
	if (p->width < 5)
		p->width = 0;
}

/* Redraws the bar, at most every PROGRESS_MS unless `force`. */
static void progress_draw(struct progress *p, uint64_t done, uint64_t lines, bool force)
{
	if (!p->on)
		return;
	int64_t now = clock_mono_ms();
	if (!force && now - p->last_ms < PROGRESS_MS)
		return;
	p->last_ms = now;
	double secs = (double)(now - p->start_ms) / 1000;
	char tail[200], bar[64];
	progress_tail(p, p->tier, done, lines, secs < 0.001 ? 0.001 : secs, tail, sizeof(tail));
	if (p->width) {
		int filled =
		        p->total ? (int)((double)done / (double)p->total * p->width) : p->width;
		for (int i = 0; i < p->width; i++)
			bar[i] = i < filled ? '#' : '.';
		bar[p->width] = '\0';
		fprintf(stderr, "\r%s [%s]%s\033[K", p->label, bar, tail);
	} else {
		fprintf(stderr, "\r%s%s\033[K", p->label, tail);
	}
	fflush(stderr);
}

static void progress_end(struct progress *p, uint64_t done, uint64_t lines)
{
	if (!p->on)
		return;
	progress_draw(p, done, lines, true);
	fputc('\n', stderr);
}

/* ---- import: the two passes ------------------------------------------------- */

struct import {
	struct store *st;
	struct path path;
	struct store_path sp;
	const char *label; /* FILE, or "<stdin>" */
	int fd;
	struct stat sb; /* of fd when pass 1 began */
	bool inline_keys;
	int found; /* levels of the path that existed */
	struct reader rd;
	struct buf line;
	/* pass 2 */
	uint64_t puts, deletes, absent;
	int64_t last_seq;
};

/* The text of line `lineno`, just read. Both passes take lines through
 * here and import_line_is_blank, so that pass 2 applies exactly the lines
 * pass 1 checked. */
static const char *line_text(const struct import *im, uint64_t lineno, size_t *len)
{
	*len = im->line.len;
	return import_line_text(im->line.data ? im->line.data : "", len, lineno);
}

/* Pass 1: checks every line; reports the bad ones. The checks run in
 * read batches of BATCH_LINES, as SQLite would otherwise take and drop
 * its locks for every statement. */
static int import_check(struct import *im)
{
	struct progress bar;
	progress_start(&bar, "checking ", (uint64_t)im->sb.st_size);
	uint64_t lineno = 0, bad = 0;
	char why[400];
	int rc, trc = 0, in_batch = 0;
	bool too_long;
	while ((rc = reader_next(&im->rd, &im->line, &too_long)) > 0 && !ctl_interrupted) {
		lineno++;
		progress_draw(&bar, im->rd.offset, lineno, false);
		size_t len;
		const char *text = line_text(im, lineno, &len);
		why[0] = '\0';
		if (too_long) {
			snprintf(why, sizeof(why), "line is longer than 16 MiB (%u bytes)",
			         LINE_MAX_BYTES);
		} else if (import_line_is_blank(text, len)) {
			continue;
		} else {
			if (in_batch == 0 && (trc = store_begin(im->st)) != 0)
				break;
			import_line_check(im->st, &im->sp, im->inline_keys, text, len, why,
			                  sizeof(why));
			if (++in_batch == BATCH_LINES) {
				in_batch = 0;
				if ((trc = store_commit(im->st)) != 0)
					break;
			}
		}
		if (why[0] && ++bad <= MAX_REPORTED) {
			if (bar.on)
				fputs("\r\033[K", stderr);
			fprintf(stderr, "%s:%llu: %s\n", im->label, (unsigned long long)lineno,
			        why);
		}
	}
	if (in_batch > 0 && !trc)
		trc = store_commit(im->st);
	progress_end(&bar, im->rd.offset, lineno);
	if (trc) {
		store_rollback(im->st);
		store_fail(im->st, trc, "import: checking");
		return EXIT_FAIL;
	}
	if (ctl_interrupted) {
		ctl_say("import: ctl_interrupted; nothing was imported");
		return EXIT_FAIL;
	}
	if (rc < 0) {
		ctl_say("import: cannot read %s: %s", im->label, strerror(-rc));
		return EXIT_FAIL;
	}
	if (bad > MAX_REPORTED)
		fprintf(stderr, "... and %llu more\n", (unsigned long long)(bad - MAX_REPORTED));
	if (bad) {
		ctl_say("import: %llu bad line%s in %s; nothing was imported",
		        (unsigned long long)bad, bad == 1 ? "" : "s", im->label);
		return EXIT_FAIL;
	}
	struct stat now;
	if (fstat(im->fd, &now) == 0 &&
	    (now.st_size != im->sb.st_size || now.st_mtim.tv_sec != im->sb.st_mtim.tv_sec ||
	     now.st_mtim.tv_nsec != im->sb.st_mtim.tv_nsec)) {
		ctl_say("import: %s changed while it was being checked; nothing was imported",
		        im->label);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* Applies one checked line. Returns 0 or a negative errno. */
static int apply_line(struct import *im, const struct import_line *l)
{
	int64_t seq = 0, rev = 0;
	if (l->del) {
		int rc = store_delete(im->st, &im->sp, l->key, ORIGIN_IMPORT, &seq);
		if (rc == -ENOENT) /* no such store yet: nothing to delete */
			rc = 0;
		if (rc)
			return rc;
		if (seq)
			im->deletes++;
		else
			im->absent++;
	} else {
		json_t *extracted = NULL;
		const json_t *key = l->key;
		if (!key) {
			int rc = store_check_put(im->st, &im->sp, NULL, l->value, &extracted);
			if (rc)
				return rc;
			key = extracted;
		}
		int rc = store_put(im->st, &im->sp, key, l->value, ORIGIN_IMPORT, true, &rev, &seq);
		json_decref(extracted);
		if (rc)
			return rc;
		im->puts++;
	}
	if (seq > im->last_seq)
		im->last_seq = seq;
	return 0;
}

/* How far pass 2 got in committed batches: what a failure reports. */
struct import_mark {
	uint64_t line, puts, deletes;
	int64_t seq;
};

/* Commits pass 2's open batch, which ends at line `lineno`, and moves
 * `done` up to it. Returns 0 or -errno. */
static int commit_batch(struct import *im, uint64_t lineno, struct import_mark *done)
{
	int rc = store_commit(im->st);
	if (rc == 0)
		*done = (struct import_mark){lineno, im->puts, im->deletes, im->last_seq};
	return rc;
}

/* Pass 2: applies the lines in transactions of BATCH_LINES. */
static int import_apply(struct import *im)
{
	int rc = reader_rewind(&im->rd);
	if (rc) {
		ctl_say("import: cannot reread %s: %s", im->label, strerror(-rc));
		return EXIT_FAIL;
	}
	struct progress bar;
	progress_start(&bar, "importing", (uint64_t)im->sb.st_size);
	uint64_t lineno = 0;
	struct import_mark committed = {0};
	int in_batch = 0;
	bool too_long;
	char why[400] = "";
	while ((rc = reader_next(&im->rd, &im->line, &too_long)) > 0) {
		lineno++;
		if (ctl_interrupted) {
			snprintf(why, sizeof(why), "ctl_interrupted before this line");
			rc = -EINTR;
			break;
		}
		progress_draw(&bar, im->rd.offset, lineno, false);
		size_t len;
		const char *text = line_text(im, lineno, &len);
		if (!too_long && import_line_is_blank(text, len))
			continue;
		if (in_batch == 0 && (rc = store_begin(im->st)) != 0)
			break;
		in_batch++;
		struct import_line l;
		memset(&l, 0, sizeof(l));
		if (too_long) {
			snprintf(why, sizeof(why), "line is longer than 16 MiB");
			rc = -EFBIG;
		} else if (import_line_parse(text, len, im->inline_keys, &l, why, sizeof(why)) !=
		           0) {
			rc = -EINVAL;
		} else {
			rc = apply_line(im, &l);
		}
		import_line_free(&l);
		if (!rc && in_batch == BATCH_LINES) {
			rc = commit_batch(im, lineno, &committed);
			in_batch = 0;
		}
		if (rc)
			break;
	}
	if (rc == 0 && in_batch > 0) {
		rc = commit_batch(im, lineno, &committed);
		in_batch = 0;
	}
	progress_end(&bar, im->rd.offset, lineno);
	if (rc == 0) {
		if (im->puts > 0)
			note_created(&im->path, im->found);
		wait_visible(im->st, im->last_seq, im->found < 3 ? tree_mark(im->st) : 0);
		return EXIT_OK;
	}
	if (in_batch > 0)
		store_rollback(im->st);
	if (!why[0])
		snprintf(why, sizeof(why), "%s",
		         *store_last_error(im->st) ? store_last_error(im->st) : strerror(-rc));
	ctl_say("import: %s:%llu: %s", im->label, (unsigned long long)lineno, why);
	if (committed.line == 0) {
		ctl_say("import stopped; nothing was imported");
	} else {
		ctl_say("import stopped; lines 1-%llu were imported (%llu records, %llu deleted), "
		        "the "
		        "rest was not; running the same import again is safe",
		        (unsigned long long)committed.line, (unsigned long long)committed.puts,
		        (unsigned long long)committed.deletes);
		wait_visible(im->st, committed.seq, tree_mark(im->st));
	}
	return EXIT_FAIL;
}

static int cmd_import(struct ctl *c, int argc, char **argv)
{
	if (argc != 2)
		return arg_error(SYN_IMPORT, "import: want CLIENT/DB/STORE and FILE (or - for "
		                             "standard input)");
	struct import im;
	memset(&im, 0, sizeof(im));
	im.fd = -1;
	int status = path_parse(argv[0], 3, 3, SYN_IMPORT, &im.path);
	if (status)
		return status;
	im.sp = path_store(&im.path);
	const char *file = argv[1];
	bool from_stdin = strcmp(file, "-") == 0;
	im.label = from_stdin ? "<stdin>" : file;
	buf_init(&im.line, LINE_MAX_BYTES + 1);
	im.rd.block = malloc(READ_BLOCK);
	char what[64 + PATH_MAX];
	snprintf(what, sizeof(what), "import %s", im.path.text);

	ctl_catch_interrupts();

	if (!im.rd.block) {
		ctl_say("out of memory");
		status = EXIT_FAIL;
	}
	if (!status)
		status = open_store(c, false);
	im.st = c->st;
	/* The target: its client must exist; its keyPath decides the lines. */
	uint64_t ino[3];
	if (!status) {
		int rc = path_lookup(im.st, &im.path, &im.found, ino);
		if (rc) {
			status = store_fail(im.st, rc, what);
		} else if (im.found == 0) {
			path_missing(what, &im.path, 0);
			status = EXIT_FAIL;
		}
	}
	if (!status && im.found == 3) {
		char *keypath = NULL;
		bool autoinc = false;
		int rc = store_objstore_info(im.st, ino[2], &keypath, &autoinc);
		if (rc)
			status = store_fail(im.st, rc, what);
		else
			im.inline_keys = strcmp(keypath, "null") != 0;
		free(keypath);
	}
	/* The input, as a regular file that can be read twice. */
	if (!status) {
		int in = from_stdin ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC);
		struct stat sb;
		if (in < 0) {
			ctl_say("import: cannot open %s: %s", file, strerror(errno));
			status = EXIT_FAIL;
		} else if (fstat(in, &sb) != 0) {
			ctl_say("import: %s: %s", im.label, strerror(errno));
			status = EXIT_FAIL;
		} else if (S_ISDIR(sb.st_mode)) {
			ctl_say("import: %s is a directory", im.label);
			status = EXIT_FAIL;
		} else if (S_ISREG(sb.st_mode) && !from_stdin) {
			im.fd = in;
			in = -1;
		} else {
			status = spool_to_temp(in, im.label, &im.fd);
		}
		if (in >= 0 && !from_stdin)
			close(in);
	}
	if (!status && fstat(im.fd, &im.sb) != 0) {
		ctl_say("import: %s: %s", im.label, strerror(errno));
		status = EXIT_FAIL;
	}
	if (!status) {
		im.rd.fd = im.fd;
		status = reader_rewind(&im.rd) ? EXIT_FAIL : EXIT_OK;
		if (status)
			ctl_say("import: cannot read %s: %s", im.label, strerror(errno));
	}
	if (!status)
		status = import_check(&im);
	if (!status)
		status = import_apply(&im);
	if (!status) {
		printf("imported %llu records into %s/%s/%s", (unsigned long long)im.puts,
		       im.path.part[0], im.path.part[1], im.path.part[2]);
		if (im.deletes || im.absent)
			printf(", deleted %llu (%llu already absent)",
			       (unsigned long long)im.deletes, (unsigned long long)im.absent);
		printf("\n");
		status = finish_stdout(EXIT_OK);
	}
	if (im.fd >= 0)
		close(im.fd);
	free(im.rd.block);
	buf_free(&im.line);
	path_free(&im.path);
	return status;
}

/* ---- main ------------------------------------------------------------------- */

struct command {
	const char *name;
	int (*run)(struct ctl *c, int argc, char **argv);
};

/* The sink commands live in ctl_sinks.c. */
static int cmd_sink(struct ctl *c, int argc, char **argv)
{
	return ctl_sink_command(c->datadir, argc, argv);
}

static int cmd_status(struct ctl *c, int argc, char **argv)
{
	return ctl_status_command(c->datadir, argc, argv);
}

/* Backup and restore live in ctl_backup.c. */
static int cmd_backup(struct ctl *c, int argc, char **argv)
{
	return ctl_backup_command(c->datadir, argc, argv);
}

static int cmd_restore(struct ctl *c, int argc, char **argv)
{
	(void)c;
	return ctl_restore_command(argc, argv);
}

static const struct command commands[] = {
        {"client", cmd_client},   {"pipeline", cmd_pipeline}, {"mkstore", cmd_mkstore},
        {"put", cmd_put},         {"get", cmd_get},           {"rm", cmd_rm},
        {"ls", cmd_ls},           {"log", cmd_log},           {"import", cmd_import},
        {"sink", cmd_sink},       {"status", cmd_status},     {"backup", cmd_backup},
        {"restore", cmd_restore},
};

int main(int argc, char **argv)
{
	const char *datadir = NULL;
	int i = 1;
	for (; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--data") == 0) {
			if (i + 1 >= argc)
				return usage_error("--data needs a directory");
			datadir = argv[++i];
		} else if (strncmp(a, "--data=", 7) == 0) {
			datadir = a + 7;
		} else if (is_help(a)) {
			usage(stdout);
			return finish_stdout(EXIT_OK);
		} else if (strcmp(a, "--") == 0) {
			i++;
			break;
		} else if (a[0] == '-' && a[1]) {
			return usage_error("unknown option '%s'", a);
		} else {
			break;
		}
	}
	if (i >= argc)
		return usage_error("no command given");
	const char *name = argv[i];
	const struct command *cmd = NULL;
	for (size_t k = 0; k < sizeof(commands) / sizeof(*commands); k++)
		if (strcmp(name, commands[k].name) == 0)
			cmd = &commands[k];
	if (!cmd)
		return usage_error("unknown command '%s'", name);
	for (int k = i + 1; k < argc; k++) {
		if (is_help(argv[k])) {
			usage(stdout);
			return finish_stdout(EXIT_OK);
		}
	}
	/* A restore makes its own data directory: no other is looked for. */
	if (cmd->run == cmd_restore)
		return ctl_restore_command(argc - i - 1, argv + i + 1);

	struct ctl c;
	memset(&c, 0, sizeof(c));
	if (datadir) {
		if (!*datadir)
			return usage_error("--data needs a directory");
		if (snprintf(c.datadir, sizeof(c.datadir), "%s", datadir) >=
		    (int)sizeof(c.datadir)) {
			ctl_say("--data %s: path too long", datadir);
			return EXIT_FAIL;
		}
	} else {
		int rc = datadir_default(c.datadir, sizeof(c.datadir));
		if (rc) {
			ctl_say("cannot make the default data directory: %s", strerror(-rc));
			return EXIT_FAIL;
		}
	}
	char warning[PATH_MAX * 2 + 200];
	if (datadir_open_to_others(c.datadir, warning, sizeof(warning)))
		ctl_say("%s", warning);
	int status = cmd->run(&c, argc - i - 1, argv + i + 1);
	store_close(c.st);
	return status;
}
