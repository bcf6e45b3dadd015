/* http_server_internal.h - what the server's own files share: the
 * server, and the steps of a request (src/http/http_server.c says which
 * file does which). Handlers never include this: they see the server
 * through http_request.h.
 */
#ifndef IDBMOUNT_HTTP_SERVER_INTERNAL_H
#define IDBMOUNT_HTTP_SERVER_INTERNAL_H

#include "http_request.h"

#include <pthread.h>

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
	struct store_writer *push_writer; /* every push writes through it */
	struct http_events *events;
	struct watch *watch; /* poked after each write, so it shows sooner */
	struct shown *shown; /* how far the mount shows the store (may be NULL) */
	struct http_counters counters;
	unsigned fd_limit;       /* RLIMIT_NOFILE when prepared */
	unsigned fd_reserve;     /* of it, kept for all but connections */
	unsigned over_cap_slots; /* connections past the cap answered 503 */
};

/* ---- Host and origin (http_host.c) ---- */

/* A name as a Host header carries it, to compare: lowercase, without the
 * trailing dot of a fully qualified name. Returns false when it is no
 * host name (letters, digits, '-', '_' and inner dots). */
bool http_host_name_normal(char *name);
/* Refuses a request whose Host does not name this daemon (421), or that
 * has none (400). Returns whether it replied. */
bool http_refuse_host(struct http_request *r);
/* Decides on the request's Origin header: false when it is refused;
 * fills r->allow_origin for an allowed other origin. */
bool http_origin_allowed(struct http_request *r);
/* 204 to a CORS preflight. */
enum MHD_Result http_reply_preflight(struct http_request *r);

/* ---- bodies (http_body.c) ---- */

/* For a route that takes no body: refuses a request that announces one
 * (413). Returns whether it replied. */
bool http_refuse_body(struct http_request *r);
/* For a route that takes a body, once its token passed: refuses one
 * announced over max_body (413) or past the budget (503). Returns whether
 * it replied. */
bool http_admit_body(struct http_request *r);
/* Appends a piece of the body within max_body and the budget. */
void http_body_append(struct http_request *r, const char *data, size_t n);
/* Frees what `r` holds of its body and gives its part of the budget back. */
void http_body_drop(struct http_request *r);
/* The answer to a body that http_body_append dropped. */
enum MHD_Result http_reply_body_dropped(struct http_request *r);

/* ---- routing (http_route.c) ---- */

/* First call for a request: everything that can be decided from the
 * headers (Host, origin, query, route, method, token, body size). Returns
 * MHD_YES with r->replied set when it answered. */
enum MHD_Result http_on_headers(struct http_request *r);
/* Once the request is whole: its route's handler answers. */
enum MHD_Result http_dispatch(struct http_request *r);

#endif
