/* http_internal.h - what the files of the sync endpoint share.
 *
 *   http.c          the server: options, socket, threads, routing, tokens,
 *                   CORS, limits, bodies, replies and error bodies
 *   http_sync.c     /v1/schema, /v1/push, /v1/pull
 *   http_events.c   /v1/events (Server-Sent Events) and its fan-out thread
 *   http_changes.c  /v1/changes (change lines for pipelines, streamed)
 *   http_metrics.c  /metrics (Prometheus text) and /healthz
 *   http_static.c   /, /idbmount.js, /idbmount.d.ts (embedded from src/web)
 *
 * Every handler gets a `struct http_request` whose body (for POST) has been
 * read in full and whose token has been checked, and answers with exactly
 * one http_reply_* call (or a streamed response of its own).
 */
#ifndef IDBMOUNT_HTTP_INTERNAL_H
#define IDBMOUNT_HTTP_INTERNAL_H

#include "idbmount/http/http.h"
#include "idbmount/store/store.h"
#include "idbmount/store/store_sinks.h"
#include "idbmount/store/store_sync.h"
#include "idbmount/util/buf.h"

#include <microhttpd.h>
#include <pthread.h>
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

struct http_events;

struct http {
	struct http_config cfg;
	char **origins; /* the allow list, split; NULL = same origin only */
	size_t norigins;
	bool any_origin;
	char **server_names; /* --server-name, lowercase, no trailing dot */
	size_t nserver_names;
	int listen_fd;
	unsigned port;
	char *tls_cert, *tls_key; /* PEM text */
	struct MHD_Daemon *mhd;
	pthread_key_t store_key; /* each server thread's own connection */
	struct http_events *events;
	struct watch *watch; /* poked after each write, so it shows sooner */
	/* counters for /metrics */
	atomic_ullong requests[ROUTE_COUNT][STATUS_CLASSES];
	atomic_ullong mutations_ok, mutations_conflict, mutations_replayed;
	atomic_ullong bytes_in;
	atomic_llong connections;
	atomic_ullong connections_total;
	atomic_ullong body_rejected;
	atomic_ullong body_deferred; /* 503: the budget of bodies was spent */
	atomic_size_t body_buffered; /* bytes reserved by bodies being read */
};

struct http_request {
	struct http *server;
	struct MHD_Connection *conn;
	enum http_route route;
	const char *method;
	const char *url;
	char allow_origin[512]; /* echoed in Access-Control-Allow-Origin */
	struct store_principal who;
	struct buf body;
	size_t body_reserved; /* of server->body_buffered, given back at the end */
	bool replied;
	enum { BODY_TAKEN, BODY_TOO_LARGE, BODY_OVER_BUDGET } body_state;
};

/* This thread's store connection (opened on first use), or NULL after a
 * message on stderr. */
struct store *http_store(struct http *h);

/* The server's configuration, for handlers. */
const struct http_config *http_server_config(const struct http *h);
/* Counts pushed mutations for /metrics. */
void http_count_mutations(struct http *h, int64_t ok, int64_t conflicts, int64_t replayed);

/* ---- replies (http.c) ---- each queues exactly one response. */

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
/* A non-negative integer query parameter: 0 ok (*out = `fallback` when
 * absent), -EINVAL after replying 400. */
int http_query_count(struct http_request *r, const char *name, int64_t fallback, int64_t max,
                     int64_t *out);

/* ---- handlers ---- */
enum MHD_Result http_sync_schema(struct http_request *r);
enum MHD_Result http_sync_push(struct http_request *r);
enum MHD_Result http_sync_pull(struct http_request *r);
enum MHD_Result http_changes(struct http_request *r);
enum MHD_Result http_metrics(struct http_request *r);
enum MHD_Result http_healthz(struct http_request *r);
/* Whether `url` names an embedded file; http_static serves it. */
bool http_static_exists(const char *url);
enum MHD_Result http_static(struct http_request *r);

/* ---- event streams (http_events.c) ---- */
int http_events_start(struct http *h, struct watch *watch);
/* Ends every stream and waits (a while) until they are gone. */
void http_events_stop(struct http *h);
/* After libmicrohttpd has stopped: no request can reach the streams. */
void http_events_free(struct http *h);
enum MHD_Result http_events(struct http_request *r);
/* Open streams, for /metrics. */
long http_events_count(struct http *h);

/* The embedded files (generated by CMake from src/web/). */
struct http_asset {
	const char *path;
	const unsigned char *data;
	size_t len;
};
extern const struct http_asset http_assets[];
extern const size_t http_assets_count;

#endif
