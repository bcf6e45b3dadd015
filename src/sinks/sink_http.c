/* sink_http.c - the http sink: one POST per batch, for Flume's HTTP source
 * (JSONHandler), NiFi ListenHTTP and any HTTP collector (libcurl).
 *
 * format = flume-json: the body is what Flume's JSONHandler reads, a JSON
 *   array of {"headers":{...},"body":"<the change line>"} (header values
 *   are strings: seq, client, db, store, op, so Flume's multiplexing
 *   selectors can route on them), Content-Type application/json with
 *   charset UTF-8. The batch's max_records (default 100, the memory
 *   channel's transactionCapacity) keeps a POST within one channel
 *   transaction.
 * format = jsonl: the change lines as they are, Content-Type
 *   application/x-ndjson (NiFi ListenHTTP, Vector, Logstash ...).
 * Both send the headers `filename` (the batch's unique name: NiFi makes it
 *   the flowfile's name), X-Idbmount-Batch, -First-Seq, -Last-Seq, -Count,
 *   and the configured `header = Name: value` lines.
 *
 * Answers: 2xx is delivery. No answer, 408, 429 and 5xx (Flume says 503
 * when its channel is full) are retried with the flusher's backoff. Any
 * other status (400 bad body, 401/403, 404 wrong path, 413 too large) is
 * an answer about this batch that will not change: the batch is parked
 * (SINK_ERROR), the others go on, and `idbmountctl sink unpark NAME`
 * sends it again once the receiver is fixed.
 *
 * One step, no staging: a POST cannot be taken back or looked up, so a
 * crash between the receiver's 2xx and the commit of the delivery sends
 * that one batch again at the next start (recover answers REDO), and a
 * lost answer is retried: at least once on the wire. X-Idbmount-Batch is
 * the idempotency key: the batch's name (node, store epoch, replay
 * generation, first and last seq), which the intent fixes before the
 * first attempt, so every retry and the redo after a crash send the same
 * key with the same body. Receivers that must not see a batch twice keep
 * the keys they committed and drop a repeat (answering 2xx); a replay
 * (`idbmountctl sink replay`) is a wish to ship again and has new keys.
 */
#include "curl_client.h"

#include "idbmount/codec/json_text.h"
#include "idbmount/sinks/config.h"
#include "idbmount/sinks/sink.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* In the order of the option's choices. */
enum http_format {
	FORMAT_FLUME_JSON,
	FORMAT_JSONL,
};

struct http_sink {
	/* Bound from the options (http_options), with the client's. */
	struct curl_client client;
	const char *url;
	int format; /* enum http_format */
	struct sink_strings header_lines;

	struct curl_slist *headers; /* configured ones and Content-Type */
	struct buf body;
};

/* Appends one event of the Flume JSONHandler body. */
static int append_event(struct buf *out, const char *line, size_t len)
{
	/* The header values come from the line itself, which the one
	 * renderer made: parse it rather than carry the fields twice, with
	 * the reader that reads what the writers write (U+0000 in a value,
	 * integers past 64 bits); a line that does not parse fails the
	 * batch rather than go out without the headers a selector routes
	 * on. */
	json_t *doc = json_text_parse(line, len, NULL, 0);
	if (!doc)
		return -EINVAL;
	int rc = buf_append_str(out, "{\"headers\":{");
	if (!rc) {
		char seq[32];
		snprintf(seq, sizeof(seq), "%lld",
		         (long long)json_integer_value(json_object_get(doc, "seq")));
		rc = buf_append_str(out, "\"seq\":");
		if (!rc)
			rc = json_text_string(out, seq, strlen(seq));
		static const char *const fields[] = {"client", "db", "store", "op"};
		for (size_t i = 0; i < 4 && !rc; i++) {
			const json_t *v = json_object_get(doc, fields[i]);
			if (!json_is_string(v))
				continue;
			rc = buf_printf(out, ",\"%s\":", fields[i]);
			if (!rc)
				rc = json_text_string(out, json_string_value(v),
				                      json_string_length(v));
		}
	}
	json_decref(doc);
	if (!rc)
		rc = buf_append_str(out, "},\"body\":");
	if (!rc)
		rc = json_text_string(out, line, len);
	if (!rc)
		rc = buf_append_char(out, '}');
	return rc;
}

static int build_body(struct http_sink *h, const struct sink_batch *b)
{
	buf_reset(&h->body);
	if (h->format == FORMAT_JSONL)
		return buf_append(&h->body, b->data, b->len);
	int rc = buf_append_char(&h->body, '[');
	size_t start = 0;
	for (size_t i = 0; i < b->lines && !rc; i++) {
		size_t end = b->line_ends[i];
		if (i)
			rc = buf_append_char(&h->body, ',');
		if (!rc) /* the line without its "\n" */
			rc = append_event(&h->body, b->data + start, end - start - 1);
		start = end;
	}
	if (!rc)
		rc = buf_append_char(&h->body, ']');
	return rc;
}

static enum sink_result http_deliver(void *ctx, const struct sink_batch *b, char *msg,
                                     size_t msg_len)
{
	struct http_sink *h = ctx;
	if (!b->data || b->lines == 0) {
		snprintf(msg, msg_len, "refusing to send an empty batch %s", b->name);
		return SINK_ERROR;
	}
	int rc = build_body(h, b);
	if (rc) {
		snprintf(msg, msg_len, "building the body of %s: %s", b->name,
		         rc == -EINVAL ? "a change line does not parse as JSON" : strerror(-rc));
		return SINK_ERROR;
	}
	char lines[5][300];
	snprintf(lines[0], sizeof(lines[0]), "filename: %s", b->name);
	snprintf(lines[1], sizeof(lines[1]), "X-Idbmount-Batch: %s", b->name);
	snprintf(lines[2], sizeof(lines[2]), "X-Idbmount-First-Seq: %lld", (long long)b->first_seq);
	snprintf(lines[3], sizeof(lines[3]), "X-Idbmount-Last-Seq: %lld", (long long)b->last_seq);
	snprintf(lines[4], sizeof(lines[4]), "X-Idbmount-Count: %zu", b->lines);
	struct curl_slist *headers = NULL;
	for (int i = 0; i < 5; i++) {
		struct curl_slist *more = curl_slist_append(headers, lines[i]);
		if (!more) {
			curl_slist_free_all(headers);
			snprintf(msg, msg_len, "out of memory");
			return SINK_RETRY;
		}
		headers = more;
	}
	/* The configured ones last, so they can add to ours. */
	for (struct curl_slist *p = h->headers; p; p = p->next) {
		struct curl_slist *more = curl_slist_append(headers, p->data);
		if (!more) {
			curl_slist_free_all(headers);
			snprintf(msg, msg_len, "out of memory");
			return SINK_RETRY;
		}
		headers = more;
	}
	struct curl_response r;
	curl_client_request(&h->client, "POST", h->url, headers, h->body.data, h->body.len, &r);
	char what[400];
	snprintf(what, sizeof(what), "POST %s (%s)", h->url, b->name);
	enum sink_result res = curl_client_classify(&r, what, msg, msg_len);
	curl_response_free(&r);
	curl_slist_free_all(headers);
	return res;
}

static enum sink_result http_recover(void *ctx, const struct sink_batch *b, bool staged,
                                     enum sink_recovery *found, char *msg, size_t msg_len)
{
	(void)ctx;
	(void)b;
	(void)staged;
	(void)msg;
	(void)msg_len;
	/* A POST leaves nothing to look up: send it again. */
	*found = SINK_RECOVER_REDO;
	return SINK_OK;
}

/* "Name: value": a token, a colon, and no line breaks. */
static bool check_header(const char *value, char *why, size_t why_len)
{
	const char *colon = strchr(value, ':');
	bool ok = colon && colon != value;
	for (const char *p = value; ok && p < colon; p++)
		ok = (*p > 0x20 && *p < 0x7f && !strchr("()<>@,;\\\"/[]?={}", *p));
	for (const char *p = value; ok && *p; p++)
		ok = *p != '\r' && *p != '\n';
	if (!ok)
		snprintf(why, why_len, "'%s' is not a 'Name: value' header", value);
	return ok;
}

static const struct sink_option http_options[] = {
        {.name = "url",
         .kind = SINK_OPT_URL,
         .help = "where batches are POSTed, e.g. http://flume:5140/",
         SINK_BIND(struct http_sink, url)},
        {.name = "format",
         .kind = SINK_OPT_CHOICE,
         .default_value = "flume-json",
         .help = "flume-json: Flume JSONHandler events; jsonl: the change lines",
         .choices = "flume-json|jsonl",
         SINK_BIND(struct http_sink, format)},
        {.name = "header",
         .kind = SINK_OPT_STRING,
         .default_value = "",
         .help = "an extra request header 'Name: value' (repeatable)",
         .repeatable = true,
         .check = check_header,
         SINK_BIND(struct http_sink, header_lines)},
        CURL_CLIENT_OPTIONS(struct http_sink),
        {0},
};

static void http_cancel(void *ctx)
{
	struct http_sink *h = ctx;
	curl_client_cancel(&h->client);
}

static void http_close(void *ctx)
{
	struct http_sink *h = ctx;
	if (!h)
		return;
	curl_client_cleanup(&h->client);
	curl_slist_free_all(h->headers);
	buf_free(&h->body);
	sink_options_unbind(http_options, h);
	free(h);
}

static int http_init(const struct sink_config *cfg, void **ctx, char *err, size_t err_len)
{
	struct http_sink *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	int rc = sink_options_bind(cfg, http_options, h);
	if (!rc)
		rc = curl_client_init(&h->client, err, err_len);
	if (rc) {
		if (rc == -ENOMEM)
			snprintf(err, err_len, "out of memory");
		sink_options_unbind(http_options, h);
		free(h);
		return rc;
	}
	/* The body of a batch is at most max_bytes of lines, each escaped
	 * (at most 6 bytes per byte) and wrapped with its headers. */
	buf_init(&h->body,
	         (size_t)cfg->max_bytes * 6 + (size_t)cfg->max_records * 1024 + 64u * 1024 * 1024);
	h->headers = curl_slist_append(NULL, h->format == FORMAT_JSONL
	                                             ? "Content-Type: application/x-ndjson"
	                                             : "Content-Type: application/json; "
	                                               "charset=UTF-8");
	for (size_t i = 0; h->headers && i < h->header_lines.n; i++) {
		struct curl_slist *more = curl_slist_append(h->headers, h->header_lines.values[i]);
		if (!more) {
			curl_slist_free_all(h->headers);
			h->headers = NULL;
		}
		h->headers = more;
	}
	if (!h->headers) {
		http_close(h);
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	*ctx = h;
	return 0;
}

const struct sink_type sink_type_http = {
        .name = "http",
        .summary = "one POST per batch (Flume HTTP source, NiFi ListenHTTP, collectors)",
        .options = http_options,
        .files = false,
        .default_max_records = 100,
        .init = http_init,
        .stage = NULL,
        .deliver = http_deliver,
        .recover = http_recover,
        .close_period = NULL,
        .cancel = http_cancel,
        .close = http_close,
};
