/* http_request.h - what a handler of the sync endpoint may use: the
 * request, replies, query parameters, its thread's store and what it needs
 * of the server. The handlers (http_sync.c, http_events.c, http_changes.c,
 * http_metrics.c, http_static.c; http_handlers.h) see the server through
 * this alone; the server's own files (http_server_internal.h) implement it
 * and route to the handlers through a table (http_route.c).
 *
 * Every handler gets a `struct http_request` whose body (for POST) has been
 * read in full and whose token has been checked, and answers with exactly
 * one http_reply_* call (or a streamed response of its own).
 */
#ifndef IDBMOUNT_HTTP_REQUEST_H
#define IDBMOUNT_HTTP_REQUEST_H

#include "idbmount/http/http.h"
#include "idbmount/store/store.h"
#include "idbmount/store/store_sinks.h"
#include "idbmount/store/store_sync.h"
#include "idbmount/util/buf.h"

#include <microhttpd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Routes, for dispatch and for the request counters on /metrics. */
enum http_route {
	ROUTE_NONE,
	ROUTE_STATIC,
	ROUTE_HEALTHZ,
	ROUTE_METRICS,
	ROUTE_SCHEMA,
	ROUTE_PUSH,
	ROUTE_PULL,
	ROUTE_EVENTS,
	ROUTE_CHANGES,
	ROUTE_PREFLIGHT,
	ROUTE_COUNT
};

enum http_status_class { STATUS_2XX, STATUS_3XX, STATUS_4XX, STATUS_5XX, STATUS_CLASSES };

/* The server's counters, for /metrics. */
struct http_counters {
	atomic_ullong requests[ROUTE_COUNT][STATUS_CLASSES];
	atomic_ullong mutations_ok, mutations_conflict, mutations_replayed;
	atomic_ullong bytes_in;
	atomic_llong connections;
	atomic_ullong connections_total;
	atomic_ullong connections_refused; /* 503: past --max-connections */
	atomic_ullong body_rejected;
	atomic_ullong body_deferred; /* 503: the budget of bodies was spent */
	atomic_size_t body_buffered; /* bytes reserved by bodies being read */
};

struct http;
struct http_events;
struct watch;
struct shown;

struct http_request {
	struct http *server;
	struct MHD_Connection *conn;
	enum http_route route;
	const char *method;
	const char *url;
	char allow_origin[512]; /* echoed in Access-Control-Allow-Origin */
	struct store_principal who;
	struct buf body;
	size_t body_reserved; /* of the server's body_buffered, given back at the end */
	bool replied;
	bool close_connection; /* the answer says Connection: close */
	enum { BODY_TAKEN, BODY_TOO_LARGE, BODY_OVER_BUDGET } body_state;
};

/* ---- the server, as handlers see it (http_server.c) ---- */

/* This thread's store connection (opened on first use), or NULL after a
 * message on stderr. */
struct store *http_store(struct http *h);
/* The connection every push writes through (store_sync.h). */
struct store_writer *http_push_writer(struct http *h);
const struct http_config *http_server_config(const struct http *h);
struct http_counters *http_server_counters(struct http *h);
/* The watch to poke after a write, so it shows sooner (may be NULL). */
struct watch *http_server_watch(struct http *h);
/* How far the daemon's mount shows the store (shown.h; may be NULL). */
struct shown *http_server_shown(struct http *h);
/* The event streams (http_events.c), NULL before they started. */
struct http_events *http_server_events(struct http *h);
/* Counts pushed mutations for /metrics. */
void http_count_mutations(struct http *h, int64_t ok, int64_t conflicts, int64_t replayed);

/* ---- replies (http_reply.c) ---- each queues exactly one response. */

/* Adds the headers every response carries: CORS for an allowed origin,
 * nosniff. */
void http_common_headers(struct http_request *r, struct MHD_Response *resp);
enum MHD_Result http_queue(struct http_request *r, unsigned status, struct MHD_Response *resp);
/* Replies with a copy of `len` bytes of `content_type`. */
enum MHD_Result http_reply(struct http_request *r, unsigned status, const char *content_type,
                           const void *data, size_t len);
enum MHD_Result http_reply_json(struct http_request *r, unsigned status, const json_t *value);
/* {error, detail} with `error` a short code ("bad_request") and the detail
 * for a person. */
enum MHD_Result http_reply_error(struct http_request *r, unsigned status, const char *error,
                                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Maps a store failure (-errno and store_last_error) to its reply. */
enum MHD_Result http_reply_store_error(struct http_request *r, struct store *st, int rc);

/* A query parameter, or NULL. */
const char *http_query(struct http_request *r, const char *name);
/* An integer query parameter from `min` to `max`: 0 ok (*out = `fallback`
 * when absent), -EINVAL after replying 400 with the range. */
int http_query_count(struct http_request *r, const char *name, int64_t min, int64_t fallback,
                     int64_t max, int64_t *out);

#endif
