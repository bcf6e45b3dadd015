/* ctl_common.h - what every idbmountctl command uses: messages and exit
 * statuses, interrupts, options and CLIENT/DB/STORE paths, opening the
 * store and waiting until a change shows in the mount (ctl_common.c). The
 * command files (ctl_records.c, ctl_import.c, ctl_sinks.c) include it; it
 * knows none of them.
 */
#ifndef IDBMOUNT_CTL_COMMON_H
#define IDBMOUNT_CTL_COMMON_H

#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "idbmount/store/store.h"

#define PROG "idbmountctl"

enum exit_code {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
};

/* How long a command waits for a daemon that makes no progress. */
#define WAIT_IDLE_MS 3000

struct ctl {
	char datadir[PATH_MAX];
	struct store *st;
};

/* ---- messages ---- */

/* "idbmountctl: MESSAGE" on stderr. */
__attribute__((format(printf, 1, 2))) void ctl_say(const char *fmt, ...);
/* "idbmountctl: MESSAGE" on stderr without the newline. */
__attribute__((format(printf, 1, 0))) void ctl_vsay(const char *fmt, va_list ap);
/* Reports a failed store call: "idbmountctl: <what>: <reason>". Returns
 * EXIT_FAIL. */
int ctl_store_fail(struct store *st, int rc, const char *what);
/* idbmountctl --help: every command. */
void ctl_usage(FILE *out);
/* A wrong command line: the message, then the whole usage. Returns
 * EXIT_USAGE. */
__attribute__((format(printf, 1, 2))) int ctl_usage_error(const char *fmt, ...);
/* A wrong argument of a known command: the message and its synopsis.
 * Returns EXIT_USAGE. */
__attribute__((format(printf, 2, 3))) int ctl_arg_error(const char *synopsis, const char *fmt, ...);
/* Flushes stdout; a failed write is a failed command. */
int ctl_finish_stdout(int status);

/* Set once SIGINT or SIGTERM arrived after ctl_catch_interrupts(): long
 * commands (import, waiting for a replay) then stop cleanly. */
extern volatile sig_atomic_t ctl_interrupted;
void ctl_catch_interrupts(void);

/* ---- arguments ---- */

/* Parses a decimal integer >= 0 (digits only). */
bool ctl_parse_count(const char *text, int64_t *out);
/* Matches "--name VALUE" and "--name=VALUE" at argv[*i]; advances *i past
 * the value. Returns 1 on a match, 0 if argv[*i] is another argument, -1
 * when the value is missing (message printed). */
int ctl_take_option(int argc, char **argv, int *i, const char *name, const char **value,
                    const char *synopsis);
/* "-h" or "--help". */
bool ctl_is_help(const char *a);
/* Parses a KEY argument. Returns a new reference or NULL after a message. */
json_t *ctl_key_arg(const char *text, const char *synopsis);

/* CLIENT[/DB[/STORE]] split into raw names. */
struct ctl_path {
	char *copy;
	const char *part[3];
	int n;
	const char *text; /* as given, for messages */
};

/* Splits `arg` into `min`..`max` non-empty parts, each a valid name.
 * Returns 0, or EXIT_USAGE after a message. */
int ctl_path_parse(const char *arg, int min, int max, const char *synopsis, struct ctl_path *p);
void ctl_path_free(struct ctl_path *p);
struct store_path ctl_path_store(const struct ctl_path *p);
/* Looks the parts of `p` up in the tree as the mount does. *found is how
 * many levels exist (0..n), ino[] their inodes. Returns 0 or -errno for a
 * failure other than a missing level. */
int ctl_path_lookup(struct store *st, const struct ctl_path *p, int *found, uint64_t ino[3]);
/* The message for a path whose level `found` is missing. */
void ctl_path_missing(const char *what, const struct ctl_path *p, int found);
/* Says on stderr what store_put / import made because it was missing. */
void ctl_note_created(const struct ctl_path *p, int found);

/* ---- the store and the mount ---- */

/* Opens the store; only `client add` (`create`) may make a new one.
 * Returns 0 or EXIT_FAIL after a message. */
int ctl_open_store(struct ctl *c, bool create);

/* Opens the store of `datadir`, which must already hold one; NULL after a
 * message. */
struct store *ctl_open_existing(const char *datadir);
/* Waits until a daemon serving this data directory has shown the changes
 * up to `seq` and tree-log entry `tree_id` in the mount; gives up with a
 * warning once the daemon has made no progress for WAIT_IDLE_MS. */
void ctl_wait_visible(struct store *st, int64_t seq, int64_t tree_id);
/* The tree-log id to wait for after directories may have been made. */
int64_t ctl_tree_mark(struct store *st);

#endif
