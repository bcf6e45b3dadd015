/* ctl_sinks.h - idbmountctl's sink commands (ctl_sinks.c), called by the
 * command table in ctl.c with the data directory and the arguments after
 * the command's name. Each returns the exit status (0, 1 failed, 2 usage).
 */
#ifndef IDBMOUNT_CTL_SINKS_H
#define IDBMOUNT_CTL_SINKS_H

/* sink list | sink replay NAME --from SEQ [--no-wait] | sink unpark NAME [--id ID] */
int ctl_sink_command(const char *datadir, int argc, char **argv);

/* status [--json] */
int ctl_status_command(const char *datadir, int argc, char **argv);

#endif
