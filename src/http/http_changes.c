/* http_changes.c - GET /v1/changes?since=SEQ&limit=N: the global change log
 * as JSON lines, for pipelines that poll (a Flink or NiFi source). Needs a
 * pipeline token (idbmountctl pipeline add).
 *
 * Each line is rendered by the one change-line renderer (changeline.c), so
 * it is byte for byte what the sinks and `idbmountctl log` produce. The
 * answer streams: the content callback reads the log a page at a time on
 * the connection's own thread, so a large limit never sits in memory.
 * limit defaults to 1000 and goes up to 1,000,000; a poller continues from
 * the last line's seq. The answer ends at the log's end as it was when the
 * request came, so a busy log cannot keep one answer open for ever.
 */
#include "http_handlers.h"

#include "idbmount/codec/changeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHANGES_DEFAULT_LIMIT 1000
#define CHANGES_MAX_LIMIT     1000000
#define CHANGES_PAGE          256

struct changes_stream {
	struct http *h;
	int64_t since;     /* last seq rendered */
	int64_t until;     /* the log's end when the request came */
	int64_t remaining; /* lines still allowed */
	struct buf out;
	size_t out_off;
	bool failed;
};

static int render_line(void *ctx, const struct store_change *c)
{
	struct changes_stream *cs = ctx;
	if (c->seq > cs->until)
		return 1;
	const char *node = http_server_config(cs->h)->node;
	if (changeline_render(&cs->out, c, node ? node : "idbmount")) {
		cs->failed = true;
		return 1;
	}
	cs->since = c->seq;
	cs->remaining--;
	return 0;
}

static ssize_t changes_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct changes_stream *cs = cls;
	if (cs->out_off == cs->out.len) {
		buf_reset(&cs->out);
		cs->out_off = 0;
		if (cs->remaining <= 0 || cs->since >= cs->until || cs->failed)
			return MHD_CONTENT_READER_END_OF_STREAM;
		struct store *st = http_store(cs->h);
		int64_t page = cs->remaining < CHANGES_PAGE ? cs->remaining : CHANGES_PAGE;
		int64_t got =
		        st ? store_changes_since(st, cs->since, page, 0, render_line, cs) : -1;
		if (got < 0) {
			/* The status line has gone out: all that can be done is to
			 * end the answer early; the poller resumes from its last
			 * line. */
			fprintf(stderr, "idbmount: /v1/changes: %s\n",
			        st ? store_last_error(st) : "no store");
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
		if (got == 0 || cs->out.len == 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
	}
	size_t take = cs->out.len - cs->out_off;
	if (take > max)
		take = max;
	memcpy(buf, cs->out.data + cs->out_off, take);
	cs->out_off += take;
	return (ssize_t)take;
}

static void changes_free(void *cls)
{
	struct changes_stream *cs = cls;
	buf_free(&cs->out);
	free(cs);
}

enum MHD_Result http_changes(struct http_request *r)
{
	int64_t since = 0, limit = 0;
	if (http_query_count(r, "since", 0, 0, INT64_MAX, &since) ||
	    http_query_count(r, "limit", 1, CHANGES_DEFAULT_LIMIT, CHANGES_MAX_LIMIT, &limit))
		return MHD_YES;
	struct store *st = http_store(r->server);
	int64_t until = st ? store_last_seq(st) : -1;
	if (until < 0)
		return http_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
		                        "the change log cannot be read");
	struct changes_stream *cs = calloc(1, sizeof(*cs));
	if (!cs)
		return MHD_NO;
	cs->h = r->server;
	cs->since = since;
	cs->until = until;
	cs->remaining = limit;
	/* A page of lines; a single line may be as large as a record. */
	buf_init(&cs->out, 64u * 1024 * 1024);
	struct MHD_Response *resp = MHD_create_response_from_callback(
	        MHD_SIZE_UNKNOWN, 64 * 1024, changes_read, cs, changes_free);
	if (!resp) {
		changes_free(cs);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/x-ndjson");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	return http_queue(r, MHD_HTTP_OK, resp);
}
