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

#include "idbmount/store/watch.h"

#include "idbmount/codec/json_text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PULL_DEFAULT_LIMIT 500
#define PULL_MAX_LIMIT     10000
#define PULL_SOFT_BYTES    (8u * 1024 * 1024)
#define PULL_HARD_BYTES    (256u * 1024 * 1024)

/* Parses `text` as a JSON object; NULL with the reason (for a 400's
 * detail) in `why` when it is not one. */
static json_t *parse_object(const char *text, size_t len, char *why, size_t why_len)
{
	char perr[200];
	json_t *doc = json_text_parse(text, len, perr, sizeof(perr));
	if (!doc) {
		snprintf(why, why_len, "malformed JSON: %s", perr);
		return NULL;
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		snprintf(why, why_len, "the body must be a JSON object");
		return NULL;
	}
	return doc;
}

/* Parses the body as a JSON object; replies 400 and returns NULL when it is
 * not one. */
static json_t *body_object(struct http_request *r)
{
	char why[256];
	json_t *doc = parse_object(r->body.data ? r->body.data : "", r->body.len, why, sizeof(why));
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
 * it wrote. A stuck notifier delays an answer by at most a second, never
 * fails it. */
#define SHOWN_IDLE_MS 1000

static void wait_shown(struct http_request *r, struct store *st, int64_t seq, int64_t tree_id)
{
	watch_poke(r->server->watch);
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
			wait_shown(r, st, 0, store_last_tree_id(st));
		res = rc ? http_reply_store_error(r, st, rc)
		         : http_reply_json(r, MHD_HTTP_OK, answer);
		json_decref(answer);
	}
	json_decref(doc);
	return res;
}

void http_push_body_free(struct http_push_body *b)
{
	json_decref(b->doc);
	if (b->owned)
		for (size_t i = 0; i < b->count; i++)
			free(b->owned[i]);
	free(b->owned);
	free(b->mutations);
	memset(b, 0, sizeof(*b));
}

/* For a body the splitter does not take but jansson does: the texts are
 * written anew from the parsed mutations. */
static int push_body_from_doc(struct http_push_body *b)
{
	json_t *list = json_object_get(b->doc, "mutations");
	if (!json_is_array(list))
		return 0;
	size_t n = json_array_size(list);
	b->mutations = calloc(n ? n : 1, sizeof(*b->mutations));
	b->owned = calloc(n ? n : 1, sizeof(*b->owned));
	if (!b->mutations || !b->owned)
		return -ENOMEM;
	for (b->count = 0; b->count < n; b->count++) {
		char *text = json_dumps(json_array_get(list, b->count), JSON_ENCODE_ANY);
		if (!text)
			return -ENOMEM;
		b->owned[b->count] = text;
		b->mutations[b->count] = (struct json_span){text, strlen(text)};
	}
	json_object_del(b->doc, "mutations");
	return 0;
}

/* Splits the body into its members without parsing the mutations. Returns
 * 0, or -EINVAL when it does not split into members that parse (jansson
 * then decides), -ENOMEM. */
static int push_body_split(const char *text, size_t len, struct http_push_body *b)
{
	struct json_member *members = NULL;
	size_t n = 0;
	int rc = json_text_members(text, len, &members, &n);
	b->doc = rc ? NULL : json_object();
	if (!rc && !b->doc)
		rc = -ENOMEM;
	for (size_t i = 0; !rc && i < n; i++) {
		json_t *name = json_text_parse(members[i].name.text, members[i].name.len, NULL, 0);
		/* A name holding U+0000, which jansson refuses in a name, must
		 * not be taken for the name cut there ("mutations\u0000"). */
		if (!json_text_c_string(name)) {
			json_decref(name);
			rc = -EINVAL;
			break;
		}
		bool mutations = strcmp(json_string_value(name), "mutations") == 0;
		bool list = mutations && members[i].value.text[0] == '[';
		if (mutations && b->mutations) {
			/* Given again after an array, whose texts would never be
			 * parsed: jansson reads the body (the last one counts),
			 * or says what is wrong with the first. */
			rc = -EINVAL;
		} else if (list) {
			/* Replaces a "mutations" that was no array, as jansson does. */
			json_object_del(b->doc, "mutations");
			rc = json_text_elements(members[i].value, &b->mutations, &b->count);
		} else {
			json_t *value = json_text_parse(members[i].value.text, members[i].value.len,
			                                NULL, 0);
			rc = value ? 0 : -EINVAL;
			if (!rc)
				rc = json_object_set_new(b->doc, json_string_value(name), value)
				             ? -ENOMEM
				             : 0;
			else
				json_decref(value);
		}
		json_decref(name);
	}
	free(members);
	return rc;
}

int http_push_body_read(const char *text, size_t len, struct http_push_body *b, char *why,
                        size_t why_len)
{
	memset(b, 0, sizeof(*b));
	int rc = push_body_split(text, len, b);
	if (rc != -EINVAL)
		return rc;
	/* Not split: jansson says why it is no JSON object, or takes it. */
	http_push_body_free(b);
	b->doc = parse_object(text, len, why, why_len);
	if (!b->doc)
		return -EINVAL;
	return push_body_from_doc(b);
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
	if (!own_client(r, st, body.doc)) {
		/* replied 403 */
	} else if (!body.mutations) {
		res = http_reply_error(r, MHD_HTTP_BAD_REQUEST, "bad_request",
		                       "want {mutations:[...]}");
	} else {
		struct store_push_outcome out;
		rc = store_sync_push(st, r->who.id, body.mutations, body.count, &out);
		if (rc && out.malformed) {
			/* jansson's reason, with the line and column in the body */
			json_t *doc = body_object(r);
			if (doc)
				res = http_reply_store_error(r, st, rc);
			json_decref(doc);
		} else if (rc) {
			res = http_reply_store_error(r, st, rc);
		} else {
			atomic_fetch_add(&r->server->mutations_ok, (unsigned long long)out.ok);
			atomic_fetch_add(&r->server->mutations_conflict,
			                 (unsigned long long)out.conflicts);
			atomic_fetch_add(&r->server->mutations_replayed,
			                 (unsigned long long)out.replayed);
			wait_shown(r, st, out.last_seq, 0);
			struct buf answer = BUF_INIT(SIZE_MAX / 2);
			rc = buf_append_str(&answer, "{\"results\":");
			if (!rc)
				rc = buf_append(&answer, out.results.data, out.results.len);
			if (!rc)
				rc = buf_append_str(&answer, "}\n");
			res = rc ? http_reply_store_error(r, st, rc)
			         : http_reply(r, MHD_HTTP_OK, "application/json", answer.data,
			                      answer.len);
			buf_free(&answer);
		}
		buf_free(&out.results);
	}
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
