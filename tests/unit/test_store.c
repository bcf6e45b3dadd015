/* test_store.c - unit tests of the store (src/store/) on a data directory
 * of its own in a temporary directory: no mount, no HTTP.
 *
 * Records by key (put, get, replace, delete), their revisions through
 * tombstones, the change log (one change per write, in order, seq only
 * growing, nothing for a write that fails or is rolled back), files
 * through the tree as the mount uses it (create, commit, unlink, rename),
 * clients (add, token, names refused, listing), a push that waits for
 * the push writer while the schema changes under it, and the delivered
 * mark of sinks whose batches are parked or taken out of order.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "idbmount/codec/key.h"
#include "idbmount/store/store.h"
#include "idbmount/store/store_sinks.h"
#include "idbmount/store/store_sync.h"

/* ---------------------------------------------------------------------------
 * Fixture: a store in a fresh data directory with client "alice" and the
 * object store alice/shop/orders (out-of-line keys).
 * ------------------------------------------------------------------------ */

struct fixture {
	char dir[64];
	struct store *st;
	char token[STORE_TOKEN_MAX];
};

static const struct store_path orders = {.client = "alice", .db = "shop", .objstore = "orders"};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	char err[512] = "";
	int rc = store_open(f->dir, &f->st, err, sizeof(err));
	if (rc)
		fail_msg("store_open: %s", err);
	assert_int_equal(store_client_add(f->st, "alice", NULL, f->token), 0);
	assert_int_equal(store_make_objstore(f->st, &orders, "null", false), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	store_close(f->st);
	DIR *d = opendir(f->dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char path[512];
			snprintf(path, sizeof(path), "%s/%s", f->dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

static json_t *key_of(const char *json_text)
{
	json_t *k = key_from_json_text(json_text, strlen(json_text), NULL, 0);
	if (!k)
		fail_msg("not a key: %s", json_text);
	return k;
}

static json_t *value_of(const char *json_text)
{
	json_t *v = json_loads(json_text, JSON_DECODE_ANY, NULL);
	if (!v)
		fail_msg("not JSON: %s", json_text);
	return v;
}

/* Puts `value` under `key` of alice/shop/orders; asserts success. */
static void put(struct fixture *f, const char *key, const char *value, int64_t *rev, int64_t *seq)
{
	json_t *k = key_of(key), *v = value_of(value);
	int rc = store_put(f->st, &orders, k, v, ORIGIN_IMPORT, false, rev, seq);
	if (rc)
		fail_msg("store_put(%s): %d %s", key, rc, store_last_error(f->st));
	json_decref(k);
	json_decref(v);
}

/* The record's content (malloc'd) and revision, or NULL when absent. */
static char *get(struct fixture *f, const char *key, int64_t *rev)
{
	json_t *k = key_of(key);
	char *data = NULL;
	size_t len = 0;
	int rc = store_get(f->st, &orders, k, &data, &len, rev);
	json_decref(k);
	if (rc == -ENOENT)
		return NULL;
	assert_int_equal(rc, 0);
	assert_int_equal(strlen(data), len);
	return data;
}

static int64_t del(struct fixture *f, const char *key)
{
	json_t *k = key_of(key);
	int64_t seq = -1;
	assert_int_equal(store_delete(f->st, &orders, k, ORIGIN_IMPORT, &seq), 0);
	json_decref(k);
	return seq;
}

/* The change log as the tests look at it. */
#define MAX_CHANGES 32
struct logged {
	int64_t seq;
	char client[32], db[32], objstore[32], key[64], name[64];
	char value[128]; /* "" for a delete */
	bool deleted;
	int64_t rev;
	enum store_origin origin;
};

struct log {
	size_t n;
	struct logged c[MAX_CHANGES];
};

static int collect(void *ctx, const struct store_change *c)
{
	struct log *log = ctx;
	assert_true(log->n < MAX_CHANGES);
	struct logged *l = &log->c[log->n++];
	l->seq = c->seq;
	snprintf(l->client, sizeof(l->client), "%s", c->client);
	snprintf(l->db, sizeof(l->db), "%s", c->db);
	snprintf(l->objstore, sizeof(l->objstore), "%s", c->objstore);
	snprintf(l->key, sizeof(l->key), "%s", c->key);
	snprintf(l->name, sizeof(l->name), "%s", c->name);
	snprintf(l->value, sizeof(l->value), "%s", c->value ? c->value : "");
	l->deleted = c->deleted;
	l->rev = c->rev;
	l->origin = c->origin;
	return 0;
}

static void read_log(struct fixture *f, int64_t since, struct log *log)
{
	memset(log, 0, sizeof(*log));
	int64_t n = store_changes_since(f->st, since, MAX_CHANGES, 0, collect, log);
	assert_int_equal(n, (int64_t)log->n);
}

/* The inode of directory alice/shop/orders, found as the mount finds it. */
static uint64_t orders_dir(struct fixture *f)
{
	struct store_node n;
	assert_int_equal(store_lookup(f->st, STORE_ROOT_INO, "alice", &n), 0);
	assert_int_equal(n.kind, STORE_CLIENT);
	assert_int_equal(store_lookup(f->st, n.ino, "shop", &n), 0);
	assert_int_equal(n.kind, STORE_DATABASE);
	assert_int_equal(store_lookup(f->st, n.ino, "orders", &n), 0);
	assert_int_equal(n.kind, STORE_OBJSTORE);
	return n.ino;
}

/* ---------------------------------------------------------------------------
 * Records by key.
 * ------------------------------------------------------------------------ */

static void test_put_get(void **state)
{
	struct fixture *f = *state;
	int64_t rev = 0, seq = 0;
	put(f, "1", "{\"item\":\"tea\",\"qty\":2}", &rev, &seq);
	assert_int_equal(rev, 1);
	assert_true(seq > 0);
	int64_t got_rev = 0;
	char *data = get(f, "1", &got_rev);
	assert_non_null(data);
	/* Laid out as JSON.stringify(value, null, 2) plus a newline. */
	assert_string_equal(data, "{\n  \"item\": \"tea\",\n  \"qty\": 2\n}\n");
	assert_int_equal(got_rev, 1);
	free(data);
	/* Another key is another record; an absent key is -ENOENT. */
	put(f, "\"b\"", "[1,2]", &rev, &seq);
	assert_int_equal(rev, 1);
	assert_null(get(f, "2", &got_rev));
}

static void test_replace(void **state)
{
	struct fixture *f = *state;
	int64_t rev = 0, seq1 = 0, seq2 = 0;
	put(f, "7", "\"first\"", &rev, &seq1);
	assert_int_equal(rev, 1);
	put(f, "7", "\"second\"", &rev, &seq2);
	assert_int_equal(rev, 2);
	assert_true(seq2 > seq1);
	int64_t got_rev = 0;
	char *data = get(f, "7", &got_rev);
	assert_string_equal(data, "\"second\"\n");
	assert_int_equal(got_rev, 2);
	free(data);
}

static void test_delete_and_tombstone(void **state)
{
	struct fixture *f = *state;
	int64_t rev = 0, seq = 0;
	put(f, "5", "{\"a\":1}", &rev, &seq);
	put(f, "5", "{\"a\":2}", &rev, &seq);
	assert_int_equal(rev, 2);
	int64_t del_seq = del(f, "5");
	assert_true(del_seq > seq);
	assert_null(get(f, "5", &rev));

	/* The tombstone is not in the mount, nor among the keys. */
	struct store_node n;
	assert_int_equal(store_lookup(f->st, orders_dir(f), "5.json", &n), -ENOENT);
	int64_t last = store_last_seq(f->st);
	assert_int_equal(last, del_seq);

	/* Deleting what is absent succeeds and logs nothing. */
	assert_int_equal(del(f, "5"), 0);
	assert_int_equal(del(f, "404"), 0);
	assert_int_equal(store_last_seq(f->st), last);

	/* A new record of the same key goes on from the tombstone's
	 * revision (3, the delete's), so a syncing browser sees it as
	 * newer than anything it had. */
	put(f, "5", "{\"a\":3}", &rev, &seq);
	assert_int_equal(rev, 4);
	struct log log;
	read_log(f, 0, &log);
	assert_int_equal(log.n, 4);
	assert_true(log.c[2].deleted);
	assert_int_equal(log.c[2].rev, 3);
	assert_int_equal(log.c[3].rev, 4);
	assert_false(log.c[3].deleted);
}

static int count_key(void *ctx, const char *key, int64_t cursor)
{
	(void)key;
	assert_true(cursor > 0);
	(*(int *)ctx)++;
	return 0;
}

static void test_list_keys_skips_tombstones(void **state)
{
	struct fixture *f = *state;
	int64_t rev, seq;
	put(f, "1", "1", &rev, &seq);
	put(f, "2", "2", &rev, &seq);
	put(f, "3", "3", &rev, &seq);
	del(f, "2");
	/* Nor are scratch files records. */
	struct store_node node;
	assert_int_equal(store_create_file(f->st, orders_dir(f), "notes.txt", &node), 0);
	assert_int_equal(store_create_file(f->st, orders_dir(f), "8.json", &node), 0);
	int n = 0;
	assert_int_equal(store_list_keys(f->st, &orders, 0, count_key, &n), 0);
	assert_int_equal(n, 2);
}

static void test_bad_writes_log_nothing(void **state)
{
	struct fixture *f = *state;
	int64_t rev = 0, seq = 0;
	put(f, "1", "1", &rev, &seq);
	int64_t last = store_last_seq(f->st);

	/* Not a key (a boolean). */
	json_t *bad = json_true(), *v = value_of("{}");
	assert_int_equal(store_put(f->st, &orders, bad, v, ORIGIN_IMPORT, false, &rev, &seq),
	                 -EINVAL);
	/* No such object store, and create_missing not given. */
	const struct store_path none = {.client = "alice", .db = "shop", .objstore = "nope"};
	json_t *k = key_of("1");
	assert_int_equal(store_put(f->st, &none, k, v, ORIGIN_IMPORT, false, &rev, &seq), -ENOENT);
	/* A value whose inline key disagrees with the record's. */
	const struct store_path inline_keys = {.client = "alice", .db = "shop", .objstore = "ids"};
	assert_int_equal(store_make_objstore(f->st, &inline_keys, "\"id\"", false), 0);
	json_t *disagrees = value_of("{\"id\":2}");
	assert_int_equal(
	        store_put(f->st, &inline_keys, k, disagrees, ORIGIN_IMPORT, false, &rev, &seq),
	        -EINVAL);
	assert_true(strstr(store_last_error(f->st), "keyPath") != NULL);
	/* Over the size cap. */
	store_set_max_record(f->st, 8);
	json_t *big = value_of("\"a value longer than eight bytes\"");
	assert_int_equal(store_put(f->st, &orders, k, big, ORIGIN_IMPORT, false, &rev, &seq),
	                 -EFBIG);
	store_set_max_record(f->st, STORE_DEFAULT_MAX_RECORD);

	assert_int_equal(store_last_seq(f->st), last);
	int64_t got = 0;
	char *data = get(f, "1", &got);
	assert_string_equal(data, "1\n");
	assert_int_equal(got, 1);
	free(data);
	json_decref(bad);
	json_decref(v);
	json_decref(k);
	json_decref(disagrees);
	json_decref(big);
}

static void test_rollback_undoes_writes(void **state)
{
	struct fixture *f = *state;
	int64_t rev, seq;
	put(f, "1", "\"kept\"", &rev, &seq);
	int64_t last = store_last_seq(f->st);
	assert_int_equal(store_begin(f->st), 0);
	put(f, "1", "\"dropped\"", &rev, &seq);
	put(f, "2", "\"dropped\"", &rev, &seq);
	assert_true(store_last_seq(f->st) > last);
	store_rollback(f->st);
	assert_int_equal(store_last_seq(f->st), last);
	char *data = get(f, "1", &rev);
	assert_string_equal(data, "\"kept\"\n");
	free(data);
	assert_null(get(f, "2", &rev));
}

/* ---------------------------------------------------------------------------
 * The change log.
 * ------------------------------------------------------------------------ */

static void test_change_log(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(store_last_seq(f->st), 0);
	int64_t rev, seq[4];
	put(f, "1", "{\"x\": 1.50}", &rev, &seq[0]);
	put(f, "\"k\"", "[true]", &rev, &seq[1]);
	put(f, "1", "null", &rev, &seq[2]);
	seq[3] = del(f, "\"k\"");

	struct log log;
	read_log(f, 0, &log);
	assert_int_equal(log.n, 4); /* one change per write */
	for (size_t i = 0; i < log.n; i++) {
		assert_int_equal(log.c[i].seq, seq[i]); /* in the order written */
		if (i > 0)
			assert_true(log.c[i].seq > log.c[i - 1].seq);
		assert_string_equal(log.c[i].client, "alice");
		assert_string_equal(log.c[i].db, "shop");
		assert_string_equal(log.c[i].objstore, "orders");
		assert_int_equal(log.c[i].origin, ORIGIN_IMPORT);
	}
	assert_int_equal(store_last_seq(f->st), seq[3]);

	assert_string_equal(log.c[0].key, "1");
	assert_string_equal(log.c[0].name, "1.json");
	assert_string_equal(log.c[0].value, "{\"x\":1.5}"); /* compact */
	assert_int_equal(log.c[0].rev, 1);
	assert_string_equal(log.c[1].key, "\"k\"");
	assert_string_equal(log.c[1].value, "[true]");
	assert_string_equal(log.c[2].value, "null");
	assert_int_equal(log.c[2].rev, 2);
	assert_true(log.c[3].deleted);
	assert_string_equal(log.c[3].value, "");
	assert_int_equal(log.c[3].rev, 2);

	/* Reading from a seq gives what follows it, up to the limit. */
	read_log(f, seq[1], &log);
	assert_int_equal(log.n, 2);
	assert_int_equal(log.c[0].seq, seq[2]);
	struct log two;
	memset(&two, 0, sizeof(two));
	assert_int_equal(store_changes_since(f->st, 0, 2, 0, collect, &two), 2);
	assert_int_equal(two.c[1].seq, seq[1]);
}

static void test_change_log_per_client(void **state)
{
	struct fixture *f = *state;
	char token[STORE_TOKEN_MAX];
	assert_int_equal(store_client_add(f->st, "bob", NULL, token), 0);
	const struct store_path bobs = {.client = "bob", .db = "shop", .objstore = "orders"};
	json_t *k = key_of("1"), *v = value_of("\"bob's\"");
	int64_t rev, seq_bob, seq_alice;
	assert_int_equal(store_put(f->st, &bobs, k, v, ORIGIN_BROWSER, true, &rev, &seq_bob), 0);
	put(f, "1", "\"alice's\"", &rev, &seq_alice);
	json_decref(k);
	json_decref(v);

	int64_t bob_id = store_client_by_token(f->st, token);
	assert_true(bob_id > 0);
	struct log log;
	memset(&log, 0, sizeof(log));
	assert_int_equal(store_changes_since(f->st, 0, MAX_CHANGES, bob_id, collect, &log), 1);
	assert_int_equal(log.c[0].seq, seq_bob);
	assert_string_equal(log.c[0].client, "bob");
	assert_int_equal(log.c[0].origin, ORIGIN_BROWSER);
	read_log(f, 0, &log);
	assert_int_equal(log.n, 2);
}

/* ---------------------------------------------------------------------------
 * Files, as the mount changes them.
 * ------------------------------------------------------------------------ */

static void test_files_through_the_tree(void **state)
{
	struct fixture *f = *state;
	uint64_t dir = orders_dir(f);
	struct store_node n;
	bool rewritten = false;

	/* A ".json" file is created empty (scratch), then committed. */
	assert_int_equal(store_create_file(f->st, dir, "9.json", &n), 0);
	assert_int_equal(n.state, STORE_SCRATCH);
	assert_int_equal(store_last_seq(f->st), 0);
	const char *text = "{ \"kept\" : \"as written\" }";
	assert_int_equal(store_commit_file(f->st, n.ino, text, strlen(text), &rewritten, &n), 0);
	assert_false(rewritten);
	assert_int_equal(n.state, STORE_LIVE);
	assert_int_equal(n.rev, 1);
	char *data = NULL;
	size_t len = 0;
	assert_int_equal(store_read_file(f->st, n.ino, &data, &len), 0);
	assert_string_equal(data, text); /* the exact bytes */
	free(data);
	assert_int_equal(store_create_file(f->st, dir, "9.json", &n), -EEXIST);
	/* Invalid JSON is refused and changes nothing. */
	assert_int_equal(store_commit_file(f->st, n.ino, "{", 1, &rewritten, &n), -EINVAL);

	/* A rename to another key: the old key is deleted, the new one put,
	 * and the inode follows the file. */
	uint64_t ino = n.ino;
	assert_int_equal(store_rename(f->st, dir, "9.json", dir, "10.json", 0), 0);
	assert_int_equal(store_lookup(f->st, dir, "9.json", &n), -ENOENT);
	assert_int_equal(store_lookup(f->st, dir, "10.json", &n), 0);
	assert_int_equal(n.ino, ino);
	assert_int_equal(n.rev, 1);

	/* A rename to a scratch name takes the record away. */
	assert_int_equal(store_rename(f->st, dir, "10.json", dir, "10.json.swp", 0), 0);
	assert_int_equal(store_lookup(f->st, dir, "10.json.swp", &n), 0);
	assert_int_equal(n.state, STORE_SCRATCH);
	assert_int_equal(n.rev, 0);

	/* unlink of a record leaves a tombstone; a file created under that
	 * name again takes its revision history. */
	assert_int_equal(store_rename(f->st, dir, "10.json.swp", dir, "10.json", 0), 0);
	assert_int_equal(store_lookup(f->st, dir, "10.json", &n), 0);
	assert_int_equal(n.state, STORE_LIVE);
	int64_t rev_before = n.rev;
	assert_int_equal(store_unlink(f->st, dir, "10.json"), 0);
	assert_int_equal(store_lookup(f->st, dir, "10.json", &n), -ENOENT);
	assert_int_equal(store_create_file(f->st, dir, "10.json", &n), 0);
	assert_int_equal(n.state, STORE_SCRATCH);
	assert_int_equal(store_commit_file(f->st, n.ino, "true", 4, &rewritten, &n), 0);
	assert_int_equal(n.rev, rev_before + 2);

	struct log log;
	read_log(f, 0, &log);
	/* put 9, delete 9 + put 10 (rename), delete 10 (to scratch),
	 * put 10 (back), delete 10 (unlink), put 10 (commit). */
	assert_int_equal(log.n, 7);
	const char *names[] = {"9.json",  "10.json", "9.json", "10.json",
	                       "10.json", "10.json", "10.json"};
	const bool deleted[] = {false, false, true, true, false, true, false};
	for (size_t i = 0; i < log.n; i++) {
		assert_string_equal(log.c[i].name, names[i]);
		assert_int_equal(log.c[i].deleted, deleted[i]);
		assert_int_equal(log.c[i].origin, ORIGIN_FS);
	}
}

/* ---------------------------------------------------------------------------
 * Clients.
 * ------------------------------------------------------------------------ */

struct names {
	char text[128];
};

static int collect_name(void *ctx, const char *name)
{
	struct names *names = ctx;
	size_t used = strlen(names->text);
	int n = snprintf(names->text + used, sizeof(names->text) - used, "%s;", name);
	assert_true(n > 0 && (size_t)n < sizeof(names->text) - used);
	return 0;
}

static void test_clients(void **state)
{
	struct fixture *f = *state;
	/* The fixture's token: 64 hex digits, and it finds its client. */
	assert_int_equal(strlen(f->token), 64);
	assert_int_equal(strspn(f->token, "0123456789abcdef"), 64);
	int64_t alice = store_client_by_token(f->st, f->token);
	assert_true(alice > 0);

	char token[STORE_TOKEN_MAX];
	assert_int_equal(store_client_add(f->st, "bob", NULL, token), 0);
	assert_string_not_equal(token, f->token);
	int64_t bob = store_client_by_token(f->st, token);
	assert_true(bob > 0);
	assert_true(bob != alice);

	/* A token that is not one, or one changed by a digit, finds no one. */
	assert_int_equal(store_client_by_token(f->st, "nope"), -EACCES);
	token[0] = token[0] == '0' ? '1' : '0';
	assert_int_equal(store_client_by_token(f->st, token), -EACCES);

	/* Names: taken, empty, with '/', with a control character. */
	assert_int_equal(store_client_add(f->st, "bob", NULL, token), -EEXIST);
	assert_int_equal(store_client_add(f->st, "", NULL, token), -EINVAL);
	assert_int_equal(store_client_add(f->st, "a/b", NULL, token), -EINVAL);
	assert_int_equal(store_client_add(f->st, "tab\there", NULL, token), -EINVAL);
	assert_non_null(store_client_name_problem("a/b"));
	assert_null(store_client_name_problem("Zoë"));

	struct names names = {""};
	assert_int_equal(store_client_list(f->st, collect_name, &names), 0);
	assert_string_equal(names.text, "alice;bob;");

	/* A client is a directory at the root of the tree. */
	struct store_node n;
	assert_int_equal(store_lookup(f->st, STORE_ROOT_INO, "bob", &n), 0);
	assert_int_equal(n.kind, STORE_CLIENT);
	assert_int_equal(store_lookup(f->st, STORE_ROOT_INO, "carol", &n), -ENOENT);
}

/* A token made for a node starts with "NODE." and finds its client as a
 * whole; without the prefix, or with another node's, it finds no one. A
 * node name that is not 1 to 32 of a-z, 0-9 and '-' makes no client. */
static void test_node_tokens(void **state)
{
	struct fixture *f = *state;
	char token[STORE_TOKEN_MAX];
	const char *longest = "n2345678901234567890123456789012";
	assert_int_equal(store_client_add(f->st, "bob", longest, token), 0);
	assert_int_equal(strlen(token), 32 + 1 + 64);
	assert_int_equal(strncmp(token, longest, 32), 0);
	assert_int_equal(token[32], '.');
	assert_int_equal(strspn(token + 33, "0123456789abcdef"), 64);
	int64_t bob = store_client_by_token(f->st, token);
	assert_true(bob > 0);
	assert_int_equal(store_client_by_token(f->st, token + 33), -EACCES);

	assert_int_equal(store_client_add(f->st, "carol", "node-a", token), 0);
	assert_int_equal(strncmp(token, "node-a.", 7), 0);
	assert_true(store_client_by_token(f->st, token) > 0);
	token[5] = 'b';
	assert_int_equal(store_client_by_token(f->st, token), -EACCES);

	const char *bad[] = {
	        "", "Node-a", "node.a", "node_a", "n23456789012345678901234567890123", "zoë"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_non_null(store_node_name_problem(bad[i]));
		assert_int_equal(store_client_add(f->st, "dave", bad[i], token), -EINVAL);
		assert_int_equal(store_pipeline_add(f->st, "pipe", bad[i], token), -EINVAL);
	}
	struct names names = {""};
	assert_int_equal(store_client_list(f->st, collect_name, &names), 0);
	assert_string_equal(names.text, "alice;bob;carol;");
	assert_int_equal(store_pipeline_add(f->st, "pipe", "node-a", token), 0);
	assert_int_equal(strncmp(token, "node-a.", 7), 0);
	struct store_principal who;
	assert_int_equal(store_sync_auth(f->st, token, &who), 0);
	assert_int_equal(who.kind, PRINCIPAL_PIPELINE);
}

/* ---------------------------------------------------------------------------
 * A push through the push writer
 * ------------------------------------------------------------------------ */

#define WAITING_PUSH 20 /* at least PUSH_AHEAD_MIN: laid out ahead */

struct waiting_push {
	struct fixture *f;
	struct store_writer *writer;
	struct json_span texts[WAITING_PUSH];
	char text[WAITING_PUSH][96];
	int rc;
	char err[512];
	size_t ok;
};

static int count_ok(void *ctx, size_t index, const struct store_push_result *res)
{
	(void)index;
	struct waiting_push *w = ctx;
	w->ok += res->status == STORE_PUSH_OK;
	return 0;
}

/* Puts into "orders" (out-of-line keys) of values whose ids disagree with
 * their keys. */
static void waiting_push_texts(struct waiting_push *w)
{
	for (int i = 0; i < WAITING_PUSH; i++) {
		int n = snprintf(w->text[i], sizeof(w->text[i]),
		                 "{\"id\":\"m%d\",\"db\":\"shop\",\"store\":\"orders\","
		                 "\"op\":\"put\",\"key\":%d,\"value\":{\"id\":%d}}",
		                 i, i, i + 1000);
		w->texts[i] = (struct json_span){w->text[i], (size_t)n};
	}
}

static void *run_waiting_push(void *arg)
{
	struct waiting_push *w = arg;
	struct store *own = NULL;
	char err[512] = "";
	if (store_open(w->f->dir, &own, err, sizeof(err)) != 0) {
		w->rc = -EIO;
		snprintf(w->err, sizeof(w->err), "%s", err);
		return NULL;
	}
	struct store_push_outcome out;
	w->rc = store_sync_push(own, w->writer, store_client_by_token(own, w->f->token), w->texts,
	                        WAITING_PUSH, count_ok, w, &out);
	snprintf(w->err, sizeof(w->err), "%s", store_last_error(own));
	store_close(own);
	return NULL;
}

/* The push failed with `rc` and a reason that says `why`, and applied
 * nothing. */
static void assert_push_refused(struct fixture *f, const struct waiting_push *w, int rc,
                                const char *why)
{
	assert_int_equal(w->rc, rc);
	assert_non_null(strstr(w->err, why));
	assert_int_equal(w->ok, 0);
	int64_t rev = 0;
	assert_null(get(f, "0", &rev));
}

/* alice's schema change: "orders" (empty) takes the key path "id". */
static void orders_take_key_path_id(struct fixture *f)
{
	json_t *req = json_pack("{s:s, s:i, s:[{s:s, s:s}]}", "db", "shop", "version", 2, "stores",
	                        "name", "orders", "keyPath", "id");
	json_t *answer = NULL;
	int64_t alice = store_client_by_token(f->st, f->token);
	assert_int_equal(store_sync_schema(f->st, alice, req, &answer), 0);
	json_decref(req);
	json_decref(answer);
}

/* The push looks up where its mutations go before the writer is free, to
 * lay them out meanwhile; a schema change that commits while it waits must
 * still decide how they are written. Here "orders" (empty) takes the key
 * path "id" while the push waits, so its puts, whose keys disagree with
 * their values' ids, must be refused as the new key path says, not written
 * as the old one would have let them. */
static void test_push_waiting_for_the_writer_sees_a_schema_change(void **state)
{
	struct fixture *f = *state;
	struct waiting_push w = {.f = f};
	waiting_push_texts(&w);
	assert_int_equal(store_writer_new(f->dir, 0, &w.writer), 0);
	/* Holding a transaction holds every writer of the process back. */
	assert_int_equal(store_begin(f->st), 0);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, run_waiting_push, &w), 0);
	usleep(300 * 1000); /* the push looks up "orders" and waits */
	orders_take_key_path_id(f);
	assert_int_equal(store_commit(f->st), 0);
	pthread_join(t, NULL);
	store_writer_free(w.writer);
	assert_push_refused(f, &w, -EINVAL, "the value's key at keyPath");
}

/* An import lays out its puts ahead, for the key path the target had then.
 * When the store takes another key path before the write (a schema change
 * while it was empty), the laid-out put is not written: it is declined, so
 * the line is done again from its text, as the new key path says. */
static void test_an_import_put_laid_out_for_an_old_key_path_is_declined(void **state)
{
	struct fixture *f = *state;
	struct store_import *im = NULL;
	assert_int_equal(store_import_open(f->st, &orders, &im), 0);
	struct store_import_shape shape;
	assert_int_equal(store_import_shape(im, &shape), 0);
	assert_string_equal(shape.keypath, "null");
	const char *value = "{\"id\":5,\"v\":1}";
	struct store_import_ready *ready = NULL;
	assert_int_equal(store_import_prepare(&shape, "1", 1, value, strlen(value), &ready), 0);
	assert_non_null(ready);

	orders_take_key_path_id(f);

	assert_int_equal(store_begin(f->st), 0);
	assert_int_equal(store_import_resolve(im), 0);
	int64_t seq = -1;
	assert_int_equal(store_import_put_ready(im, &shape, ready, &seq), STORE_IMPORT_DECLINED);
	assert_int_equal(seq, 0);
	/* From its text, under key path "id", key 1 disagrees with id 5. */
	assert_int_equal(store_import_put(im, "1", 1, value, strlen(value), true, &seq),
	                 STORE_IMPORT_DECLINED);
	assert_int_equal(store_commit(f->st), 0);
	int64_t rev = 0;
	assert_null(get(f, "1", &rev));
	struct log log;
	read_log(f, 0, &log);
	assert_int_equal(log.n, 0);
	store_import_ready_free(ready);
	store_import_shape_free(&shape);
	store_import_close(im);
}

/* A push writer that cannot open the store fails the push with the reason,
 * and lets go of the push's own thread, parsing it meanwhile. */
static void test_a_push_writer_that_cannot_open_the_store_says_why(void **state)
{
	struct fixture *f = *state;
	struct waiting_push w = {.f = f};
	waiting_push_texts(&w);
	/* under a file, where no directory can be made */
	char file[600], nowhere[700];
	snprintf(file, sizeof(file), "%s/a file", f->dir);
	FILE *fp = fopen(file, "w");
	assert_non_null(fp);
	fclose(fp);
	snprintf(nowhere, sizeof(nowhere), "%s/data", file);
	assert_int_equal(store_writer_new(nowhere, 0, &w.writer), 0);
	run_waiting_push(&w);
	store_writer_free(w.writer);
	assert_push_refused(f, &w, -EIO, "the push writer cannot open the store");
}

/* Records a one-change batch of sink `sink` for seq `seq`. */
static struct store_sink_intent batch_of(struct store *st, const char *sink, int64_t seq)
{
	struct store_sink_intent in = {.from_seq = seq - 1,
	                               .to_seq = seq,
	                               .first_seq = seq,
	                               .last_seq = seq,
	                               .changes = 1,
	                               .bytes = 10};
	snprintf(in.name, sizeof(in.name), "b-%lld", (long long)seq);
	assert_int_equal(store_sink_intent_add(st, sink, &in), 0);
	return in;
}

static int64_t delivered(struct store *st)
{
	int64_t seq = 0;
	int rc = store_sinks_delivered(st, &seq);
	assert_true(rc == 0 || rc == -ENOENT);
	return rc ? 0 : seq;
}

static int64_t sink_mark(struct store *st, const char *sink)
{
	struct store_sink k;
	assert_int_equal(store_sink_load(st, sink, &k), 0);
	return k.delivered_seq;
}

/* The mark is the highest seq S such that every change <= S was taken:
 * a parked batch, or one published that its consumer has not taken,
 * holds it back below its first seq however far later batches got. */
static void test_delivered_never_passes_a_batch_not_taken(void **state)
{
	struct fixture *f = *state;
	struct store *st = f->st;
	assert_int_equal(store_sink_register(st, "h", "http"), 0);
	struct store_sink_intent b1 = batch_of(st, "h", 1);
	assert_int_equal(store_sink_intent_park(st, "h", &b1, "HTTP 400"), 0);
	struct store_sink_intent b2 = batch_of(st, "h", 2);
	assert_int_equal(store_sink_intent_done(st, "h", &b2, 0, false), 0);
	assert_int_equal(sink_mark(st, "h"), 0);
	assert_int_equal(delivered(st), 0);

	/* Unparked and delivered: the mark goes to the end. */
	int64_t n = 0;
	assert_int_equal(store_sink_unpark(st, "h", 0, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_sink_intent_done(st, "h", &b1, 0, false), 0);
	assert_int_equal(sink_mark(st, "h"), 2);
	assert_int_equal(delivered(st), 2);

	/* A batch in flight holds it back too. */
	struct store_sink_intent b3 = batch_of(st, "h", 3);
	struct store_sink_intent b4 = batch_of(st, "h", 4);
	assert_int_equal(store_sink_intent_done(st, "h", &b4, 0, false), 0);
	assert_int_equal(sink_mark(st, "h"), 2);
	assert_int_equal(store_sink_intent_done(st, "h", &b3, 0, false), 0);
	assert_int_equal(sink_mark(st, "h"), 4);

	/* A replay ships a parked batch's changes again: it no longer holds
	 * the mark back, and is no longer parked. */
	struct store_sink_intent b5 = batch_of(st, "h", 5);
	assert_int_equal(store_sink_intent_park(st, "h", &b5, "HTTP 404"), 0);
	assert_int_equal(sink_mark(st, "h"), 4);
	assert_int_equal(store_sink_replay(st, "h", 5), 0);
	struct store_sink k;
	assert_int_equal(store_sink_load(st, "h", &k), 0);
	assert_int_equal(k.parked, 0);

	/* A consumer that acknowledges takes batch 7 before batch 6: the
	 * overall mark (the lowest over sinks) stays below batch 6. */
	assert_int_equal(store_sink_register(st, "d", "dir"), 0);
	struct store_sink_intent b6 = batch_of(st, "d", 6);
	struct store_sink_intent b7 = batch_of(st, "d", 7);
	assert_int_equal(store_sink_intent_done(st, "d", &b6, 0, true), 0);
	assert_int_equal(store_sink_intent_done(st, "d", &b7, 0, true), 0);
	assert_int_equal(delivered(st), 0); /* published, nothing taken */
	assert_int_equal(store_sink_intent_taken(st, "d", &b7), 0);
	assert_int_equal(sink_mark(st, "d"), 5);
	assert_int_equal(delivered(st), 4); /* sink h: 4 */
	assert_int_equal(store_sink_intent_taken(st, "d", &b6), 0);
	assert_int_equal(sink_mark(st, "d"), 7);
	int64_t lowest = 0, highest = 0;
	assert_int_equal(store_sinks_taken(st, &lowest, &highest), 0);
	assert_int_equal(lowest, 4);
	assert_int_equal(highest, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_delete_and_tombstone, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_list_keys_skips_tombstones, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_writes_log_nothing, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_rollback_undoes_writes, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_change_log, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_change_log_per_client, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_files_through_the_tree, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_clients, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_node_tokens, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_push_waiting_for_the_writer_sees_a_schema_change, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_an_import_put_laid_out_for_an_old_key_path_is_declined, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(
	                test_a_push_writer_that_cannot_open_the_store_says_why, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_delivered_never_passes_a_batch_not_taken,
	                                        setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
