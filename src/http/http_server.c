/* http.c - the sync endpoint's server: options, the listening socket,
 * libmicrohttpd's threads, routing, tokens, CORS, limits and replies.
 *
 * Threads. libmicrohttpd runs a small pool of polling threads (epoll), each
 * serving many connections; a request handler runs on the thread of its
 * connection and uses that thread's own SQLite connection (store.h: one
 * per thread). Event streams do not hold a thread: a stream with nothing
 * to send is suspended and resumed by the events thread (http_events.c),
 * so a thousand idle browsers cost a thousand sockets and small buffers,
 * not a thousand threads.
 *
 * Limits (decisions; src/DESIGN.md, "Limits, the Host check and the body
 * budget", sums them up):
 *   - only POST routes (/v1/schema, /v1/push) take a body; any other
 *     request that announces one is refused (413) before it is read, and
 *     a POST's body is read only after its token passed;
 *   - a request body is read into memory up to max_body (32 MiB default,
 *     --max-body): above, 413 - at once from Content-Length when the
 *     client sent one, else once the body has been read;
 *   - the bodies being read, all connections together, share a budget
 *     (max_buffered, --max-buffered; default 4 x max_body, as many full
 *     bodies as there are server threads to work on them): a body
 *     announced past what is left is refused at once, a chunked one
 *     once it passes it, with 503 and Retry-After (the browser library
 *     retries with backoff). Refusing rather than waiting keeps a
 *     connection from holding a thread or part of the budget while it
 *     waits for the others;
 *   - a connection idle (or stalled mid-request) for timeout_s (30 s,
 *     --http-timeout) is closed; a suspended event stream does not count
 *     as idle (it is kept alive by comments every keepalive_s);
 *   - at most max_connections (4096) connections at once; further ones
 *     wait in the kernel's backlog. libmicrohttpd bounds each
 *     connection's header memory (32 KiB).
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
 * Host (decision): a request is served only when its Host names the
 * daemon (host_names_us: the address and port it listens on, localhost on
 * a loopback address, the names of --server-name), else 421 before
 * anything else, so a DNS-rebinding page, whose Host is its own name,
 * reaches nothing. Query parameters are each given once (400 otherwise).
 *
 * CORS (decision): by default only the daemon's own pages may call it (the
 * demo page and apps served elsewhere through a proxy on the same origin).
 * --allow-origin adds origins (or "*"). A request whose Origin header is
 * neither its own origin nor allowed is refused with 403 before anything
 * else, so a page on another site cannot even probe the endpoint; an
 * allowed one gets Access-Control-Allow-Origin echoing its origin (never
 * "*", and no credentials: tokens are headers, not cookies). Preflights
 * (OPTIONS) are answered 204 with the methods and headers the protocol
 * uses, cached for 10 minutes.
 */
#include "http_internal.h"

#include "idbmount/codec/json_text.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG  1024
#define PREFLIGHT_MAX_S "600"
#define TLS_FILE_MAX    (1024 * 1024)
#define ALLOWED_METHODS "GET, POST, OPTIONS"
#define ALLOWED_HEADERS "Authorization, Content-Type, Last-Event-ID"
#define EXPOSED_HEADERS "Content-Type"

void http_config_defaults(struct http_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->listen = HTTP_DEFAULT_LISTEN;
	cfg->max_body = HTTP_DEFAULT_MAX_BODY;
	cfg->timeout_s = HTTP_DEFAULT_TIMEOUT_S;
	cfg->max_connections = HTTP_DEFAULT_MAX_CONNECTIONS;
	cfg->threads = HTTP_DEFAULT_THREADS;
	cfg->keepalive_s = HTTP_DEFAULT_KEEPALIVE_S;
}

/* ---- the store of this thread -------------------------------------------- */

static void close_thread_store(void *p)
{
	store_close(p);
}

struct store *http_store(struct http *h)
{
	struct store *st = pthread_getspecific(h->store_key);
	if (st)
		return st;
	char err[512];
	if (store_open(h->cfg.datadir, &st, err, sizeof(err)) != 0) {
		fprintf(stderr, "idbmount: http: %s\n", err);
		return NULL;
	}
	if (h->cfg.max_record)
		store_set_max_record(st, h->cfg.max_record);
	pthread_setspecific(h->store_key, st);
	return st;
}

const struct http_config *http_server_config(const struct http *h)
{
	return &h->cfg;
}

void http_count_mutations(struct http *h, int64_t ok, int64_t conflicts, int64_t replayed)
{
	atomic_fetch_add(&h->mutations_ok, (unsigned long long)ok);
	atomic_fetch_add(&h->mutations_conflict, (unsigned long long)conflicts);
	atomic_fetch_add(&h->mutations_replayed, (unsigned long long)replayed);
}

/* ---- replies ----------------------------------------------------------------- */

static enum http_status_class status_class(unsigned status)
{
	return status >= 500   ? STATUS_5XX
	       : status >= 400 ? STATUS_4XX
	       : status >= 300 ? STATUS_3XX
	                       : STATUS_2XX;
}

void http_common_headers(struct http_request *r, struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (r->allow_origin[0]) {
		MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->allow_origin);
		MHD_add_response_header(resp, "Access-Control-Expose-Headers", EXPOSED_HEADERS);
		MHD_add_response_header(resp, "Vary", "Origin");
	}
}

enum MHD_Result http_queue(struct http_request *r, unsigned status, struct MHD_Response *resp)
{
	if (!resp)
		return MHD_NO;
	http_common_headers(r, resp);
	enum MHD_Result res = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	if (res == MHD_YES) {
		r->replied = true;
		atomic_fetch_add(&r->server->requests[r->route][status_class(status)], 1);
	}
	return res;
}

enum MHD_Result http_reply(struct http_request *r, unsigned status, const char *content_type,
                           const void *data, size_t len)
{
	struct MHD_Response *resp =
	        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	if (content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return http_queue(r, status, resp);
}

enum MHD_Result http_reply_json(struct http_request *r, unsigned status, const json_t *value)
{
	struct buf b;
	buf_init(&b, 256u * 1024 * 1024);
	int rc = json_text_compact(&b, value);
	if (!rc)
		rc = buf_append_char(&b, '\n');
	enum MHD_Result res;
	if (rc)
		res = http_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
		                       "the answer could not be written: %s", strerror(-rc));
	else
		res = http_reply(r, status, "application/json", b.data, b.len);
	buf_free(&b);
	return res;
}

enum MHD_Result http_reply_error(struct http_request *r, unsigned status, const char *error,
                                 const char *fmt, ...)
{
	char detail[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	struct buf b;
	buf_init(&b, 8192);
	buf_append_str(&b, "{\"error\":");
	json_text_string(&b, error, strlen(error));
	buf_append_str(&b, ",\"detail\":");
	/* The detail may quote the request (a Host, an id cut to 64 bytes). */
	json_text_string_lossy(&b, detail, strlen(detail));
	buf_append_str(&b, "}\n");
	struct MHD_Response *resp =
	        MHD_create_response_from_buffer(b.len, b.data, MHD_RESPMEM_MUST_COPY);
	buf_free(&b);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		                        "Bearer realm=\"idbmount\"");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
		                        r->route == ROUTE_SCHEMA || r->route == ROUTE_PUSH
		                                ? "POST, OPTIONS"
		                                : "GET, HEAD, OPTIONS");
	return http_queue(r, status, resp);
}

enum MHD_Result http_reply_store_error(struct http_request *r, struct store *st, int rc)
{
	const char *why = st ? store_last_error(st) : "";
	if (!why[0])
		why = strerror(-rc);
	switch (rc) {
	case -EINVAL:
		return http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", why);
	case -ENOENT:
		return http_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "%s", why);
	case -EFBIG:
		return http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", "%s",
		                        why);
	case -EEXIST:
		return http_reply_error(r, MHD_HTTP_CONFLICT, "conflict", "%s", why);
	case -EBUSY:
		return http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
		                        "the store is busy; retry: %s", why);
	case -ENOSPC:
		return http_reply_error(r, MHD_HTTP_INSUFFICIENT_STORAGE, "insufficient_storage",
		                        "%s", why);
	default:
		fprintf(stderr, "idbmount: http: %s %s: %s\n", r->method, r->url, why);
		return http_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal", "%s", why);
	}
}

/* ---- query parameters ----------------------------------------------------------- */

const char *http_query(struct http_request *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

int http_query_count(struct http_request *r, const char *name, int64_t fallback, int64_t max,
                     int64_t *out)
{
	const char *v = http_query(r, name);
	*out = fallback;
	if (!v)
		return 0;
	char *end = NULL;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (!*v || *end || errno || n < 0 || n > max || v[0] == '+' || v[0] == ' ') {
		http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
		                 "%s must be a whole number from 0 to %lld", name, (long long)max);
		return -EINVAL;
	}
	*out = n;
	return 0;
}

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

struct route_entry {
	const char *path;
	const char *method; /* GET (HEAD too) or POST */
	enum http_route route;
	bool token;
};

static const struct route_entry routes[] = {
        {"/v1/schema", "POST", ROUTE_SCHEMA, true},  {"/v1/push", "POST", ROUTE_PUSH, true},
        {"/v1/pull", "GET", ROUTE_PULL, true},       {"/v1/events", "GET", ROUTE_EVENTS, true},
        {"/v1/changes", "GET", ROUTE_CHANGES, true}, {"/metrics", "GET", ROUTE_METRICS, false},
        {"/healthz", "GET", ROUTE_HEALTHZ, false},
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

/* ---- the Host header ------------------------------------------------------------------ */

/* A name as a Host header carries it, to compare: lowercase, without the
 * trailing dot of a fully qualified name. Returns false when it is no
 * host name (letters, digits, '-', '_' and inner dots). */
static bool host_name_normal(char *name)
{
	size_t n = strlen(name);
	if (n && name[n - 1] == '.')
		name[--n] = '\0';
	if (n == 0 || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (c >= 'A' && c <= 'Z')
			name[i] = (char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
		           c == '_' || (c == '.' && name[i - 1] != '.')))
			return false;
	}
	return true;
}

/* Splits a Host header into its name (an IPv6 literal without brackets)
 * and port (0 when absent). Returns false when it is not NAME[:PORT] or
 * [V6][:PORT]. */
static bool host_split(const char *host, char *name, size_t name_len, unsigned *port, bool *v6)
{
	const char *end;
	*v6 = host[0] == '[';
	if (*v6) {
		host++;
		end = strchr(host, ']');
		if (!end)
			return false;
	} else {
		end = host + strcspn(host, ":");
	}
	size_t n = (size_t)(end - host);
	if (n == 0 || n >= name_len)
		return false;
	memcpy(name, host, n);
	name[n] = '\0';
	const char *rest = end + (*v6 ? 1 : 0);
	*port = 0;
	if (!*rest)
		return true;
	if (*rest != ':' || !rest[1] || strlen(rest + 1) > 5 ||
	    rest[1 + strspn(rest + 1, "0123456789")])
		return false;
	unsigned long p = strtoul(rest + 1, NULL, 10);
	*port = (unsigned)p;
	return p >= 1 && p <= 65535;
}

/* The local address the connection came in on, IPv4-mapped IPv6 as IPv4.
 * Returns false when it cannot be read. */
static bool local_address(struct http_request *r, struct sockaddr_storage *out)
{
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	socklen_t len = sizeof(*out);
	if (!ci || getsockname(ci->connect_fd, (struct sockaddr *)out, &len) != 0)
		return false;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)out;
	if (out->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
		struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = a6->sin6_port};
		memcpy(&a4.sin_addr, &a6->sin6_addr.s6_addr[12], 4);
		memcpy(out, &a4, sizeof(a4));
	}
	return true;
}

/* Whether `name` (a Host's name) is the IP literal of `local`, or
 * "localhost" while `local` is a loopback address. */
static bool names_local_address(char *name, bool v6, const struct sockaddr_storage *local)
{
	const struct sockaddr_in *a4 = (const struct sockaddr_in *)local;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)local;
	bool loopback = local->ss_family == AF_INET ? (ntohl(a4->sin_addr.s_addr) >> 24) == 127
	                                            : IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
	if (!v6 && host_name_normal(name) && strcmp(name, "localhost") == 0)
		return loopback;
	unsigned char addr[16];
	if (v6)
		return local->ss_family == AF_INET6 && inet_pton(AF_INET6, name, addr) == 1 &&
		       memcmp(addr, &a6->sin6_addr, 16) == 0;
	return local->ss_family == AF_INET && inet_pton(AF_INET, name, addr) == 1 &&
	       memcmp(addr, &a4->sin_addr, 4) == 0;
}

/* Whether the request's Host names this daemon: one of --server-name (any
 * port: behind a proxy the port is the proxy's), or, with the port the
 * daemon listens on, the IP literal of the address the connection came in
 * on (on a wildcard listen, each local address) or "localhost" on a
 * loopback address. Anything else is another site's name, as a
 * DNS-rebinding page sends it. */
static bool host_names_us(struct http_request *r, const char *host)
{
	struct http *h = r->server;
	char name[256];
	unsigned port = 0;
	bool v6 = false;
	if (!host_split(host, name, sizeof(name), &port, &v6))
		return false;
	char normal[256];
	memcpy(normal, name, sizeof(normal));
	if (!v6 && host_name_normal(normal))
		for (size_t i = 0; i < h->nserver_names; i++)
			if (strcmp(h->server_names[i], normal) == 0)
				return true;
	unsigned default_port = h->tls_cert ? 443 : 80;
	if ((port ? port : default_port) != h->port)
		return false;
	struct sockaddr_storage local;
	return local_address(r, &local) && names_local_address(name, v6, &local);
}

/* Refuses a request whose Host does not name this daemon (421), or that
 * has none (400). Returns whether it replied. */
static bool refuse_host(struct http_request *r)
{
	const char *host =
	        MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	if (!host) {
		http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
		                 "the request has no Host header");
		return true;
	}
	if (host_names_us(r, host))
		return false;
	http_reply_error(r, MHD_HTTP_MISDIRECTED_REQUEST, "misdirected_request",
	                 "this server does not answer for the host '%.200s': only for the "
	                 "address and port it listens on, localhost on a loopback address, "
	                 "and the names of --server-name",
	                 host);
	return true;
}

/* ---- origins -------------------------------------------------------------------------- */

/* Decides on the request's Origin header. Returns false when it is
 * refused; fills r->allow_origin for an allowed other origin. The Host
 * has been checked (refuse_host): it names this daemon, so a page of
 * that origin is its own, http or https (a proxy in front may end TLS). */
static bool origin_allowed(struct http_request *r)
{
	const char *origin = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Origin");
	if (!origin)
		return true;
	const char *host = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Host");
	const char *schemes[] = {"http://", "https://"};
	for (size_t i = 0; host && i < 2; i++) {
		size_t n = strlen(schemes[i]);
		if (strncasecmp(origin, schemes[i], n) == 0 && strcasecmp(origin + n, host) == 0)
			return true;
	}
	bool ok = r->server->any_origin;
	for (size_t i = 0; !ok && i < r->server->norigins; i++)
		ok = strcasecmp(r->server->origins[i], origin) == 0;
	if (ok && strlen(origin) < sizeof(r->allow_origin))
		snprintf(r->allow_origin, sizeof(r->allow_origin), "%s", origin);
	return ok && r->allow_origin[0];
}

static enum MHD_Result reply_preflight(struct http_request *r)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Access-Control-Allow-Methods", ALLOWED_METHODS);
	MHD_add_response_header(resp, "Access-Control-Allow-Headers", ALLOWED_HEADERS);
	MHD_add_response_header(resp, "Access-Control-Max-Age", PREFLIGHT_MAX_S);
	return http_queue(r, MHD_HTTP_NO_CONTENT, resp);
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

/* ---- request bodies ------------------------------------------------------------------------ */

/* A chunked body takes the budget in steps of this much, not per piece. */
#define BODY_BUDGET_STEP (64u * 1024)

enum body_framing { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };

/* What the headers say of the body: none, *length bytes, or chunked (a
 * Transfer-Encoding: libmicrohttpd takes chunked only). */
static enum body_framing body_framing(struct http_request *r, uint64_t *length)
{
	*length = 0;
	if (MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                MHD_HTTP_HEADER_TRANSFER_ENCODING))
		return BODY_CHUNKED;
	const char *text = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                               MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (text)
		*length = strtoull(text, NULL, 10); /* libmicrohttpd checked it */
	return *length ? BODY_LENGTH : BODY_NONE;
}

/* Takes `n` bytes more of the budget of bodies being read (max_buffered,
 * every connection together) for `r`. Returns false, taking nothing, when
 * they do not fit. */
static bool budget_take(struct http_request *r, size_t n)
{
	struct http *h = r->server;
	size_t now = atomic_load(&h->body_buffered);
	do {
		if (n > h->cfg.max_buffered - now)
			return false;
	} while (!atomic_compare_exchange_weak(&h->body_buffered, &now, now + n));
	r->body_reserved += n;
	return true;
}

/* Frees what `r` holds of its body and gives its part of the budget back. */
static void body_drop(struct http_request *r)
{
	buf_free(&r->body);
	atomic_fetch_sub(&r->server->body_buffered, r->body_reserved);
	r->body_reserved = 0;
}

/* For a route that takes no body: refuses a request that announces one
 * (413), before any of it is read. Returns whether it replied. */
static bool refuse_body(struct http_request *r)
{
	uint64_t length = 0;
	if (body_framing(r, &length) == BODY_NONE)
		return false;
	atomic_fetch_add(&r->server->body_rejected, 1);
	http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
	                 "%s %s takes no request body", r->method, r->url);
	return true;
}

/* For a route that takes a body, once its token passed: refuses one
 * announced over max_body (413) or past what the budget has left (503,
 * Retry-After), before any of it is read, and takes the budget for the
 * rest. Returns whether it replied. */
static bool admit_body(struct http_request *r)
{
	struct http *h = r->server;
	uint64_t length = 0;
	if (body_framing(r, &length) != BODY_LENGTH)
		return false; /* none, or chunked: taken piece by piece */
	if (length > h->cfg.max_body) {
		atomic_fetch_add(&h->body_rejected, 1);
		http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
		                 "the body is over the limit of %zu bytes", h->cfg.max_body);
		return true;
	}
	if (budget_take(r, (size_t)length))
		return false;
	atomic_fetch_add(&h->body_deferred, 1);
	http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
	                 "the daemon is reading as many request bodies as it takes at once "
	                 "(--max-buffered %zu bytes); retry",
	                 h->cfg.max_buffered);
	return true;
}

/* Appends a piece of the body, within max_body and the budget (a chunked
 * body takes more as it comes). A body that goes past either is dropped at
 * once, memory and budget, and the rest of it is read and thrown away;
 * the answer (413, 503) waits for the end of the request. */
static void body_append(struct http_request *r, const char *data, size_t n)
{
	struct http *h = r->server;
	if (r->body_state != BODY_TAKEN)
		return;
	if (n > h->cfg.max_body - r->body.len) {
		r->body_state = BODY_TOO_LARGE;
	} else if (r->body.len + n > r->body_reserved) {
		size_t want = r->body.len + n - r->body_reserved;
		want += BODY_BUDGET_STEP - 1 - (want - 1) % BODY_BUDGET_STEP;
		if (want > h->cfg.max_body - r->body_reserved)
			want = h->cfg.max_body - r->body_reserved;
		if (!budget_take(r, want))
			r->body_state = BODY_OVER_BUDGET;
	}
	if (r->body_state == BODY_TAKEN && buf_append(&r->body, data, n) != 0)
		r->body_state = BODY_OVER_BUDGET; /* out of memory: as busy */
	if (r->body_state != BODY_TAKEN)
		body_drop(r);
}

/* The answer to a body that body_append dropped. */
static enum MHD_Result reply_body_dropped(struct http_request *r)
{
	struct http *h = r->server;
	if (r->body_state == BODY_TOO_LARGE) {
		atomic_fetch_add(&h->body_rejected, 1);
		return http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
		                        "the body is over the limit of %zu bytes", h->cfg.max_body);
	}
	atomic_fetch_add(&h->body_deferred, 1);
	return http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
	                        "the daemon was reading as many request bodies as it takes at "
	                        "once (--max-buffered %zu bytes); retry",
	                        h->cfg.max_buffered);
}

/* ---- the request handler ---------------------------------------------------------------- */

static enum MHD_Result dispatch(struct http_request *r)
{
	switch (r->route) {
	case ROUTE_SCHEMA:
		return http_sync_schema(r);
	case ROUTE_PUSH:
		return http_sync_push(r);
	case ROUTE_PULL:
		return http_sync_pull(r);
	case ROUTE_EVENTS:
		return http_events(r);
	case ROUTE_CHANGES:
		return http_changes(r);
	case ROUTE_METRICS:
		return http_metrics(r);
	case ROUTE_HEALTHZ:
		return http_healthz(r);
	case ROUTE_STATIC:
		return http_static(r);
	default:
		return http_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", "no such endpoint");
	}
}

/* First call for a request: everything that can be decided from the
 * headers. Returns MHD_YES with r->replied set when it answered. */
static enum MHD_Result on_headers(struct http_request *r)
{
	if (refuse_host(r))
		return MHD_YES;
	if (!origin_allowed(r))
		return http_reply_error(r, MHD_HTTP_FORBIDDEN, "forbidden_origin",
		                        "this origin may not call the endpoint (see idbmount "
		                        "--allow-origin)");
	if (strcmp(r->method, "OPTIONS") == 0) {
		r->route = ROUTE_PREFLIGHT;
		return reply_preflight(r);
	}
	if (!query_acceptable(r))
		return MHD_YES;
	bool method_ok = false;
	const struct route_entry *e = route_find(r->url, r->method, &method_ok);
	if (!e) {
		bool get = strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0;
		r->route = get && http_static_exists(r->url) ? ROUTE_STATIC : ROUTE_NONE;
		if (r->route == ROUTE_STATIC) {
			refuse_body(r);
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
	if (!takes_body && refuse_body(r))
		return MHD_YES;
	if (e->token && !authorize(r))
		return MHD_YES;
	if (takes_body)
		admit_body(r);
	/* Answered in the last call, once the request has been read whole:
	 * an answer queued earlier closes the connection. */
	return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	(void)version;
	struct http *h = cls;
	struct http_request *r = *con_cls;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->server = h;
		r->conn = conn;
		r->method = method;
		r->url = url;
		buf_init(&r->body, h->cfg.max_body);
		*con_cls = r;
		return on_headers(r);
	}
	if (r->replied) {
		*upload_data_size = 0; /* answered early: the body is dropped */
		return MHD_YES;
	}
	if (*upload_data_size) {
		atomic_fetch_add(&h->bytes_in, *upload_data_size);
		body_append(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->body_state != BODY_TAKEN)
		return reply_body_dropped(r);
	enum MHD_Result res = dispatch(r);
	/* Answers are copies: the body is no longer needed, and the budget
	 * should not wait for a slow reader of the answer. */
	body_drop(r);
	return res;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
	(void)cls;
	(void)conn;
	(void)why;
	struct http_request *r = *con_cls;
	if (!r)
		return;
	body_drop(r);
	free(r);
	*con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	(void)conn;
	(void)socket_context;
	struct http *h = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		atomic_fetch_add(&h->connections, 1);
		atomic_fetch_add(&h->connections_total, 1);
	} else {
		atomic_fetch_sub(&h->connections, 1);
	}
}

/* ---- setting up -------------------------------------------------------------------------------
 */

static int read_file(const char *path, char **out, char *err, size_t errlen)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (!f) {
		int e = errno;
		snprintf(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	struct buf b;
	buf_init(&b, TLS_FILE_MAX);
	char chunk[4096];
	size_t n;
	int rc = 0;
	while (!rc && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		rc = buf_append(&b, chunk, n);
	if (!rc && ferror(f))
		rc = -EIO;
	fclose(f);
	if (rc || b.len == 0) {
		snprintf(err, errlen, "%s: %s", path, rc ? strerror(-rc) : "empty file");
		buf_free(&b);
		return rc ? rc : -EINVAL;
	}
	*out = buf_take(&b, NULL);
	return 0;
}

/* Splits "ADDR:PORT" / "[V6]:PORT" and binds a listening socket. */
static int bind_listen(struct http *h, char *err, size_t errlen)
{
	const char *spec = h->cfg.listen;
	char host[256];
	const char *colon = strrchr(spec, ':');
	const char *port_text = colon ? colon + 1 : NULL;
	size_t hostlen = colon ? (size_t)(colon - spec) : 0;
	if (!colon || hostlen == 0 || hostlen >= sizeof(host) || !*port_text) {
		snprintf(err, errlen, "--listen %s: want ADDR:PORT, e.g. 127.0.0.1:8750, or none",
		         spec);
		return -EINVAL;
	}
	memcpy(host, spec, hostlen);
	host[hostlen] = '\0';
	char *end = NULL;
	long port = strtol(port_text, &end, 10);
	if (*end || port < 0 || port > 65535) {
		snprintf(err, errlen, "--listen %s: the port is 0 to 65535", spec);
		return -EINVAL;
	}
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	socklen_t sslen;
	bool v6 = host[0] == '[';
	if (v6) {
		if (host[hostlen - 1] != ']') {
			snprintf(err, errlen, "--listen %s: an IPv6 address is written [ADDR]:PORT",
			         spec);
			return -EINVAL;
		}
		host[hostlen - 1] = '\0';
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1) {
			snprintf(err, errlen, "--listen %s: not an IPv6 address", spec);
			return -EINVAL;
		}
		sslen = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
			snprintf(err, errlen,
			         "--listen %s: not an IPv4 address (names are not "
			         "resolved)",
			         spec);
			return -EINVAL;
		}
		sslen = sizeof(*a);
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		int e = errno;
		snprintf(err, errlen, "socket: %s", strerror(e));
		return -e;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
		int e = errno;
		snprintf(err, errlen, "--listen %s: %s", spec, strerror(e));
		close(fd);
		return -e;
	}
	struct sockaddr_storage bound;
	socklen_t boundlen = sizeof(bound);
	getsockname(fd, (struct sockaddr *)&bound, &boundlen);
	h->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
	                                            : ((struct sockaddr_in *)&bound)->sin_port);
	h->listen_fd = fd;
	return 0;
}

/* Appends a copy of `item` to the array *items of *n. */
static int list_add(char ***items, size_t *n, const char *item)
{
	char **grown = realloc(*items, (*n + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	*items = grown;
	if (!(grown[*n] = strdup(item)))
		return -ENOMEM;
	(*n)++;
	return 0;
}

typedef int (*list_item_fn)(struct http *h, char *item, char *err, size_t errlen);

/* Calls `take` on each item of the comma-separated `list` (NULL: none),
 * trimmed of spaces, empty ones too; stops at the first failure. */
static int each_listed(struct http *h, const char *list, list_item_fn take, char *err,
                       size_t errlen)
{
	if (!list || !*list)
		return 0;
	char *copy = strdup(list);
	if (!copy)
		return -ENOMEM;
	int rc = 0;
	for (char *item = copy, *next; item && !rc; item = next) {
		next = strchr(item, ',');
		if (next)
			*next++ = '\0';
		while (*item == ' ')
			item++;
		size_t n = strlen(item);
		while (n && item[n - 1] == ' ')
			item[--n] = '\0';
		rc = take(h, item, err, errlen);
	}
	free(copy);
	return rc;
}

static int take_origin(struct http *h, char *o, char *err, size_t errlen)
{
	size_t n = strlen(o);
	if (n == 0)
		return 0;
	if (strcmp(o, "*") == 0) {
		h->any_origin = true;
		return 0;
	}
	if ((strncmp(o, "http://", 7) != 0 && strncmp(o, "https://", 8) != 0) || o[n - 1] == '/') {
		snprintf(err, errlen,
		         "--allow-origin %s: an origin is scheme://host[:port] with no path, like "
		         "https://app.example.com",
		         o);
		return -EINVAL;
	}
	return list_add(&h->origins, &h->norigins, o);
}

static int take_server_name(struct http *h, char *name, char *err, size_t errlen)
{
	char shown[256];
	snprintf(shown, sizeof(shown), "%s", name);
	if (strlen(name) > 253 || !host_name_normal(name)) {
		snprintf(
		        err, errlen,
		        "--server-name '%s': want host names like app.example.com, comma-separated "
		        "(no scheme, port or path)",
		        shown);
		return -EINVAL;
	}
	return list_add(&h->server_names, &h->nserver_names, name);
}

static void http_free(struct http *h)
{
	if (!h)
		return;
	if (h->listen_fd >= 0)
		close(h->listen_fd);
	for (size_t i = 0; i < h->norigins; i++)
		free(h->origins[i]);
	free(h->origins);
	for (size_t i = 0; i < h->nserver_names; i++)
		free(h->server_names[i]);
	free(h->server_names);
	free(h->tls_cert);
	free(h->tls_key);
	free(h);
}

int http_prepare(const struct http_config *cfg, struct http **out, char *err, size_t errlen)
{
	*out = NULL;
	err[0] = '\0';
	if (!cfg->listen || strcmp(cfg->listen, "none") == 0)
		return 0;
	if (!cfg->tls_cert_file != !cfg->tls_key_file) {
		snprintf(err, errlen, "--tls-cert and --tls-key go together");
		return -EINVAL;
	}
	if (cfg->threads < 1 || cfg->max_connections < 1 || cfg->timeout_s < 1 ||
	    cfg->keepalive_s < 1 || cfg->max_body < 1) {
		snprintf(err, errlen, "HTTP limits must be positive");
		return -EINVAL;
	}
	if (cfg->max_buffered && cfg->max_buffered < cfg->max_body) {
		snprintf(err, errlen,
		         "--max-buffered %zu is below --max-body %zu: a body of the largest size "
		         "could never be read",
		         cfg->max_buffered, cfg->max_body);
		return -EINVAL;
	}
	struct http *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->cfg = *cfg;
	if (!h->cfg.max_buffered)
		h->cfg.max_buffered = cfg->max_body * HTTP_BUFFERED_BODIES;
	h->listen_fd = -1;
	int rc = each_listed(h, cfg->allow_origins, take_origin, err, errlen);
	if (!rc)
		rc = each_listed(h, cfg->server_names, take_server_name, err, errlen);
	if (!rc && cfg->tls_cert_file)
		rc = read_file(cfg->tls_cert_file, &h->tls_cert, err, errlen);
	if (!rc && cfg->tls_key_file)
		rc = read_file(cfg->tls_key_file, &h->tls_key, err, errlen);
	if (!rc && h->tls_cert && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		snprintf(err, errlen, "this libmicrohttpd was built without TLS");
		rc = -ENOTSUP;
	}
	if (!rc)
		rc = bind_listen(h, err, errlen);
	if (rc) {
		http_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

int http_start(struct http *h, struct watch *watch, char *err, size_t errlen)
{
	if (!h)
		return 0;
	if (pthread_key_create(&h->store_key, close_thread_store) != 0) {
		snprintf(err, errlen, "pthread_key_create failed");
		return -ENOMEM;
	}
	h->watch = watch;
	int rc = http_events_start(h, watch);
	if (rc) {
		snprintf(err, errlen, "cannot start the events thread: %s", strerror(-rc));
		return rc;
	}
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
	                 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (h->tls_cert)
		flags |= MHD_USE_TLS;
	struct MHD_OptionItem tls_opts[] = {
	        {MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert},
	        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key},
	        {MHD_OPTION_END, 0, NULL},
	};
	struct MHD_OptionItem no_opts[] = {{MHD_OPTION_END, 0, NULL}};
	h->mhd = MHD_start_daemon(
	        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, h->listen_fd,
	        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)h->cfg.threads, MHD_OPTION_CONNECTION_LIMIT,
	        (unsigned)h->cfg.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
	        (unsigned)h->cfg.timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
	        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_ARRAY,
	        h->tls_cert ? tls_opts : no_opts, MHD_OPTION_END);
	if (!h->mhd) {
		http_events_stop(h);
		http_events_free(h);
		snprintf(err, errlen, "libmicrohttpd did not start on %s%s", h->cfg.listen,
		         h->tls_cert ? " (check the TLS certificate and key)" : "");
		return -EIO;
	}
	h->listen_fd = -1; /* libmicrohttpd owns it now */
	return 0;
}

void http_stop(struct http *h)
{
	if (!h)
		return;
	if (h->mhd) {
		int fd = (int)MHD_quiesce_daemon(h->mhd);
		http_events_stop(h);
		MHD_stop_daemon(h->mhd);
		http_events_free(h);
		if (fd >= 0)
			close(fd);
		pthread_key_delete(h->store_key);
	}
	http_free(h);
}

unsigned http_port(const struct http *h)
{
	return h ? h->port : 0;
}
