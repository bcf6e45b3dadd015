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
 * growing past PULL_SOFT_BYTES (more is then true).
 */
#include "http_internal.h"

#include "idbmount/json_text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PULL_DEFAULT_LIMIT 500
#define PULL_MAX_LIMIT     10000
#define PULL_SOFT_BYTES    (8u * 1024 * 1024)
#define PULL_HARD_BYTES    (256u * 1024 * 1024)

/* Parses the body as a JSON object; replies 400 and returns NULL when it is
 * not one. */
static json_t *body_object(struct http_request *r)
{
	char why[200];
	json_t *doc =
	        json_text_parse(r->body.data ? r->body.data : "", r->body.len, why, sizeof(why));
	if (!doc) {
		http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request", "malformed JSON: %s", why);
		return NULL;
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
		                 "the body must be a JSON object");
		return NULL;
	}
	return doc;
}

/* A body may name its client ("client"); only the token's own. Replies 403
 * and returns false otherwise. */
static bool own_client(struct http_request *r, struct store *st, const json_t *doc)
{
	const json_t *named = json_object_get(doc, "client");
	if (!named)
		return true;
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

/* DESIGN.md: a change that arrives over HTTP is visible to the next read
 * on the mount at once. The daemon's notifier invalidates the kernel's
 * caches a few milliseconds after a commit; answer only once it has, so a
 * client that looks at the mount after the answer sees what it wrote. A
 * stuck notifier delays an answer by at most a second, never fails it. */
#define SHOWN_IDLE_MS 1000

static void wait_shown(struct store *st, int64_t seq, int64_t tree_id)
{
	store_daemon_wait_shown(st, seq, tree_id, SHOWN_IDLE_MS, NULL);
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
			wait_shown(st, 0, store_last_tree_id(st));
		res = rc ? http_reply_store_error(r, st, rc)
		         : http_reply_json(r, MHD_HTTP_OK, answer);
		json_decref(answer);
	}
	json_decref(doc);
	return res;
}

enum MHD_Result http_sync_push(struct http_request *r)
{
	struct store *st = store_or_reply(r);
	json_t *doc = st ? body_object(r) : NULL;
	if (!doc)
		return MHD_YES;
	enum MHD_Result res = MHD_YES;
	if (own_client(r, st, doc)) {
		json_t *results = NULL;
		int rc =
		        store_sync_push(st, r->who.id, json_object_get(doc, "mutations"), &results);
		if (rc) {
			res = http_reply_store_error(r, st, rc);
		} else {
			size_t i;
			json_t *one;
			json_int_t last_seq = 0;
			json_array_foreach(results, i, one)
			{
				const char *status =
				        json_string_value(json_object_get(one, "status"));
				if (status && strcmp(status, "ok") == 0) {
					atomic_fetch_add(&r->server->mutations_ok, 1);
					json_int_t seq =
					        json_integer_value(json_object_get(one, "seq"));
					if (seq > last_seq)
						last_seq = seq;
				} else {
					atomic_fetch_add(&r->server->mutations_conflict, 1);
				}
			}
			wait_shown(st, last_seq, 0);
			json_t *answer = json_pack("{s:o}", "results", results);
			res = http_reply_json(r, MHD_HTTP_OK, answer);
			json_decref(answer);
		}
	}
	json_decref(doc);
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
		rc = pull_field(b, ",\"store\":", c->store);
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
	if (http_query_count(r, "since", 0, INT64_MAX, &since) ||
	    http_query_count(r, "limit", PULL_DEFAULT_LIMIT, PULL_MAX_LIMIT, &limit))
		return MHD_YES;
	if (limit == 0)
		return http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
		                        "limit must be at least 1");
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
