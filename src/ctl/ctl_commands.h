/* ctl_commands.h - idbmountctl's commands on the data (ctl_records.c) and
 * import (ctl_import.c), called by the command table in ctl.c with the
 * arguments after the command's name. Each returns the exit status (0, 1
 * failed, 2 usage); the sink commands are ctl_sinks.h's.
 */
#ifndef IDBMOUNT_CTL_COMMANDS_H
#define IDBMOUNT_CTL_COMMANDS_H

struct ctl;

int ctl_cmd_client(struct ctl *c, int argc, char **argv);
int ctl_cmd_pipeline(struct ctl *c, int argc, char **argv);
int ctl_cmd_mkstore(struct ctl *c, int argc, char **argv);
int ctl_cmd_put(struct ctl *c, int argc, char **argv);
int ctl_cmd_get(struct ctl *c, int argc, char **argv);
int ctl_cmd_rm(struct ctl *c, int argc, char **argv);
int ctl_cmd_ls(struct ctl *c, int argc, char **argv);
int ctl_cmd_log(struct ctl *c, int argc, char **argv);
int ctl_cmd_import(struct ctl *c, int argc, char **argv);

#endif
