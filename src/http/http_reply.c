/* http_reply.c - replies and query parameters (http_request.h): every
 * response a handler or the server queues goes through http_queue, which
 * adds the common headers and counts it for /metrics; every error is the
 * JSON {error, detail} of src/DESIGN.md, "Errors".
 */
#include "http_server_internal.h"

#include "idbmount/codec/json_text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPOSED_HEADERS "Content-Type"

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
	if (r->close_connection)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result res = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	if (res == MHD_YES) {
		r->replied = true;
		atomic_fetch_add(&r->server->counters.requests[r->route][status_class(status)], 1);
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

int http_query_count(struct http_request *r, const char *name, int64_t min, int64_t fallback,
                     int64_t max, int64_t *out)
{
	const char *v = http_query(r, name);
	*out = fallback;
	if (!v)
		return 0;
	char *end = NULL;
	errno = 0;
	long long n = strtoll(v, &end, 10);
	if (!*v || *end || errno || n < min || n > max || v[0] == '+' || v[0] == ' ') {
		http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
		                 "%s must be a whole number from %lld to %lld", name,
		                 (long long)min, (long long)max);
		return -EINVAL;
	}
	*out = n;
	return 0;
}
