/* http.h - the sync endpoint (src/DESIGN.md, "Sync protocol") as the
 * daemon's main() drives it: libmicrohttpd inside the idbmount process.
 *
 * Two steps, because the daemon forks when it detaches from the terminal
 * and threads do not survive a fork: http_prepare (before mounting) checks
 * the options, reads the TLS files and binds the listening socket, so a
 * busy port or a missing key fails on the terminal; http_start (after
 * detaching) starts the server threads.
 */
#ifndef IDBMOUNT_HTTP_H
#define IDBMOUNT_HTTP_H

#include "idbmount/util/buf.h"

#include <stdbool.h>
#include <stddef.h>

#define HTTP_DEFAULT_LISTEN          "127.0.0.1:8750"
#define HTTP_DEFAULT_MAX_BODY        (32u * 1024 * 1024)
#define HTTP_DEFAULT_TIMEOUT_S       30
#define HTTP_DEFAULT_MAX_CONNECTIONS 0 /* what the descriptor limit leaves */
#define HTTP_DEFAULT_THREADS         4
#define HTTP_DEFAULT_KEEPALIVE_S     15
/* The default of max_buffered, the budget of all bodies being read, in
 * bodies of max_body: as many as there are server threads to work on them.
 * max_buffered is at least max_body. */
#define HTTP_BUFFERED_BODIES HTTP_DEFAULT_THREADS

/* Appends Prometheus text lines to `out` for /metrics (e.g. the flusher's
 * per-sink lag); returns 0 or -errno. Called on a server thread. */
typedef int (*http_metrics_fn)(void *ctx, struct buf *out);

struct http_config {
	const char *datadir;
	/* "ADDR:PORT" ("127.0.0.1:8750", "0.0.0.0:80", "[::1]:8750") or "none"
	 * (no HTTP at all). */
	const char *listen;
	const char *tls_cert_file; /* PEM; both or neither */
	const char *tls_key_file;
	/* Comma-separated origins ("https://app.example.com") allowed to call
	 * from other pages (CORS), or "*" for any; NULL or "": only the
	 * daemon's own pages (same origin). */
	const char *allow_origins;
	/* Comma-separated host names the daemon answers for besides the
	 * address it listens on (the Host header behind a proxy); NULL or
	 * "": none. */
	const char *server_names;
	size_t max_body;          /* bytes of a request body (413 beyond) */
	size_t max_buffered;      /* all bodies at once (503 beyond); 0: the default */
	size_t max_record;        /* the store's record cap (-o max_record); 0 default */
	unsigned timeout_s;       /* an idle or stalled connection is closed */
	/* Connections open at once; more are answered 503 and closed. 0: the
	 * descriptor limit (RLIMIT_NOFILE) less what the daemon keeps for
	 * SQLite, FUSE and sinks. http_prepare fails when it is over that. */
	unsigned max_connections;
	unsigned threads;         /* polling threads, each with its own SQLite */
	unsigned keepalive_s;     /* comment on idle event streams */
	const char *node;         /* this machine in change lines */
	http_metrics_fn extra_metrics;
	void *extra_metrics_ctx;
};

/* Fills `cfg` with the defaults above (datadir and node left NULL). */
void http_config_defaults(struct http_config *cfg);

struct http;
struct watch;
struct shown;

/* Checks `cfg` (copied), reads the TLS files and binds the socket. With
 * listen "none", *out is NULL and 0 is returned. Returns 0 or -errno with
 * a message in `err`. */
int http_prepare(const struct http_config *cfg, struct http **out, char *err, size_t errlen);

/* Starts serving; event streams follow `watch`; a push or schema call
 * answers once `shown` (shown.h; NULL: at once) says the mount shows it.
 * Returns 0 or -errno. */
int http_start(struct http *h, struct watch *watch, struct shown *shown, char *err, size_t errlen);

/* Ends every event stream, stops the server and frees it (NULL is fine). */
void http_stop(struct http *h);

/* The port actually bound (for listen "127.0.0.1:0"). */
unsigned http_port(const struct http *h);

#endif
