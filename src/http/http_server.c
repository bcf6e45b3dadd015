/* http_server.c - the sync endpoint's server: options, the listening
 * socket, libmicrohttpd's threads and connections, and the order of a
 * request's steps.
 *
 * Threads. libmicrohttpd runs a small pool of polling threads (epoll), each
 * serving many connections; a request handler runs on the thread of its
 * connection and uses that thread's own SQLite connection (store.h: one
 * per thread). Event streams do not hold a thread: a stream with nothing
 * to send is suspended and resumed by the events thread (http_events.c),
 * so a thousand idle browsers cost a thousand sockets and small buffers,
 * not a thousand threads.
 *
 * The server's files: this one; http_route.c (from the headers to a
 * handler: query, route table, tokens); http_body.c (request bodies and
 * their budget); http_host.c (Host, Origin, preflights); http_reply.c
 * (replies and query parameters for every handler). The handlers are
 * written against http_request.h and named in http_handlers.h.
 *
 * Limits of connections (src/DESIGN.md, "Limits, the Host check and the
 * body budget"; the bodies' are in http_body.c):
 *   - a connection idle (or stalled mid-request) for timeout_s (30 s,
 *     --http-timeout) is closed; a suspended event stream does not count
 *     as idle (it is kept alive by comments every keepalive_s);
 *   - at most max_connections connections at once (--max-connections;
 *     by default what the descriptor limit leaves, see below). A
 *     connection past the cap is still accepted, up to OVER_CAP_SLOTS of
 *     them at once, and its request is answered 503 {"error":"busy"}
 *     with Retry-After and Connection: close, and counted on /metrics;
 *     past those slots too, connections wait in the kernel's backlog.
 *     libmicrohttpd bounds each connection's header memory (32 KiB).
 *
 * Descriptors. Every connection, an event stream too, holds one socket
 * descriptor; libmicrohttpd uses no other per connection (epoll). The
 * rest of the daemon needs about a hundred whatever the connections: 2
 * for each SQLite connection (the database and its WAL; the shared memory
 * file is one for the process), so 3 for a FUSE worker (with its
 * /dev/fuse clone; up to threads= workers per mount), 2 for each server
 * thread (and its epoll and eventfd), for the events, watch and
 * checkpoint threads and for each sink, which holds its output too. An
 * idle daemon with a view held 49. FD_RESERVE keeps 512 of the limit
 * (RLIMIT_NOFILE, which main() raises to the hard limit) for them, so the
 * default cap is the limit less FD_RESERVE and OVER_CAP_SLOTS: 19,424
 * with a limit of 20,000. The log says the figures at start.
 */
#include "http_handlers.h"
#include "http_server_internal.h"

#include "idbmount/store/store_sync.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define LISTEN_BACKLOG 1024
#define FD_RESERVE     512
#define OVER_CAP_SLOTS 64
/* Our socket context of a connection past the cap (on_connection). */
static char over_cap;
#define TLS_FILE_MAX (1024 * 1024)

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

struct store_writer *http_push_writer(struct http *h)
{
	return h->push_writer;
}

const struct http_config *http_server_config(const struct http *h)
{
	return &h->cfg;
}

struct http_counters *http_server_counters(struct http *h)
{
	return &h->counters;
}

struct watch *http_server_watch(struct http *h)
{
	return h->watch;
}

struct shown *http_server_shown(struct http *h)
{
	return h->shown;
}

struct http_events *http_server_events(struct http *h)
{
	return h->events;
}

void http_count_mutations(struct http *h, int64_t ok, int64_t conflicts, int64_t replayed)
{
	atomic_fetch_add(&h->counters.mutations_ok, (unsigned long long)ok);
	atomic_fetch_add(&h->counters.mutations_conflict, (unsigned long long)conflicts);
	atomic_fetch_add(&h->counters.mutations_replayed, (unsigned long long)replayed);
}

/* ---- the request handler ---------------------------------------------------------------- */

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
		const union MHD_ConnectionInfo *ci =
		        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
		if (ci && ci->socket_context == &over_cap) {
			atomic_fetch_add(&h->counters.connections_refused, 1);
			r->close_connection = true;
			return http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "busy",
			                        "the server has its %u connections open "
			                        "(--max-connections); try again later",
			                        h->cfg.max_connections);
		}
		return http_on_headers(r);
	}
	if (r->replied) {
		*upload_data_size = 0; /* answered early: the body is dropped */
		return MHD_YES;
	}
	if (*upload_data_size) {
		atomic_fetch_add(&h->counters.bytes_in, *upload_data_size);
		http_body_append(r, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (r->body_state != BODY_TAKEN)
		return http_reply_body_dropped(r);
	enum MHD_Result res = http_dispatch(r);
	/* Answers are copies: the body is no longer needed, and the budget
	 * should not wait for a slow reader of the answer. */
	http_body_drop(r);
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
	http_body_drop(r);
	free(r);
	*con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	(void)conn;
	struct http *h = cls;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		long long open = atomic_fetch_add(&h->counters.connections, 1) + 1;
		atomic_fetch_add(&h->counters.connections_total, 1);
		if (open > (long long)h->cfg.max_connections)
			*socket_context = &over_cap;
	} else {
		atomic_fetch_sub(&h->counters.connections, 1);
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

/* Sets cfg.max_connections from the descriptor limit when it is 0 (the
 * default), or checks the one given against it. */
static int fit_descriptor_limit(struct http *h, char *err, size_t errlen)
{
	struct rlimit rl;
	rlim_t limit = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		limit = rl.rlim_cur;
	if (limit > (1u << 24)) /* RLIM_INFINITY or more than any node serves */
		limit = 1u << 24;
	unsigned reserve = limit / 2 < FD_RESERVE ? (unsigned)limit / 2 : FD_RESERVE;
	unsigned over = limit / 16 < OVER_CAP_SLOTS ? (unsigned)limit / 16 : OVER_CAP_SLOTS;
	unsigned most = (unsigned)limit - reserve - over;
	h->fd_limit = (unsigned)limit;
	h->fd_reserve = reserve;
	h->over_cap_slots = over;
	if (!h->cfg.max_connections) {
		h->cfg.max_connections = most;
		return 0;
	}
	if (h->cfg.max_connections > most) {
		snprintf(err, errlen,
		         "--max-connections %u: the descriptor limit %u allows at most %u (one "
		         "descriptor a connection, %u kept for SQLite, FUSE and sinks, %u for "
		         "answering 503 past the cap); raise the limit (ulimit -n, systemd's "
		         "LimitNOFILE=) or ask for fewer",
		         h->cfg.max_connections, h->fd_limit, most, reserve, over);
		return -EINVAL;
	}
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
	if (strlen(name) > 253 || !http_host_name_normal(name)) {
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
	store_writer_free(h->push_writer);
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
	if (cfg->threads < 1 || cfg->timeout_s < 1 || cfg->keepalive_s < 1 || cfg->max_body < 1) {
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
	int rc = fit_descriptor_limit(h, err, errlen);
	if (!rc)
		rc = each_listed(h, cfg->allow_origins, take_origin, err, errlen);
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

/* libmicrohttpd's own messages (a client gone mid-answer, say), marked as
 * the daemon's others are. It must be the first option: messages about
 * the ones before it would go to the standard logger. */
__attribute__((format(printf, 2, 0))) static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	line[strcspn(line, "\n")] = '\0';
	fprintf(stderr, "idbmount: http: %s\n", line);
}

int http_start(struct http *h, struct watch *watch, struct shown *shown, char *err, size_t errlen)
{
	if (!h)
		return 0;
	if (pthread_key_create(&h->store_key, close_thread_store) != 0) {
		snprintf(err, errlen, "pthread_key_create failed");
		return -ENOMEM;
	}
	h->watch = watch;
	h->shown = shown;
	int rc = store_writer_new(h->cfg.datadir, h->cfg.max_record, &h->push_writer);
	if (rc) {
		snprintf(err, errlen, "cannot make the push writer: %s", strerror(-rc));
		return rc;
	}
	rc = http_events_start(h->cfg.datadir, h->cfg.keepalive_s, watch, &h->events);
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
	        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	        MHD_OPTION_LISTEN_SOCKET, h->listen_fd, MHD_OPTION_THREAD_POOL_SIZE,
	        (unsigned)h->cfg.threads, MHD_OPTION_CONNECTION_LIMIT,
	        h->cfg.max_connections + h->over_cap_slots, MHD_OPTION_CONNECTION_TIMEOUT,
	        (unsigned)h->cfg.timeout_s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
	        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h, MHD_OPTION_ARRAY,
	        h->tls_cert ? tls_opts : no_opts, MHD_OPTION_END);
	if (!h->mhd) {
		http_events_stop(h->events);
		http_events_free(h->events);
		h->events = NULL;
		snprintf(err, errlen, "libmicrohttpd did not start on %s%s", h->cfg.listen,
		         h->tls_cert ? " (check the TLS certificate and key)" : "");
		return -EIO;
	}
	h->listen_fd = -1; /* libmicrohttpd owns it now */
	fprintf(stderr,
	        "idbmount: http: connections capped at %u (descriptor limit %u: one descriptor "
	        "a connection or event stream, %u kept for SQLite, FUSE and sinks, %u for "
	        "answering 503 past the cap)\n",
	        h->cfg.max_connections, h->fd_limit, h->fd_reserve, h->over_cap_slots);
	return 0;
}

void http_stop(struct http *h)
{
	if (!h)
		return;
	if (h->mhd) {
		int fd = (int)MHD_quiesce_daemon(h->mhd);
		http_events_stop(h->events);
		MHD_stop_daemon(h->mhd);
		http_events_free(h->events);
		h->events = NULL;
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
