/* http_sync.c - POST /v1/schema, POST /v1/push, GET /v1/pull.
 *
 * The store checks and applies (store_sync.h); this file parses bodies,
 * renders answers and counts. Answers:
 *   schema  {db, version, stores:[{name, keyPath, autoIncrement, indexes}]}
 *   push    {results:[{id, status:"ok", rev, seq[, key]} |
 *                     {id, status:"conflict", current:{rev, value, deleted}}]}
 *   pull    {changes:[{db, store, key, op, value, rev, seq, origin}],
 *            checkpoint, more, epoch[, delivered]}
 * A pull's change has no value for a delete (as in the change line); the
 * epoch changes only when the data directory is made anew, so a browser
 * that sees another epoch knows its checkpoint means nothing here.
 * Pull's limit: 500 by default, at most 10000 changes, and an answer stops
 * growing past PULL_SOFT_BYTES (more is then true). A push's answer is
 * rendered here from the store's results (store_push_result), the first
 * time and on a retry alike, and may take PUSH_ANSWER_BODIES x --max-body:
 * past that the push is 413 and nothing of it is applied.
 */
#include "http_handlers.h"
#include "http_push_body.h"

#include "idbmount/store/watch.h"
#include "idbmount/util/shown.h"

#include "idbmount/codec/json_text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PULL_DEFAULT_LIMIT 500
#define PULL_MAX_LIMIT     10000
#define PULL_SOFT_BYTES    (8u * 1024 * 1024)
#define PULL_HARD_BYTES    (256u * 1024 * 1024)
/* A push's answer may take this many of --max-body. */
#define PUSH_ANSWER_BODIES 4

/* Parses the body as a JSON object; replies 400 and returns NULL when it is
 * not one. */
static json_t *body_object(struct http_request *r)
{
	char why[256];
	json_t *doc =
	        http_parse_object(r->body.data ? r->body.data : "", r->body.len, why, sizeof(why));
	if (!doc)
		http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", why);
	return doc;
}

/* A body may name its client ("client"); only the token's own. Replies 403
 * (400 for a name holding U+0000) and returns false otherwise. */
static bool own_client(struct http_request *r, struct store *st, const json_t *doc)
{
	const json_t *named = json_object_get(doc, "client");
	if (!named)
		return true;
	if (json_is_string(named) && !json_text_c_string(named)) {
		http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
		                 "the client name holds U+0000, which a name cannot hold");
		return false;
	}
	char *own = NULL;
	bool same = json_is_string(named) && store_sync_client_name(st, r->who.id, &own) == 0 &&
	            strcmp(own, json_string_value(named)) == 0;
	free(own);
	if (!same)
		http_reply_error(r, MHD_HTTP_FORBIDDEN, "forbidden",
		                 "this token reaches its own client's tree only");
	return same;
}

static struct store *store_or_reply(struct http_request *r)
{
	struct store *st = http_store(r->server);
	if (!st)
		http_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
		                 "the store cannot be opened");
	return st;
}

/* src/DESIGN.md, "The tree": a change that arrives over HTTP is visible to
 * the next read on the mount at once. The daemon's notifier invalidates
 * the kernel's caches a few milliseconds after a commit; answer only once
 * it has, so a client that looks at the mount after the answer sees what
 * it wrote. The notifier runs in this process and signals its progress
 * (shown.h): the wait reads nothing from the store. A stuck notifier delays
 * an answer by at most a second of no progress, never fails it. */
#define SHOWN_IDLE_MS 1000

static void wait_shown(struct http_request *r, int64_t seq, int64_t tree_id)
{
	watch_poke(http_server_watch(r->server));
	shown_wait(http_server_shown(r->server), seq, tree_id, SHOWN_IDLE_MS);
}

enum MHD_Result http_sync_schema(struct http_request *r)
{
	struct store *st = store_or_reply(r);
	json_t *doc = st ? body_object(r) : NULL;
	if (!doc)
		return MHD_YES;
	enum MHD_Result res = MHD_YES;
	if (own_client(r, st, doc)) {
		json_t *answer = NULL;
		int rc = store_sync_schema(st, r->who.id, doc, &answer);
		if (!rc)
			wait_shown(r, 0, store_last_tree_id(st));
		res = rc ? http_reply_store_error(r, st, rc)
		         : http_reply_json(r, MHD_HTTP_OK, answer);
		json_decref(answer);
	}
	json_decref(doc);
	return res;
}

/* A push's answer, {"results":[...]}, rendered as the store hands over
 * each result. */
struct push_answer {
	struct buf b;
	bool full; /* an append passed the cap */
};

/* Renders one result: {id, status:"ok", rev, seq[, key]} or
 * {id, status:"conflict", current:{rev, value, deleted}}. */
static int push_result(void *ctx, size_t index, const struct store_push_result *res)
{
	struct push_answer *a = ctx;
	struct buf *b = &a->b;
	int rc = buf_append_str(b, index ? ",{\"id\":" : "{\"id\":");
	if (!rc)
		rc = json_text_string(b, res->id, res->id_len);
	if (!rc && res->status == STORE_PUSH_OK)
		rc = buf_printf(b, ",\"status\":\"ok\",\"rev\":%lld,\"seq\":%lld",
		                (long long)res->rev, (long long)res->seq);
	if (!rc && res->status == STORE_PUSH_OK && res->has_key)
		rc = buf_printf(b, ",\"key\":%lld", (long long)res->key);
	if (!rc && res->status == STORE_PUSH_CONFLICT)
		rc = buf_printf(b, ",\"status\":\"conflict\",\"current\":{\"rev\":%lld,\"value\":",
		                (long long)res->rev);
	if (!rc && res->status == STORE_PUSH_CONFLICT)
		rc = res->value ? buf_append(b, res->value, res->value_len)
		                : buf_append_str(b, "null");
	if (!rc && res->status == STORE_PUSH_CONFLICT)
		rc = buf_printf(b, ",\"deleted\":%s}", res->deleted ? "true" : "false");
	if (!rc)
		rc = buf_append_char(b, '}');
	a->full = rc == -EFBIG;
	return rc;
}

/* Applies the mutations and answers. The answer is capped (a conflict
 * carries its record's value, up to the record cap, so an answer is not
 * bounded by the body): past PUSH_ANSWER_BODIES request bodies' worth, the
 * push is refused (413) and nothing is applied. */
static enum MHD_Result push_apply(struct http_request *r, struct store *st,
                                  const struct http_push_body *body)
{
	size_t max_body = http_server_config(r->server)->max_body;
	struct push_answer answer = {.b = BUF_INIT(max_body * PUSH_ANSWER_BODIES)};
	struct store_push_outcome out;
	int rc = buf_append_str(&answer.b, "{\"results\":[");
	if (!rc)
		rc = store_sync_push(st, http_push_writer(r->server), r->who.id, body->mutations,
		                     body->count, push_result, &answer, &out);
	if (!rc) {
		rc = buf_append_str(&answer.b, "]}\n");
		answer.full = rc == -EFBIG;
	}
	enum MHD_Result res;
	if (answer.full) {
		res = http_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large",
		                       "the answer to these %zu mutations would be over %zu bytes "
		                       "(the values of conflicting records); nothing was applied: "
		                       "push fewer mutations at once",
		                       body->count, answer.b.max);
	} else if (rc && out.malformed) {
		char why[256];
		http_push_body_malformed(r->body.data, body, out.malformed_index, out.malformed_why,
		                         why, sizeof(why));
		res = http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", why);
	} else if (rc) {
		res = http_reply_store_error(r, st, rc);
	} else {
		http_count_mutations(r->server, out.ok, out.conflicts, out.replayed);
		wait_shown(r, out.last_seq, 0);
		res = http_reply(r, MHD_HTTP_OK, "application/json", answer.b.data, answer.b.len);
	}
	buf_free(&answer.b);
	return res;
}

enum MHD_Result http_sync_push(struct http_request *r)
{
	struct store *st = store_or_reply(r);
	if (!st)
		return MHD_YES;
	struct http_push_body body;
	char why[256];
	int rc = http_push_body_read(r->body.data ? r->body.data : "", r->body.len, &body, why,
	                             sizeof(why));
	if (rc) {
		http_push_body_free(&body);
		return rc == -EINVAL
		               ? http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", why)
		               : http_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
		                                  "%s", strerror(-rc));
	}
	enum MHD_Result res = MHD_YES;
	if (!own_client(r, st, body.doc))
		; /* replied 403 */
	else if (!body.mutations)
		res = http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
		                       "want {mutations:[...]}");
	else
		res = push_apply(r, st, &body);
	http_push_body_free(&body);
	return res;
}

struct pull_out {
	struct buf *b;
	int64_t n;
	int rc;
};

static int pull_field(struct buf *b, const char *name, const char *value)
{
	int rc = buf_append_str(b, name);
	return rc ? rc : json_text_string(b, value, strlen(value));
}

/* Renders one change; stops the pull once the answer is big enough. */
static int pull_change(void *ctx, const struct store_change *c)
{
	struct pull_out *o = ctx;
	struct buf *b = o->b;
	int rc = buf_append_str(b, o->n ? ",{" : "{");
	if (!rc)
		rc = pull_field(b, "\"db\":", c->db);
	if (!rc)
		rc = pull_field(b, ",\"store\":", c->objstore);
	if (!rc)
		rc = buf_append_str(b, ",\"key\":");
	if (!rc)
		rc = buf_append_str(b, c->key);
	if (!rc)
		rc = buf_printf(b, ",\"op\":\"%s\"", c->deleted ? "delete" : "put");
	if (!rc && !c->deleted && c->value) {
		rc = buf_append_str(b, ",\"value\":");
		if (!rc)
			rc = buf_append_str(b, c->value);
	}
	if (!rc)
		rc = buf_printf(b, ",\"rev\":%lld,\"seq\":%lld,\"origin\":\"%s\"}",
		                (long long)c->rev, (long long)c->seq, store_origin_name(c->origin));
	if (rc) {
		o->rc = rc;
		return 1;
	}
	o->n++;
	return b->len >= PULL_SOFT_BYTES;
}

enum MHD_Result http_sync_pull(struct http_request *r)
{
	struct store *st = store_or_reply(r);
	if (!st)
		return MHD_YES;
	int64_t since = 0, limit = 0;
	if (http_query_count(r, "since", 0, 0, INT64_MAX, &since) ||
	    http_query_count(r, "limit", 1, PULL_DEFAULT_LIMIT, PULL_MAX_LIMIT, &limit))
		return MHD_YES;
	struct buf b;
	buf_init(&b, PULL_HARD_BYTES);
	struct pull_out o = {.b = &b};
	int64_t checkpoint = since;
	bool more = false;
	int rc = buf_append_str(&b, "{\"changes\":[");
	if (!rc)
		rc = store_sync_pull(st, r->who.id, since, limit, pull_change, &o, &checkpoint,
		                     &more);
	if (!rc)
		rc = o.rc;
	if (!rc)
		rc = buf_printf(&b, "],\"checkpoint\":%lld,\"more\":%s,\"epoch\":\"%s\"",
		                (long long)checkpoint, more ? "true" : "false", store_epoch(st));
	int64_t delivered = 0;
	if (!rc && store_sinks_delivered(st, &delivered) == 0)
		rc = buf_printf(&b, ",\"delivered\":%lld", (long long)delivered);
	if (!rc)
		rc = buf_append_str(&b, "}\n");
	enum MHD_Result res = rc ? http_reply_store_error(r, st, rc)
	                         : http_reply(r, MHD_HTTP_OK, "application/json", b.data, b.len);
	buf_free(&b);
	return res;
}
