/* flusher.h - ships the change log to the configured sinks (flusher.c). */
#ifndef IDBMOUNT_FLUSHER_H
#define IDBMOUNT_FLUSHER_H

#include "idbmount/util/buf.h"
#include "idbmount/sinks/config.h"

#include <stddef.h>

struct flusher;

/* Builds every sink of `cfg` (its init callback: directories made, URLs
 * parsed) without starting anything, so a bad sink fails before the mount.
 * `cfg` must outlive the flusher. Returns 0 or -errno with `err` set. */
int flusher_new(const struct config *cfg, const char *datadir, struct flusher **out, char *err,
                size_t err_len);

/* Starts one thread per sink (call it in the process that serves: after
 * daemonizing). Returns 0 or -errno with a message on stderr. */
int flusher_start(struct flusher *f);

/* For /metrics (an http_metrics_fn, `ctx` the flusher): per configured
 * sink its lag, deliveries, retries, failures and last error, from the
 * store. 0 or -errno. */
int flusher_metrics(void *ctx, struct buf *out);

/* Asks every sink to deliver what is ready (each open batch, one attempt,
 * for at most a few seconds), joins the threads and frees everything. */
void flusher_stop(struct flusher *f);

#endif
