/* http_route.c - a request from its headers to its handler: the query
 * checked, the route and method found in the table, the token checked,
 * the body admitted or refused, then the route's handler called.
 *
 * Who may ask what (src/DESIGN.md, "Tokens and who may ask what"):
 *   - a client token (idbmountctl client add) reaches /v1/schema, push,
 *     pull and events, for its own tree; naming another client (the
 *     optional "client" member or ?client=) is 403 whether or not that
 *     client exists, and a database or store the client lacks is 404
 *     whether or not another client has one, so nothing tells alice what
 *     bob has;
 *   - a pipeline token (idbmountctl pipeline add) reaches /v1/changes only
 *     (403 elsewhere); a client token on /v1/changes is 403, since the
 *     change log holds every client's data;
 *   - /, /idbmount.js, /idbmount.d.ts, /healthz and /metrics need no token
 *     (/metrics carries no client, database or store names);
 *   - the token is sent as "Authorization: Bearer TOKEN"; /v1/events also
 *     takes ?access_token=TOKEN (RFC 6750 2.3), because a browser's
 *     EventSource cannot set headers.
 *
 *
 * Query parameters are each given once (400 otherwise).
 */
#include "http_handlers.h"
#include "http_server_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The parameters a query may hold: more is no request of this protocol. */
#define QUERY_MAX_PARAMS 32

struct query_scan {
	const char *keys[QUERY_MAX_PARAMS];
	size_t nkeys;
	const char *why; /* the first problem, NULL while none */
	char name[64];   /* the parameter it is about */
};

static enum MHD_Result scan_query_param(void *cls, enum MHD_ValueKind kind, const char *key,
                                        size_t key_size, const char *value, size_t value_size)
{
	(void)kind;
	struct query_scan *q = cls;
	const char *why = NULL;
	if (strlen(key) != key_size || (value && strlen(value) != value_size))
		why = "holds U+0000 (%00)";
	for (size_t i = 0; !why && i < q->nkeys; i++)
		if (strcmp(q->keys[i], key) == 0)
			why = "is given more than once";
	if (!why && q->nkeys == QUERY_MAX_PARAMS)
		why = "is one parameter too many";
	if (why) {
		q->why = why;
		snprintf(q->name, sizeof(q->name), "%s", key);
		return MHD_NO;
	}
	q->keys[q->nkeys++] = key;
	return MHD_YES;
}

/* Handlers read a parameter by name (http_query): the first of a repeated
 * one, up to its first NUL. A query holding either is refused (400), so no
 * check can pass on one value while the request acts on another
 * (?client=alice&client=bob). Replies and returns false when refused. */
static bool query_acceptable(struct http_request *r)
{
	struct query_scan q = {.nkeys = 0, .why = NULL};
	MHD_get_connection_values_n(r->conn, MHD_GET_ARGUMENT_KIND, scan_query_param, &q);
	if (!q.why)
		return true;
	http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", "the query parameter '%s' %s",
	                 q.name, q.why);
	return false;
}

/* ---- routing ---------------------------------------------------------------------- */

/* A route: its path, its method, whether it needs a token, and the
 * handler that answers it once the request is whole. */
struct route_entry {
	const char *path;
	const char *method; /* GET (HEAD too) or POST */
	enum http_route route;
	bool token;
	enum MHD_Result (*handler)(struct http_request *r);
};

static const struct route_entry routes[] = {
        {"/v1/schema", "POST", ROUTE_SCHEMA, true, http_sync_schema},
        {"/v1/push", "POST", ROUTE_PUSH, true, http_sync_push},
        {"/v1/pull", "GET", ROUTE_PULL, true, http_sync_pull},
        {"/v1/events", "GET", ROUTE_EVENTS, true, http_events},
        {"/v1/changes", "GET", ROUTE_CHANGES, true, http_changes},
        {"/metrics", "GET", ROUTE_METRICS, false, http_metrics},
        {"/healthz", "GET", ROUTE_HEALTHZ, false, http_healthz},
};

/* Finds the route of `url`; *method_ok says whether `method` fits it. */
static const struct route_entry *route_find(const char *url, const char *method, bool *method_ok)
{
	for (size_t i = 0; i < sizeof(routes) / sizeof(*routes); i++) {
		if (strcmp(url, routes[i].path) != 0)
			continue;
		*method_ok = strcmp(method, routes[i].method) == 0 ||
		             (strcmp(routes[i].method, "GET") == 0 && strcmp(method, "HEAD") == 0);
		return &routes[i];
	}
	return NULL;
}

/* ---- tokens ------------------------------------------------------------------------------ */

/* The bearer token of the request (borrowed) or NULL. */
static const char *bearer_token(struct http_request *r)
{
	const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                               MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth) {
		if (strncasecmp(auth, "Bearer ", 7) != 0)
			return NULL;
		auth += 7;
		while (*auth == ' ')
			auth++;
		return *auth ? auth : NULL;
	}
	if (r->route == ROUTE_EVENTS)
		return http_query(r, "access_token");
	return NULL;
}

/* Checks the token for the route; replies and returns false when refused. */
static bool authorize(struct http_request *r)
{
	const char *token = bearer_token(r);
	if (!token) {
		http_reply_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized",
		                 "send the token from 'idbmountctl client add' as "
		                 "'Authorization: Bearer TOKEN'");
		return false;
	}
	struct store *st = http_store(r->server);
	if (!st) {
		http_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
		                 "the store cannot be opened");
		return false;
	}
	int rc = store_sync_auth(st, token, &r->who);
	if (rc == -EACCES) {
		http_reply_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized", "unknown token");
		return false;
	}
	if (rc) {
		http_reply_store_error(r, st, rc);
		return false;
	}
	bool pipeline_route = r->route == ROUTE_CHANGES;
	if (pipeline_route && r->who.kind != PRINCIPAL_PIPELINE) {
		http_reply_error(r, MHD_HTTP_FORBIDDEN, "forbidden",
		                 "/v1/changes needs a pipeline token (idbmountctl pipeline add)");
		return false;
	}
	if (!pipeline_route && r->who.kind != PRINCIPAL_CLIENT) {
		http_reply_error(r, MHD_HTTP_FORBIDDEN, "forbidden",
		                 "a pipeline token reads /v1/changes only");
		return false;
	}
	/* A request may name its client (?client=); only its own. */
	const char *named = http_query(r, "client");
	if (named && r->who.kind == PRINCIPAL_CLIENT) {
		char *own = NULL;
		rc = store_sync_client_name(st, r->who.id, &own);
		bool same = rc == 0 && strcmp(own, named) == 0;
		free(own);
		if (!same) {
			http_reply_error(r, MHD_HTTP_FORBIDDEN, "forbidden",
			                 "this token reaches its own client's tree only");
			return false;
		}
	}
	return true;
}

/* ---- a request's steps --------------------------------------------------------- */

/* First call for a request: everything that can be decided from the
 * headers. Returns MHD_YES with r->replied set when it answered. */
enum MHD_Result http_on_headers(struct http_request *r)
{
	if (http_refuse_host(r))
		return MHD_YES;
	if (!http_origin_allowed(r))
		return http_reply_error(r, MHD_HTTP_FORBIDDEN, "forbidden_origin",
		                        "this origin may not call the endpoint (see idbmount "
		                        "--allow-origin)");
	if (strcmp(r->method, "OPTIONS") == 0) {
		r->route = ROUTE_PREFLIGHT;
		return http_reply_preflight(r);
	}
	if (!query_acceptable(r))
		return MHD_YES;
	bool method_ok = false;
	const struct route_entry *e = route_find(r->url, r->method, &method_ok);
	if (!e) {
		bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
		r->route = get && http_static_exists(r->url) ? ROUTE_STATIC : ROUTE_NONE;
		if (r->route == ROUTE_STATIC) {
			http_refuse_body(r);
			return MHD_YES;
		}
		return http_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
	}
	r->route = e->route;
	if (!method_ok)
		return http_reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
		                        "%s takes %s", e->path, e->method);
	/* Nothing of a body is read before its route, its size and its
	 * token have been checked: bodies are only for POST routes, which
	 * all need a token. */
	bool takes_body = strcmp(e->method, "POST") == 0;
	if (!takes_body && http_refuse_body(r))
		return MHD_YES;
	if (e->token && !authorize(r))
		return MHD_YES;
	if (takes_body)
		http_admit_body(r);
	/* Answered in the last call, once the request has been read whole:
	 * an answer queued earlier closes the connection. */
	return MHD_YES;
}

enum MHD_Result http_dispatch(struct http_request *r)
{
	if (r->route == ROUTE_STATIC)
		return http_static(r);
	for (size_t i = 0; i < sizeof(routes) / sizeof(*routes); i++)
		if (routes[i].route == r->route)
			return routes[i].handler(r);
	return http_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
}
