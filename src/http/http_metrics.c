/* http_metrics.c - GET /metrics (Prometheus text format 0.0.4) and
 * GET /healthz.
 *
 * No token: both are for the machine's operators and monitors, and neither
 * names a client, database or store (per-client labels would tell anyone
 * who can reach the port who the clients are). The daemon listens on
 * loopback by default; exposing the port exposes these totals.
 */
#include "http_handlers.h"

#include <stdio.h>
#include <string.h>

static const char *const route_label[ROUTE_COUNT] = {
        [ROUTE_NONE] = "other",          [ROUTE_STATIC] = "static", [ROUTE_HEALTHZ] = "healthz",
        [ROUTE_METRICS] = "metrics",     [ROUTE_SCHEMA] = "schema", [ROUTE_PUSH] = "push",
        [ROUTE_PULL] = "pull",           [ROUTE_EVENTS] = "events", [ROUTE_CHANGES] = "changes",
        [ROUTE_PREFLIGHT] = "preflight",
};

static const char *const class_label[STATUS_CLASSES] = {"2xx", "3xx", "4xx", "5xx"};

static int metric_head(struct buf *b, const char *name, const char *type, const char *help)
{
	return buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

enum MHD_Result http_metrics(struct http_request *r)
{
	struct http *h = r->server;
	const struct http_config *cfg = http_server_config(h);
	struct http_counters *n = http_server_counters(h);
	struct buf b;
	buf_init(&b, 4u * 1024 * 1024);
	int rc = metric_head(&b, "idbmount_http_requests_total", "counter",
	                     "HTTP requests answered, by endpoint and status class.");
	for (int route = 0; !rc && route < ROUTE_COUNT; route++)
		for (int c = 0; !rc && c < STATUS_CLASSES; c++)
			rc = buf_printf(
			        &b, "idbmount_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
			        route_label[route], class_label[c],
			        (unsigned long long)atomic_load(&n->requests[route][c]));
	if (!rc)
		rc = metric_head(&b, "idbmount_http_connections", "gauge",
		                 "HTTP connections open now.");
	if (!rc)
		rc = buf_printf(&b, "idbmount_http_connections %lld\n",
		                (long long)atomic_load(&n->connections));
	if (!rc)
		rc = metric_head(&b, "idbmount_http_connections_total", "counter",
		                 "HTTP connections accepted.");
	if (!rc)
		rc = buf_printf(&b, "idbmount_http_connections_total %llu\n",
		                (unsigned long long)atomic_load(&n->connections_total));
	if (!rc)
		rc = metric_head(&b, "idbmount_http_connections_refused_total", "counter",
		                 "HTTP connections past --max-connections, answered 503 and "
		                 "closed.");
	if (!rc)
		rc = buf_printf(&b, "idbmount_http_connections_refused_total %llu\n",
		                (unsigned long long)atomic_load(&n->connections_refused));
	if (!rc)
		rc = metric_head(&b, "idbmount_http_max_connections", "gauge",
		                 "The cap of HTTP connections open at once (--max-connections).");
	if (!rc)
		rc = buf_printf(&b, "idbmount_http_max_connections %u\n", cfg->max_connections);
	if (!rc)
		rc = metric_head(&b, "idbmount_http_event_streams", "gauge",
		                 "Server-Sent Event streams open now.");
	if (!rc)
		rc = buf_printf(&b, "idbmount_http_event_streams %ld\n",
		                http_events_count(http_server_events(h)));
	if (!rc)
		rc = metric_head(&b, "idbmount_http_request_body_bytes_total", "counter",
		                 "Bytes of request bodies received.");
	if (!rc)
		rc = buf_printf(&b, "idbmount_http_request_body_bytes_total %llu\n",
		                (unsigned long long)atomic_load(&n->bytes_in));
	if (!rc)
		rc = metric_head(&b, "idbmount_http_bodies_rejected_total", "counter",
		                 "Request bodies refused for being over the limit, or sent to an "
		                 "endpoint that takes none (413).");
	if (!rc)
		rc = buf_printf(&b, "idbmount_http_bodies_rejected_total %llu\n",
		                (unsigned long long)atomic_load(&n->body_rejected));
	if (!rc)
		rc = metric_head(&b, "idbmount_http_bodies_deferred_total", "counter",
		                 "Request bodies refused with 503 because the bodies being read at "
		                 "once had reached --max-buffered.");
	if (!rc)
		rc = buf_printf(&b, "idbmount_http_bodies_deferred_total %llu\n",
		                (unsigned long long)atomic_load(&n->body_deferred));
	if (!rc)
		rc = metric_head(&b, "idbmount_http_request_body_buffered_bytes", "gauge",
		                 "Bytes of request bodies held now (announced or read), of "
		                 "--max-buffered.");
	if (!rc)
		rc = buf_printf(&b, "idbmount_http_request_body_buffered_bytes %zu\n",
		                atomic_load(&n->body_buffered));
	if (!rc)
		rc = metric_head(&b, "idbmount_sync_mutations_total", "counter",
		                 "Pushed mutations answered, by status (replayed: a retried id, "
		                 "answered as the first time).");
	if (!rc)
		rc = buf_printf(&b,
		                "idbmount_sync_mutations_total{status=\"ok\"} %llu\n"
		                "idbmount_sync_mutations_total{status=\"conflict\"} %llu\n"
		                "idbmount_sync_mutations_total{status=\"replayed\"} %llu\n",
		                (unsigned long long)atomic_load(&n->mutations_ok),
		                (unsigned long long)atomic_load(&n->mutations_conflict),
		                (unsigned long long)atomic_load(&n->mutations_replayed));
	struct store *st = http_store(h);
	int64_t seq = st ? store_last_seq(st) : -1;
	if (!rc && seq >= 0) {
		rc = metric_head(&b, "idbmount_changes_last_seq", "gauge",
		                 "The highest sequence number in the change log.");
		if (!rc)
			rc = buf_printf(&b, "idbmount_changes_last_seq %lld\n", (long long)seq);
	}
	if (!rc && cfg->extra_metrics)
		rc = cfg->extra_metrics(cfg->extra_metrics_ctx, &b);
	enum MHD_Result res;
	if (rc)
		res = http_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
		                       "metrics could not be written: %s", strerror(-rc));
	else
		res = http_reply(r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.data,
		                 b.len);
	buf_free(&b);
	return res;
}

/* 200 {"status":"ok", ...} when the store answers a query, else 503. */
enum MHD_Result http_healthz(struct http_request *r)
{
	struct store *st = http_store(r->server);
	int64_t seq = st ? store_last_seq(st) : -1;
	if (seq < 0)
		return http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
		                        "the store does not answer: %s",
		                        st ? store_last_error(st) : "cannot open it");
	char text[256];
	int n = snprintf(text, sizeof(text),
	                 "{\"status\":\"ok\",\"epoch\":\"%s\",\"last_seq\":%lld}\n",
	                 store_epoch(st), (long long)seq);
	return http_reply(r, MHD_HTTP_OK, "application/json", text, (size_t)n);
}
