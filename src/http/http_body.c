/* http_body.c - request bodies: refused or admitted from the headers,
 * read within --max-body and within the budget of all bodies being read.
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
 *     waits for the others.
 */
#include "http_server_internal.h"

#include <stdlib.h>
#include <string.h>

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
	size_t now = atomic_load(&h->counters.body_buffered);
	do {
		if (n > h->cfg.max_buffered - now)
			return false;
	} while (!atomic_compare_exchange_weak(&h->counters.body_buffered, &now, now + n));
	r->body_reserved += n;
	return true;
}

/* Frees what `r` holds of its body and gives its part of the budget back. */
void http_body_drop(struct http_request *r)
{
	buf_free(&r->body);
	atomic_fetch_sub(&r->server->counters.body_buffered, r->body_reserved);
	r->body_reserved = 0;
}

/* For a route that takes no body: refuses a request that announces one
 * (413), before any of it is read. Returns whether it replied. */
bool http_refuse_body(struct http_request *r)
{
	uint64_t length = 0;
	if (body_framing(r, &length) == BODY_NONE)
		return false;
	atomic_fetch_add(&r->server->counters.body_rejected, 1);
	http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
	                 "%s %s takes no request body", r->method, r->url);
	return true;
}

/* For a route that takes a body, once its token passed: refuses one
 * announced over max_body (413) or past what the budget has left (503,
 * Retry-After), before any of it is read, and takes the budget for the
 * rest. Returns whether it replied. */
bool http_admit_body(struct http_request *r)
{
	struct http *h = r->server;
	uint64_t length = 0;
	if (body_framing(r, &length) != BODY_LENGTH)
		return false; /* none, or chunked: taken piece by piece */
	if (length > h->cfg.max_body) {
		atomic_fetch_add(&h->counters.body_rejected, 1);
		http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
		                 "the body is over the limit of %zu bytes", h->cfg.max_body);
		return true;
	}
	if (budget_take(r, (size_t)length))
		return false;
	atomic_fetch_add(&h->counters.body_deferred, 1);
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
void http_body_append(struct http_request *r, const char *data, size_t n)
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
		http_body_drop(r);
}

/* The answer to a body that body_append dropped. */
enum MHD_Result http_reply_body_dropped(struct http_request *r)
{
	struct http *h = r->server;
	if (r->body_state == BODY_TOO_LARGE) {
		atomic_fetch_add(&h->counters.body_rejected, 1);
		return http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
		                        "the body is over the limit of %zu bytes", h->cfg.max_body);
	}
	atomic_fetch_add(&h->counters.body_deferred, 1);
	return http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
	                        "the daemon was reading as many request bodies as it takes at "
	                        "once (--max-buffered %zu bytes); retry",
	                        h->cfg.max_buffered);
}
