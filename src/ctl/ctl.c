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
 * This file is the command line and the command table; the commands live
 * in ctl_records.c, ctl_import.c, ctl_sinks.c and ctl_backup.c, what they
 * share in ctl_common.c.
 */
#include "ctl_backup.h"
#include "ctl_commands.h"
#include "ctl_common.h"
#include "ctl_sinks.h"

#include "idbmount/store/store.h"
#include "idbmount/util/datadir.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        {"client", ctl_cmd_client}, {"pipeline", ctl_cmd_pipeline}, {"mkstore", ctl_cmd_mkstore},
        {"put", ctl_cmd_put},       {"get", ctl_cmd_get},           {"rm", ctl_cmd_rm},
        {"ls", ctl_cmd_ls},         {"log", ctl_cmd_log},           {"import", ctl_cmd_import},
        {"sink", cmd_sink},         {"status", cmd_status},         {"backup", cmd_backup},
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
				return ctl_usage_error("--data needs a directory");
			datadir = argv[++i];
		} else if (strncmp(a, "--data=", 7) == 0) {
			datadir = a + 7;
		} else if (ctl_is_help(a)) {
			ctl_usage(stdout);
			return ctl_finish_stdout(EXIT_OK);
		} else if (strcmp(a, "--") == 0) {
			i++;
			break;
		} else if (a[0] == '-' && a[1]) {
			return ctl_usage_error("unknown option '%s'", a);
		} else {
			break;
		}
	}
	if (i >= argc)
		return ctl_usage_error("no command given");
	const char *name = argv[i];
	const struct command *cmd = NULL;
	for (size_t k = 0; k < sizeof(commands) / sizeof(*commands); k++)
		if (strcmp(name, commands[k].name) == 0)
			cmd = &commands[k];
	if (!cmd)
		return ctl_usage_error("unknown command '%s'", name);
	for (int k = i + 1; k < argc; k++) {
		if (ctl_is_help(argv[k])) {
			ctl_usage(stdout);
			return ctl_finish_stdout(EXIT_OK);
		}
	}
	/* A restore makes its own data directory: no other is looked for. */
	if (cmd->run == cmd_restore)
		return ctl_restore_command(argc - i - 1, argv + i + 1);

	struct ctl c;
	memset(&c, 0, sizeof(c));
	if (datadir) {
		if (!*datadir)
			return ctl_usage_error("--data needs a directory");
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
