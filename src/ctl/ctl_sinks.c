/* ctl_sinks.c - idbmountctl's view of the sinks: `sink list`, `status`,
 * `sink replay` and `sink unpark` (see ctl_sinks.h).
 *
 * Everything here reads or changes the sinks' rows in the store
 * (store_sinks.h); the daemon's sink threads notice a change of their row
 * (a replay's new generation, an unparked intent) at their next poll. The
 * sinks a data directory knows are those a daemon ran with (`--config`).
 * Output for programs (status --json) goes to stdout, messages to stderr.
 */
#include "ctl_sinks.h"
#include "ctl_common.h"

#include "idbmount/sinks/config.h"
#include "idbmount/sinks/sink.h"
#include "idbmount/store/store.h"
#include "idbmount/store/store_sinks.h"
#include "idbmount/util/clock.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REPLAY_POLL_MS 100

/* "3.2 s ago" style ages. */
static void age_text(int64_t ms, char *out, size_t outlen)
{
	if (ms < 0)
		ms = 0;
	if (ms < 60000)
		snprintf(out, outlen, "%.1f s", (double)ms / 1000);
	else if (ms < 3600000)
		snprintf(out, outlen, "%.1f min", (double)ms / 60000);
	else
		snprintf(out, outlen, "%.1f h", (double)ms / 3600000);
}

/* ---- status ----------------------------------------------------------------------- */

struct status_ctx {
	bool json;
	json_t *list;
	size_t n;
	struct store *st;
};

static int print_parked(void *ctx, const struct store_sink_intent *in)
{
	(void)ctx;
	printf("    parked batch %lld: %s (seqs %lld-%lld, %lld changes): %s\n", (long long)in->id,
	       in->name, (long long)in->first_seq, (long long)in->last_seq, (long long)in->changes,
	       in->error);
	return 0;
}

static int add_parked_json(void *ctx, const struct store_sink_intent *in)
{
	json_array_append_new(ctx, json_pack("{sI sI sI sI ss ss}", "id", (json_int_t)in->id,
	                                     "first_seq", (json_int_t)in->first_seq, "last_seq",
	                                     (json_int_t)in->last_seq, "changes",
	                                     (json_int_t)in->changes, "name", in->name, "error",
	                                     in->error));
	return 0;
}

static int status_one(void *ctx, const struct store_sink *k)
{
	struct status_ctx *s = ctx;
	s->n++;
	int64_t now = clock_wall_ms();
	if (s->json) {
		json_t *parked = json_array();
		store_sink_intents(s->st, k->name, STORE_INTENT_PARKED, add_parked_json, parked);
		json_t *one = json_pack(
		        "{ss ss sI sI sI sf sI sI sI sI sI sI sI sI ss sI so}", "name", k->name,
		        "type", k->type, "cursor", (json_int_t)k->cursor, "generation",
		        (json_int_t)k->generation, "lag_changes", (json_int_t)k->lag_changes,
		        "lag_seconds", (double)k->lag_ms / 1000, "delivered_seq",
		        (json_int_t)k->delivered_seq, "delivered_batches",
		        (json_int_t)k->delivered_batches, "delivered_changes",
		        (json_int_t)k->delivered_changes, "delivered_bytes",
		        (json_int_t)k->delivered_bytes, "retries", (json_int_t)k->retries,
		        "failures", (json_int_t)k->failures, "parked", (json_int_t)k->parked,
		        "long_lines", (json_int_t)k->long_lines, "last_error", k->last_error,
		        "last_error_ms", (json_int_t)k->last_error_ms, "parked_batches", parked);
		/* Removed sinks stay listed, marked, with their cursor. */
		json_object_set_new(one, "removed", json_boolean(k->removed_ms > 0));
		json_object_set_new(one, "removed_ms", json_integer((json_int_t)k->removed_ms));
		json_array_append_new(s->list, one);
		return 0;
	}
	char lag[32], ago[32];
	age_text(k->lag_ms, lag, sizeof(lag));
	printf("sink %s (%s)\n", k->name, k->type);
	if (k->removed_ms) {
		age_text(now - k->removed_ms, ago, sizeof(ago));
		printf("  REMOVED from the config file (daemon started without it %s ago): "
		       "nothing is shipped; its cursor is kept, a [sink %s] section of the same "
		       "name goes on from seq %lld\n",
		       ago, k->name, (long long)k->cursor + 1);
	}
	printf("  lag: %lld changes, %s (cursor at seq %lld)\n", (long long)k->lag_changes, lag,
	       (long long)k->cursor);
	if (k->last_delivery_ms)
		age_text(now - k->last_delivery_ms, ago, sizeof(ago));
	printf("  delivered: %lld batches, %lld changes, %lld bytes, up to seq %lld%s%s%s\n",
	       (long long)k->delivered_batches, (long long)k->delivered_changes,
	       (long long)k->delivered_bytes, (long long)k->delivered_seq,
	       k->last_delivery_ms ? " (last " : "", k->last_delivery_ms ? ago : "",
	       k->last_delivery_ms ? " ago)" : "");
	printf("  retries: %lld, failures: %lld (parked now: %lld), lines over max_line: %lld\n",
	       (long long)k->retries, (long long)k->failures, (long long)k->parked,
	       (long long)k->long_lines);
	if (k->last_error[0]) {
		age_text(now - k->last_error_ms, ago, sizeof(ago));
		printf("  last error (%s ago): %s\n", ago, k->last_error);
	}
	if (k->parked)
		store_sink_intents(s->st, k->name, STORE_INTENT_PARKED, print_parked, NULL);
	return 0;
}

int ctl_status_command(const char *datadir, int argc, char **argv)
{
	bool json = false;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = true;
		else
			return ctl_arg_error("status [--json]", "status: unexpected argument");
	}
	struct store *st = ctl_open_existing(datadir);
	if (!st)
		return 1;
	struct status_ctx s = {.json = json, .list = json_array(), .st = st};
	int pid = 0;
	int64_t seq = 0, tree = 0;
	store_daemon_status(st, &pid, &seq, &tree);
	int64_t last = store_last_seq(st);
	if (!json) {
		if (pid > 0)
			printf("daemon: pid %d; change log up to seq %lld\n", pid, (long long)last);
		else
			printf("daemon: not running; change log up to seq %lld\n", (long long)last);
	}
	int rc = store_sinks_list(st, status_one, &s);
	int status = 0;
	if (rc) {
		ctl_say("reading the sinks: %s", store_last_error(st));
		status = 1;
	} else if (json) {
		int64_t lowest = 0, highest = 0;
		store_sinks_taken(st, &lowest, &highest);
		json_t *doc = json_pack("{si sI sI sI so}", "daemon_pid", pid, "last_seq",
		                        (json_int_t)last, "delivered_lowest", (json_int_t)lowest,
		                        "delivered_highest", (json_int_t)highest, "sinks", s.list);
		s.list = NULL;
		char *text = json_dumps(doc, JSON_COMPACT);
		puts(text ? text : "{}");
		free(text);
		json_decref(doc);
	} else if (s.n == 0) {
		printf("no sinks: start the daemon with --config FILE ('" PROG
		       " sink list' shows the sink types)\n");
	}
	json_decref(s.list);
	store_close(st);
	if (fflush(stdout) != 0)
		status = 1;
	return status;
}

/* ---- sink list ---------------------------------------------------------------------- */

static const char *const kind_name[] = {
        [SINK_OPT_STRING] = "text",       [SINK_OPT_COUNT] = "count", [SINK_OPT_SIZE] = "size",
        [SINK_OPT_DURATION] = "duration", [SINK_OPT_BOOL] = "bool",   [SINK_OPT_CHOICE] = "choice",
        [SINK_OPT_URL] = "url",           [SINK_OPT_PATH] = "path",
};

static void print_options(const struct sink_option *opts)
{
	for (size_t i = 0; opts[i].name; i++) {
		const struct sink_option *o = &opts[i];
		const char *def = !o->default_value    ? "(required)"
		                  : !*o->default_value ? "(none)"
		                                       : o->default_value;
		printf("    %-16s %-9s %-12s %s%s%s%s\n", o->name,
		       o->kind == SINK_OPT_CHOICE ? o->choices : kind_name[o->kind], def, o->help,
		       o->repeatable ? " [repeatable]" : "", "", "");
	}
}

static int list_one(void *ctx, const struct store_sink *k)
{
	size_t *n = ctx;
	if ((*n)++ == 0)
		printf("Sinks of this data directory (NAME TYPE CURSOR):\n");
	printf("  %s %s %lld%s\n", k->name, k->type, (long long)k->cursor,
	       k->removed_ms ? " (removed from the config file)" : "");
	return 0;
}

static int sink_list(const char *datadir)
{
	char db[PATH_MAX + 16];
	struct stat sb;
	snprintf(db, sizeof(db), "%s/idbmount.db", datadir);
	if (stat(db, &sb) == 0) {
		struct store *st = ctl_open_existing(datadir);
		if (!st)
			return 1;
		size_t n = 0;
		int rc = store_sinks_list(st, list_one, &n);
		store_close(st);
		if (rc)
			return 1;
		if (n == 0)
			printf("No sinks in this data directory yet (the daemon's --config names "
			       "them).\n");
		printf("\n");
	}
	printf("Sink types, for [sink NAME] sections of idbmount --config FILE\n"
	       "(KEY KIND DEFAULT HELP):\n\n");
	printf("  every type:\n");
	print_options(config_common_options);
	for (size_t i = 0; sink_types[i]; i++) {
		const struct sink_type *t = sink_types[i];
		printf("\n  type = %s: %s\n", t->name, t->summary);
		if (t->default_max_records)
			printf("    (max_records defaults to %lld for this type)\n",
			       (long long)t->default_max_records);
		if (t->files)
			print_options(config_file_options);
		print_options(t->options);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- sink replay ------------------------------------------------------------------ */

#define SYN_REPLAY "sink replay NAME --from SEQ [--no-wait]"

static bool parse_seq(const char *text, int64_t *out)
{
	char *end = NULL;
	errno = 0;
	long long v = strtoll(text, &end, 10);
	if (errno || !*text || *end || v < 1)
		return false;
	*out = v;
	return true;
}

/* A bar on stderr: "replay spool [#####.....]  45% 4500/10000 changes". */
static void draw_bar(const char *name, int64_t done, int64_t total, bool end)
{
	int width = 30;
	int pct = total > 0 ? (int)(done * 100 / total) : 100;
	char bar[64];
	int filled = total > 0 ? (int)(done * width / total) : width;
	for (int i = 0; i < width; i++)
		bar[i] = i < filled ? '#' : '.';
	bar[width] = '\0';
	fprintf(stderr, "\rreplay %s [%s] %3d%% %lld/%lld changes\033[K%s", name, bar, pct,
	        (long long)done, (long long)total, end ? "\n" : "");
	fflush(stderr);
}

static int sink_replay(const char *datadir, int argc, char **argv)
{
	const char *name = NULL;
	int64_t from = 0;
	bool wait = true;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
			if (!parse_seq(argv[++i], &from))
				return ctl_arg_error(SYN_REPLAY, "--from wants a seq, 1 or more");
		} else if (strncmp(argv[i], "--from=", 7) == 0) {
			if (!parse_seq(argv[i] + 7, &from))
				return ctl_arg_error(SYN_REPLAY, "--from wants a seq, 1 or more");
		} else if (strcmp(argv[i], "--no-wait") == 0) {
			wait = false;
		} else if (argv[i][0] == '-' || name) {
			return ctl_arg_error(SYN_REPLAY, "unexpected argument");
		} else {
			name = argv[i];
		}
	}
	if (!name || !from)
		return ctl_arg_error(SYN_REPLAY, "sink replay needs NAME and --from SEQ");
	struct store *st = ctl_open_existing(datadir);
	if (!st)
		return 1;
	int status = 0;
	int rc = store_sink_replay(st, name, from);
	struct store_sink k;
	if (!rc)
		rc = store_sink_load(st, name, &k);
	if (rc) {
		ctl_say("replay %s: %s", name, store_last_error(st));
		store_close(st);
		return 1;
	}
	int64_t total = k.replay_to - (from - 1);
	ctl_say("sink %s will ship seqs %lld to %lld again (generation %lld: new file names)", name,
	        (long long)from, (long long)k.replay_to, (long long)k.generation);
	if (!wait || total <= 0) {
		store_close(st);
		return 0;
	}
	int pid = 0;
	int64_t s1, s2;
	if (store_daemon_status(st, &pid, &s1, &s2) != 0) {
		/* The replay is recorded either way: asking again would ship
		 * the history a third time. */
		ctl_say("cannot tell whether a daemon serves %s (%s): the replay starts when one "
		        "does",
		        datadir, store_last_error(st));
		store_close(st);
		return 0;
	}
	if (pid <= 0) {
		ctl_say("no daemon serves %s: the replay starts when it does", datadir);
		store_close(st);
		return 0;
	}
	ctl_catch_interrupts();
	bool tty = isatty(STDERR_FILENO) == 1;
	int64_t last_draw = 0;
	for (;;) {
		if (store_sink_load(st, name, &k) != 0) {
			ctl_say("replay %s: %s", name, store_last_error(st));
			status = 1;
			break;
		}
		int64_t done = k.cursor - (from - 1);
		if (done > total)
			done = total;
		bool finished = k.cursor >= k.replay_to;
		if (tty && (finished || clock_mono_ms() - last_draw >= REPLAY_POLL_MS)) {
			draw_bar(name, done < 0 ? 0 : done, total, finished);
			last_draw = clock_mono_ms();
		}
		if (finished) {
			ctl_say("replay of sink %s done", name);
			break;
		}
		if (ctl_interrupted) {
			if (tty)
				fputc('\n', stderr);
			ctl_say("stopped waiting; the daemon goes on with the replay");
			break;
		}
		store_daemon_status(st, &pid, &s1, &s2);
		if (pid <= 0) {
			if (tty)
				fputc('\n', stderr);
			ctl_say("the daemon stopped; the replay goes on when it starts again");
			break;
		}
		struct timespec ts = {.tv_sec = 0, .tv_nsec = REPLAY_POLL_MS * 1000000L};
		nanosleep(&ts, NULL);
	}
	store_close(st);
	return status;
}

/* ---- sink unpark ------------------------------------------------------------------- */

#define SYN_UNPARK "sink unpark NAME [--id ID]"

static int sink_unpark(const char *datadir, int argc, char **argv)
{
	const char *name = NULL;
	int64_t id = 0;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--id") == 0 && i + 1 < argc) {
			if (!parse_seq(argv[++i], &id))
				return ctl_arg_error(SYN_UNPARK,
				                     "--id wants a batch id (status shows it)");
		} else if (argv[i][0] == '-' || name) {
			return ctl_arg_error(SYN_UNPARK, "unexpected argument");
		} else {
			name = argv[i];
		}
	}
	if (!name)
		return ctl_arg_error(SYN_UNPARK, "sink unpark needs NAME");
	struct store *st = ctl_open_existing(datadir);
	if (!st)
		return 1;
	int64_t count = 0;
	int rc = store_sink_unpark(st, name, id, &count);
	if (rc) {
		ctl_say("unpark %s: %s", name, store_last_error(st));
		store_close(st);
		return 1;
	}
	store_close(st);
	if (id > 0 && count == 0) {
		ctl_say("sink %s has no parked batch %lld", name, (long long)id);
		return 1;
	}
	ctl_say("%lld parked batch%s of sink %s will be sent again", (long long)count,
	        count == 1 ? "" : "es", name);
	return 0;
}

int ctl_sink_command(const char *datadir, int argc, char **argv)
{
	const char *syn = "sink list | sink replay NAME --from SEQ | sink unpark NAME";
	if (argc < 1)
		return ctl_arg_error(syn, "sink: which sink command?");
	if (strcmp(argv[0], "list") == 0) {
		if (argc > 1)
			return ctl_arg_error("sink list", "sink list takes no arguments");
		return sink_list(datadir);
	}
	if (strcmp(argv[0], "replay") == 0)
		return sink_replay(datadir, argc - 1, argv + 1);
	if (strcmp(argv[0], "unpark") == 0)
		return sink_unpark(datadir, argc - 1, argv + 1);
	return ctl_arg_error(syn, "sink: unknown sink command");
}
