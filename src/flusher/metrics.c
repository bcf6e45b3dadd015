/* metrics.c - the flusher's part of /metrics: per configured sink its lag,
 * deliveries, retries, failures and last error, as the store keeps them. */
#include "flusher_internal.h"

#include <stdbool.h>

/* A label value in Prometheus text: backslash, quote and newline escaped. */
static int append_label_value(struct buf *out, const char *text)
{
	int rc = 0;
	for (const char *p = text; *p && !rc; p++) {
		if (*p == '\\' || *p == '"')
			rc = buf_append_char(out, '\\');
		if (!rc)
			rc = *p == '\n' ? buf_append_str(out, "\\n") : buf_append_char(out, *p);
	}
	return rc;
}

struct metric {
	const char *name, *type, *help;
};

static const struct metric sink_metrics[] = {
        {"idbmount_sink_lag_changes", "gauge", "Changes in the log after the sink's cursor."},
        {"idbmount_sink_lag_seconds", "gauge", "Age of the oldest change after the cursor."},
        {"idbmount_sink_cursor", "gauge", "Every change up to this seq is handled."},
        {"idbmount_sink_delivered_seq", "gauge", "The pipeline took every change up to this seq."},
        {"idbmount_sink_delivered_batches_total", "counter", "Batches delivered."},
        {"idbmount_sink_delivered_changes_total", "counter", "Changes delivered."},
        {"idbmount_sink_delivered_bytes_total", "counter", "Bytes of change lines delivered."},
        {"idbmount_sink_retries_total", "counter", "Failed attempts that were retried."},
        {"idbmount_sink_failures_total", "counter", "Batches parked as undeliverable."},
        {"idbmount_sink_parked_batches", "gauge", "Batches parked now."},
        {"idbmount_sink_long_lines_total", "counter", "Delivered lines over max_line."},
        {"idbmount_sink_last_error_timestamp_seconds", "gauge",
         "When the last error happened (0: never)."},
        {"idbmount_sink_last_error_info", "gauge",
         "The last error's message (e.g. a WebHDFS RemoteException), value 1."},
};

struct metrics_pass {
	struct buf *out;
	size_t metric;
	int rc;
};

static int metric_line(void *ctx, const struct store_sink *k)
{
	struct metrics_pass *m = ctx;
	/* Sinks the config file no longer names are left out: their lag
	 * would only grow (idbmountctl status still shows them). */
	if (k->removed_ms > 0)
		return 0;
	double values[] = {
	        (double)k->lag_changes,
	        (double)k->lag_ms / 1000,
	        (double)k->cursor,
	        (double)k->delivered_seq,
	        (double)k->delivered_batches,
	        (double)k->delivered_changes,
	        (double)k->delivered_bytes,
	        (double)k->retries,
	        (double)k->failures,
	        (double)k->parked,
	        (double)k->long_lines,
	        (double)k->last_error_ms / 1000,
	        1,
	};
	bool info = m->metric == sizeof(values) / sizeof(*values) - 1;
	if (info && !k->last_error[0])
		return 0;
	int rc = buf_printf(m->out, "%s{sink=\"", sink_metrics[m->metric].name);
	if (!rc)
		rc = append_label_value(m->out, k->name);
	if (!rc)
		rc = buf_printf(m->out, "\",type=\"%s\"", k->type);
	if (!rc && info) {
		rc = buf_append_str(m->out, ",error=\"");
		if (!rc)
			rc = append_label_value(m->out, k->last_error);
		if (!rc)
			rc = buf_append_char(m->out, '"');
	}
	if (!rc)
		rc = buf_printf(m->out, "} %.17g\n", values[m->metric]);
	m->rc = rc;
	return rc;
}

int flusher_metrics(void *ctx, struct buf *out)
{
	struct flusher *f = ctx;
	pthread_mutex_lock(&f->metrics_lock);
	int rc = 0;
	if (!f->metrics_st) {
		char err[512];
		rc = store_open(f->datadir, &f->metrics_st, err, sizeof(err));
	}
	for (size_t i = 0; !rc && i < sizeof(sink_metrics) / sizeof(*sink_metrics); i++) {
		rc = buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", sink_metrics[i].name,
		                sink_metrics[i].help, sink_metrics[i].name, sink_metrics[i].type);
		struct metrics_pass m = {.out = out, .metric = i};
		if (!rc)
			rc = store_sinks_list(f->metrics_st, metric_line, &m);
		if (!rc)
			rc = m.rc;
	}
	pthread_mutex_unlock(&f->metrics_lock);
	return rc;
}
