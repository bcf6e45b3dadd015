/* http_host.c - the Host and Origin checks, and CORS preflights: what
 * is decided before a request's route is looked at.
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
#include "http_server_internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define PREFLIGHT_MAX_S "600"
#define ALLOWED_METHODS "GET, POST, OPTIONS"
#define ALLOWED_HEADERS "Authorization, Content-Type, Last-Event-ID"

/* ---- the Host header ------------------------------------------------------------------ */

/* A name as a Host header carries it, to compare: lowercase, without the
 * trailing dot of a fully qualified name. Returns false when it is no
 * host name (letters, digits, '-', '_' and inner dots). */
bool http_host_name_normal(char *name)
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
	if (!v6 && http_host_name_normal(name) && strcmp(name, "localhost") == 0)
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
	if (!v6 && http_host_name_normal(normal))
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
bool http_refuse_host(struct http_request *r)
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
bool http_origin_allowed(struct http_request *r)
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

enum MHD_Result http_reply_preflight(struct http_request *r)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, "Access-Control-Allow-Methods", ALLOWED_METHODS);
	MHD_add_response_header(resp, "Access-Control-Allow-Headers", ALLOWED_HEADERS);
	MHD_add_response_header(resp, "Access-Control-Max-Age", PREFLIGHT_MAX_S);
	return http_queue(r, MHD_HTTP_NO_CONTENT, resp);
}
