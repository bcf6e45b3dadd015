/* ctl_records.c - idbmountctl's commands on clients, pipelines, stores,
 * records and the change log: client, pipeline, mkstore, put, get, rm, ls
 * and log (see ctl_commands.h).
 */
#include "ctl_commands.h"
#include "ctl_common.h"

#include "idbmount/codec/changeline.h"
#include "idbmount/codec/json_text.h"
#include "idbmount/codec/key.h"
#include "idbmount/store/store.h"
#include "idbmount/store/store_sync.h"
#include "idbmount/util/buf.h"
#include "idbmount/util/datadir.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_PAGE 1000
/* A change line holds a value of up to 2 x 16 MiB compact JSON (the
 * store's cap on the change log's form) plus its fields. */
#define LOG_LINE_MAX (40u * 1024 * 1024)

/* ---- client -------------------------------------------------------------- */

#define SYN_CLIENT_ADD  "client add NAME [--node NODE]"
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
	int rc = ctl_open_store(c, false);
	if (rc)
		return rc;
	rc = list(c->st, print_name, NULL);
	return rc ? ctl_store_fail(c->st, rc, what) : ctl_finish_stdout(EXIT_OK);
}

/* What `client add` and `pipeline add` take: NAME and --node NODE, the
 * node of several behind a proxy whose name starts the token (store.h, "A
 * token is"). Returns 0, or the exit status of a usage error (printed). */
static int parse_add(int argc, char **argv, const char *synopsis, const char *what,
                     const char **name, const char **node)
{
	*name = NULL;
	*node = NULL;
	for (int i = 1; i < argc; i++) {
		const char *value = NULL;
		int m = ctl_take_option(argc, argv, &i, "--node", &value, synopsis);
		if (m < 0)
			return EXIT_USAGE;
		if (m > 0) {
			/* Not echoed, like a name: it may be what is wrong with it. */
			const char *why = store_node_name_problem(value);
			if (why)
				return ctl_arg_error(synopsis, "%s: not a node name: %s", what,
				                     why);
			*node = value;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return ctl_arg_error(synopsis, "%s: unknown option '%s'", what, argv[i]);
		} else if (!*name) {
			*name = argv[i];
		} else {
			return ctl_arg_error(synopsis, "%s: want exactly one NAME", what);
		}
	}
	if (!*name)
		return ctl_arg_error(synopsis, "%s: want exactly one NAME", what);
	return 0;
}

/* Makes a client or pipeline with `add` and prints its token, which is
 * shown this once (only its hash is kept). A client is a directory of the
 * mount (`in_mount`): it is waited for there, whether or not the token
 * could be printed. */
static int add_with_token(struct ctl *c,
                          int (*add)(struct store *, const char *, const char *,
                                     char[STORE_TOKEN_MAX]),
                          const char *name, const char *node, const char *what, bool in_mount)
{
	int rc = ctl_open_store(c, true);
	if (rc)
		return rc;
	char token[STORE_TOKEN_MAX];
	rc = add(c->st, name, node, token);
	if (rc)
		return ctl_store_fail(c->st, rc, what);
	printf("%s\n", token);
	int status = ctl_finish_stdout(EXIT_OK);
	if (in_mount)
		ctl_wait_visible(c->st, 0, ctl_tree_mark(c->st));
	return status;
}

int ctl_cmd_client(struct ctl *c, int argc, char **argv)
{
	if (argc < 1)
		return ctl_usage_error("client: want 'client add NAME' or 'client list'");
	const char *sub = argv[0];
	if (strcmp(sub, "add") == 0) {
		const char *name, *node;
		int rc = parse_add(argc, argv, SYN_CLIENT_ADD, "client add", &name, &node);
		if (rc)
			return rc;
		/* The name is not echoed: it may be what is wrong with it. */
		const char *why = store_client_name_problem(name);
		if (why)
			return ctl_arg_error(SYN_CLIENT_ADD, "client add: not a client name: %s",
			                     why);
		return add_with_token(c, store_client_add, name, node, "client add", true);
	}
	if (strcmp(sub, "list") == 0) {
		if (argc != 1)
			return ctl_arg_error(SYN_CLIENT_LIST, "client list takes no arguments");
		return list_names(c, store_client_list, "client list");
	}
	return ctl_usage_error("client: unknown subcommand '%s'", sub);
}

/* ---- pipeline ------------------------------------------------------------ */

#define SYN_PIPELINE_ADD  "pipeline add NAME [--node NODE]"
#define SYN_PIPELINE_LIST "pipeline list"

/* A pipeline token reads the whole change log through /v1/changes and
 * nothing else; like a client token, it is printed once and only its hash
 * is kept. */
int ctl_cmd_pipeline(struct ctl *c, int argc, char **argv)
{
	if (argc < 1)
		return ctl_usage_error("pipeline: want 'pipeline add NAME' or 'pipeline list'");
	const char *sub = argv[0];
	if (strcmp(sub, "add") == 0) {
		const char *name, *node;
		int rc = parse_add(argc, argv, SYN_PIPELINE_ADD, "pipeline add", &name, &node);
		if (rc)
			return rc;
		const char *why = store_pipeline_name_problem(name);
		if (why)
			return ctl_arg_error(SYN_PIPELINE_ADD,
			                     "pipeline add: not a pipeline name: %s", why);
		return add_with_token(c, store_pipeline_add, name, node, "pipeline add", false);
	}
	if (strcmp(sub, "list") == 0) {
		if (argc != 1)
			return ctl_arg_error(SYN_PIPELINE_LIST, "pipeline list takes no arguments");
		return list_names(c, store_pipeline_list, "pipeline list");
	}
	return ctl_usage_error("pipeline: unknown subcommand '%s'", sub);
}

/* ---- mkstore ------------------------------------------------------------- */

#define SYN_MKSTORE "mkstore CLIENT/DB/STORE [--keypath JSON] [--autoincrement]"

int ctl_cmd_mkstore(struct ctl *c, int argc, char **argv)
{
	const char *target = NULL, *keypath_text = "null";
	bool autoincrement = false;
	for (int i = 0; i < argc; i++) {
		const char *value = NULL;
		int m = ctl_take_option(argc, argv, &i, "--keypath", &value, SYN_MKSTORE);
		if (m < 0)
			return EXIT_USAGE;
		if (m > 0) {
			keypath_text = value;
		} else if (strcmp(argv[i], "--autoincrement") == 0) {
			autoincrement = true;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			return ctl_arg_error(SYN_MKSTORE, "mkstore: unknown option '%s'", argv[i]);
		} else if (!target) {
			target = argv[i];
		} else {
			return ctl_arg_error(SYN_MKSTORE, "mkstore: unexpected argument '%s'",
			                     argv[i]);
		}
	}
	if (!target)
		return ctl_arg_error(SYN_MKSTORE, "mkstore: want CLIENT/DB/STORE");
	char why[200];
	json_t *kp = json_text_parse(keypath_text, strlen(keypath_text), why, sizeof(why));
	if (!kp)
		return ctl_arg_error(SYN_MKSTORE,
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
		return ctl_arg_error(SYN_MKSTORE, "--keypath %s: %s", keypath_text,
		                     problem ? problem : "too long");
	}
	struct ctl_path p;
	rc = ctl_path_parse(target, 3, 3, SYN_MKSTORE, &p);
	if (rc) {
		buf_free(&compact);
		return rc;
	}
	int status = ctl_open_store(c, false);
	if (!status) {
		struct store_path sp = ctl_path_store(&p);
		rc = store_make_objstore(c->st, &sp, compact.data, autoincrement);
		if (rc) {
			char what[64 + PATH_MAX];
			snprintf(what, sizeof(what), "mkstore %s", p.text);
			status = ctl_store_fail(c->st, rc, what);
		} else {
			ctl_wait_visible(c->st, 0, ctl_tree_mark(c->st));
		}
	}
	buf_free(&compact);
	ctl_path_free(&p);
	return status;
}

/* ---- put, get, rm -------------------------------------------------------- */

#define SYN_PUT "put CLIENT/DB/STORE KEY JSON"
#define SYN_GET "get CLIENT/DB/STORE KEY"
#define SYN_RM  "rm CLIENT/DB/STORE KEY"

/* "put a/b/c 5" for messages (the key as given). */
static void what_of(char *out, size_t outlen, const char *cmd, const struct ctl_path *p,
                    const char *key)
{
	snprintf(out, outlen, "%s %s %s", cmd, p->text, key);
}

int ctl_cmd_put(struct ctl *c, int argc, char **argv)
{
	if (argc != 3)
		return ctl_arg_error(SYN_PUT, "put: want CLIENT/DB/STORE, KEY and JSON");
	struct ctl_path p;
	int status = ctl_path_parse(argv[0], 3, 3, SYN_PUT, &p);
	if (status)
		return status;
	json_t *key = ctl_key_arg(argv[1], SYN_PUT);
	char why[200];
	json_t *value = key ? json_text_parse(argv[2], strlen(argv[2]), why, sizeof(why)) : NULL;
	if (!key) {
		status = EXIT_USAGE;
	} else if (!value) {
		status = ctl_arg_error(SYN_PUT, "put: the value is not JSON: %s", why);
	} else {
		status = ctl_open_store(c, false);
	}
	int found = 0;
	uint64_t ino[3];
	char what[256];
	what_of(what, sizeof(what), "put", &p, argv[1]);
	if (!status) {
		int rc = ctl_path_lookup(c->st, &p, &found, ino);
		if (rc)
			status = ctl_store_fail(c->st, rc, what);
		else if (found == 0)
			status = EXIT_FAIL;
		if (found == 0)
			ctl_path_missing(what, &p, found);
	}
	if (!status) {
		struct store_path sp = ctl_path_store(&p);
		int64_t rev = 0, seq = 0;
		int rc = store_put(c->st, &sp, key, value, ORIGIN_IMPORT, true, &rev, &seq);
		if (rc) {
			status = ctl_store_fail(c->st, rc, what);
		} else {
			ctl_note_created(&p, found);
			printf("rev %lld seq %lld\n", (long long)rev, (long long)seq);
			status = ctl_finish_stdout(EXIT_OK);
			ctl_wait_visible(c->st, seq, found < 3 ? ctl_tree_mark(c->st) : 0);
		}
	}
	json_decref(key);
	json_decref(value);
	ctl_path_free(&p);
	return status;
}

/* The CLIENT/DB/STORE and KEY arguments of get and rm, with the store
 * opened for them. Returns 0, or the exit status after a message with
 * nothing left to free. */
static int record_args(struct ctl *c, char **argv, const char *synopsis, struct ctl_path *p,
                       json_t **key)
{
	int status = ctl_path_parse(argv[0], 3, 3, synopsis, p);
	if (status)
		return status;
	*key = ctl_key_arg(argv[1], synopsis);
	status = *key ? ctl_open_store(c, false) : EXIT_USAGE;
	if (status) {
		json_decref(*key);
		ctl_path_free(p);
	}
	return status;
}

int ctl_cmd_get(struct ctl *c, int argc, char **argv)
{
	if (argc != 2)
		return ctl_arg_error(SYN_GET, "get: want CLIENT/DB/STORE and KEY");
	struct ctl_path p;
	json_t *key = NULL;
	int status = record_args(c, argv, SYN_GET, &p, &key);
	if (status)
		return status;
	struct store_path sp = ctl_path_store(&p);
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
		status = ctl_store_fail(c->st, rc, what);
	} else {
		fwrite(data, 1, len, stdout);
		status = ctl_finish_stdout(EXIT_OK);
	}
	free(data);
	json_decref(key);
	ctl_path_free(&p);
	return status;
}

int ctl_cmd_rm(struct ctl *c, int argc, char **argv)
{
	if (argc != 2)
		return ctl_arg_error(SYN_RM, "rm: want CLIENT/DB/STORE and KEY");
	struct ctl_path p;
	json_t *key = NULL;
	int status = record_args(c, argv, SYN_RM, &p, &key);
	if (status)
		return status;
	struct store_path sp = ctl_path_store(&p);
	int64_t seq = 0;
	char what[256];
	what_of(what, sizeof(what), "rm", &p, argv[1]);
	int rc = store_delete(c->st, &sp, key, ORIGIN_IMPORT, &seq);
	if (rc) {
		status = ctl_store_fail(c->st, rc, what);
	} else if (seq == 0) {
		ctl_say("%s: no such record", what);
		status = EXIT_FAIL;
	} else {
		ctl_wait_visible(c->st, seq, 0);
	}
	json_decref(key);
	ctl_path_free(&p);
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

int ctl_cmd_ls(struct ctl *c, int argc, char **argv)
{
	if (argc > 1)
		return ctl_arg_error(SYN_LS, "ls: want at most one CLIENT[/DB[/STORE]]");
	if (argc == 0)
		return list_names(c, store_client_list, "ls");
	struct ctl_path p;
	int status = ctl_path_parse(argv[0], 1, 3, SYN_LS, &p);
	if (status)
		return status;
	status = ctl_open_store(c, false);
	char what[64 + PATH_MAX];
	snprintf(what, sizeof(what), "ls %s", p.text);
	int found = 0;
	uint64_t ino[3];
	if (!status) {
		int rc = ctl_path_lookup(c->st, &p, &found, ino);
		if (rc) {
			status = ctl_store_fail(c->st, rc, what);
		} else if (found < p.n) {
			ctl_path_missing(what, &p, found);
			status = EXIT_FAIL;
		}
	}
	if (!status) {
		int rc;
		if (p.n == 3) {
			struct store_path sp = ctl_path_store(&p);
			rc = store_list_keys(c->st, &sp, 0, print_key, NULL);
		} else {
			rc = store_readdir(c->st, ino[p.n - 1], 0, print_dir_entry, NULL);
		}
		status = rc ? ctl_store_fail(c->st, rc, what) : ctl_finish_stdout(EXIT_OK);
	}
	ctl_path_free(&p);
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

int ctl_cmd_log(struct ctl *c, int argc, char **argv)
{
	int64_t since = 0, limit = INT64_MAX;
	for (int i = 0; i < argc; i++) {
		const char *value = NULL;
		int m = ctl_take_option(argc, argv, &i, "--since", &value, SYN_LOG);
		if (m < 0)
			return EXIT_USAGE;
		if (m > 0) {
			if (!ctl_parse_count(value, &since))
				return ctl_arg_error(SYN_LOG,
				                     "--since wants a seq (0 or more), not '%s'",
				                     value);
			continue;
		}
		m = ctl_take_option(argc, argv, &i, "--limit", &value, SYN_LOG);
		if (m < 0)
			return EXIT_USAGE;
		if (m > 0) {
			if (!ctl_parse_count(value, &limit))
				return ctl_arg_error(SYN_LOG, "--limit wants a count, not '%s'",
				                     value);
			continue;
		}
		return ctl_arg_error(SYN_LOG, "log: unexpected argument '%s'", argv[i]);
	}
	int status = ctl_open_store(c, false);
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
			status = ctl_finish_stdout(EXIT_FAIL);
		} else if (l.error) {
			ctl_say("log: cannot render change %lld: %s", (long long)l.last_seq + 1,
			        strerror(-l.error));
			status = EXIT_FAIL;
		} else if (got < 0) {
			status = ctl_store_fail(c->st, (int)got, "log");
		} else if (got < page) {
			break;
		}
		limit -= page;
	}
	buf_free(&l.line);
	return status ? status : ctl_finish_stdout(EXIT_OK);
}
