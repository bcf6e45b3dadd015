/* store_clients.c - clients: their names, tokens (only a token's SHA-256
 * is stored; a token may carry the name of its node, store.h) and listing.
 */
#include "idbmount/store/store.h"

#include "store_internal.h"

#include "idbmount/codec/key.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Every statement of this file, prepared once per connection on first use. */
enum stmt_id { S_CLIENT_BY_NAME, S_CLIENT_BY_TOKEN, S_CLIENT_INSERT, S_CLIENT_NAMES, STMT_COUNT };

static const char *const stmt_sql[STMT_COUNT] = {
        [S_CLIENT_BY_NAME] = "SELECT id FROM clients WHERE name = ?1",
        [S_CLIENT_BY_TOKEN] = "SELECT id FROM clients WHERE token_hash = ?1",
        [S_CLIENT_INSERT] = ("INSERT INTO clients(name, fname, token_hash, created_ms, mtime_ns) "
                             "VALUES (?1, ?2, ?3, ?4, ?5)"),
        [S_CLIENT_NAMES] = "SELECT name FROM clients ORDER BY id",
};

STORE_SLOTS_FIT(CLIENTS, STMT_COUNT);

/* Returns the reset statement `id` of this file's table. */
static sqlite3_stmt *stmt(struct store *st, enum stmt_id id)
{
	return store_stmt(st, STORE_SLOTS_CLIENTS + (int)id, stmt_sql[id]);
}

int store_client_id_by_name(struct store *st, const char *name, int64_t *id)
{
	sqlite3_stmt *s = stmt(st, S_CLIENT_BY_NAME);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, name);
	*id = 0;
	int rc = store_step_int(st, s, id);
	if (rc == 0 && *id == 0) {
		store_set_error(st, "no client named '%s'", name);
		rc = -ENOENT;
	}
	return rc;
}

void store_token_hash(const char *token, char out[65])
{
	unsigned char digest[32];
	unsigned int n = 0;
	EVP_Digest(token, strlen(token), digest, &n, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", digest[i]);
}

const char *store_node_name_problem(const char *node)
{
	size_t n = strlen(node);
	if (n == 0)
		return "the node name is empty";
	if (n > STORE_NODE_MAX)
		return "the node name is longer than 32 characters";
	if (strspn(node, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
		return "a node name is made of a-z, 0-9 and '-' only (a proxy matches it in "
		       "tokens)";
	return NULL;
}

int store_token_new(struct store *st, const char *node, char token[STORE_TOKEN_MAX])
{
	size_t at = 0;
	if (node) {
		const char *why = store_node_name_problem(node);
		if (why) {
			store_set_error(st, "not a node name: %s", why);
			return -EINVAL;
		}
		at = (size_t)snprintf(token, STORE_TOKEN_MAX, "%s.", node);
	}
	unsigned char raw[32];
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -EIO;
	for (int i = 0; i < 32; i++)
		snprintf(token + at + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

/* What client and pipeline names share: non-empty UTF-8 without control
 * characters, which would split or garble the lines of a listing. */
static const char *listed_name_problem(const char *name)
{
	if (!*name)
		return "the name is empty";
	char *escaped = name_escape(name, strlen(name));
	free(escaped);
	if (!escaped)
		return "the name is not valid UTF-8";
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
			return "the name holds a control character (U+0000-U+001F or "
			       "U+007F-U+009F)";
	return NULL;
}

const char *store_client_name_problem(const char *name)
{
	const char *why = listed_name_problem(name);
	if (why)
		return why;
	if (strchr(name, '/'))
		return "the name holds '/' (paths are CLIENT/DB/STORE)";
	char *fname = name_escape(name, strlen(name));
	size_t len = fname ? strlen(fname) : 0;
	free(fname);
	if (len > KEY_NAME_MAX)
		return "the name is too long (255 bytes at most as a directory name of the mount)";
	return NULL;
}

const char *store_pipeline_name_problem(const char *name)
{
	const char *why = listed_name_problem(name);
	if (!why && strlen(name) > 255)
		why = "the name is longer than 255 bytes";
	return why;
}

int store_client_add(struct store *st, const char *name, const char *node,
                     char token[STORE_TOKEN_MAX])
{
	st->err[0] = '\0';
	const char *why = store_client_name_problem(name);
	if (why) {
		store_set_error(st, "not a client name: %s", why);
		return -EINVAL;
	}
	char *fname = name_escape(name, strlen(name));
	if (!fname)
		return -ENOMEM;
	int rc = store_token_new(st, node, token);
	if (rc) {
		free(fname);
		return rc;
	}
	char hash[65];
	store_token_hash(token, hash);
	rc = store_txn_begin(st);
	if (rc) {
		free(fname);
		return rc;
	}
	sqlite3_stmt *s = stmt(st, S_CLIENT_INSERT);
	if (!s)
		rc = -EIO;
	if (!rc) {
		store_bind_text(s, 1, name);
		store_bind_text(s, 2, fname);
		store_bind_text(s, 3, hash);
		sqlite3_bind_int64(s, 4, store_now_ns() / 1000000);
		sqlite3_bind_int64(s, 5, store_now_ns());
		rc = store_step_done(st, s);
		if (rc == -EEXIST)
			store_set_error(st, "a client named '%s' exists already", name);
	}
	if (!rc)
		rc = store_tree_log(st, STORE_ROOT_INO, fname, ORIGIN_IMPORT);
	rc = store_txn_end(st, rc);
	free(fname);
	return rc;
}

int64_t store_client_by_token(struct store *st, const char *token)
{
	char hash[65];
	store_token_hash(token, hash);
	sqlite3_stmt *s = stmt(st, S_CLIENT_BY_TOKEN);
	if (!s)
		return -EIO;
	store_bind_text(s, 1, hash);
	int64_t id = 0;
	int rc = store_step_int(st, s, &id);
	if (rc)
		return rc;
	return id > 0 ? id : -EACCES;
}

int store_client_list(struct store *st, store_name_fn fn, void *ctx)
{
	sqlite3_stmt *s = stmt(st, S_CLIENT_NAMES);
	if (!s)
		return -EIO;
	int rc;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (fn(ctx, (const char *)sqlite3_column_text(s, 0)))
			break;
	}
	int res = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_sql_fail(st, rc);
	sqlite3_reset(s);
	return res;
}
