/* store_keys.c - what a record's key and value become before SQL sees
 * them: file names of keys, inline key paths, and values laid out as their
 * file and their change-log form. No SQL here, so a second thread may
 * prepare a push's values while the writer writes (store_put_prepare).
 *
 * A record written through the mount keeps the exact bytes that were
 * written (so `cp` and `cmp` agree); one written by a browser or
 * idbmountctl is laid out as JSON.stringify(value, null, 2) plus a newline.
 * The change log keeps each change's value as compact JSON, the form the
 * change line and /v1/pull send.
 */
#include "store_internal.h"

#include "idbmount/codec/json_text.h"
#include "idbmount/codec/key.h"
#include "idbmount/util/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes a reason into a caller's buffer: for the preparation of a put,
 * which runs on threads that have no store of their own. */
static void __attribute__((format(printf, 3, 4)))
err_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

bool store_is_record_name(const char *name)
{
	size_t n = strlen(name);
	return n > KEY_SUFFIX_LEN &&
	       memcmp(name + n - KEY_SUFFIX_LEN, KEY_SUFFIX, KEY_SUFFIX_LEN) == 0;
}

/* ---- keys and key paths ------------------------------------------------ */

int store_key_for_name(struct store *st, const char *name, const char *known_key, char **key)
{
	*key = NULL;
	size_t len = strlen(name) - KEY_SUFFIX_LEN;
	json_t *k = NULL;
	int rc = key_decode_stem(name, len, &k);
	if (rc == KEY_HASHED) {
		if (known_key) {
			*key = strdup(known_key);
			return *key ? 0 : -ENOMEM;
		}
		store_set_error(st,
		                "%s: a ~h name is made by idbmount for a long key; it cannot be "
		                "made by hand",
		                name);
		return -EINVAL;
	}
	if (rc < 0) {
		store_set_error(st, "%s: not the file name of any IndexedDB key", name);
		return -EINVAL;
	}
	*key = key_canonical_json(k);
	json_decref(k);
	return *key ? 0 : -ENOMEM;
}

char *store_name_for_key(const json_t *key)
{
	char *stem = key_encode_stem(key, NULL);
	if (!stem)
		return NULL;
	char *name = NULL;
	if (asprintf(&name, "%s%s", stem, KEY_SUFFIX) < 0)
		name = NULL;
	free(stem);
	return name;
}

/* Resolves one key-path string ("" = the value itself, "a.b" = nested
 * members) on `value`. Returns a borrowed reference or NULL. */
static json_t *keypath_get(json_t *value, const char *path)
{
	if (!*path)
		return value;
	json_t *cur = value;
	const char *p = path;
	while (cur) {
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		if (!json_is_object(cur))
			return NULL;
		char member[256];
		if (n >= sizeof(member))
			return NULL;
		memcpy(member, p, n);
		member[n] = '\0';
		cur = json_object_get(cur, member);
		if (!dot)
			return cur;
		p = dot + 1;
	}
	return NULL;
}

/* Sets the key at a string key path, making intermediate objects (as
 * IndexedDB does for autoIncrement stores). Returns 0 or -EINVAL. */
static int keypath_set(json_t *value, const char *path, json_t *key)
{
	json_t *cur = value;
	const char *p = path;
	for (;;) {
		if (!json_is_object(cur))
			return -EINVAL;
		const char *dot = strchr(p, '.');
		size_t n = dot ? (size_t)(dot - p) : strlen(p);
		char member[256];
		if (n == 0 || n >= sizeof(member))
			return -EINVAL;
		memcpy(member, p, n);
		member[n] = '\0';
		if (!dot)
			return json_object_set(cur, member, key) ? -EINVAL : 0;
		json_t *next = json_object_get(cur, member);
		if (!next) {
			next = json_object();
			if (json_object_set_new(cur, member, next))
				return -EINVAL;
		}
		cur = next;
		p = dot + 1;
	}
}

/* Checks `value` against the store's inline key path for record `key`
 * (canonical JSON). A string path the value lacks is filled in and
 * *changed set. Returns 0 or -EINVAL with the reason. */
static int keypath_apply(char *err, size_t errlen, const char *keypath_json, const char *key,
                         json_t *value, bool *changed)
{
	*changed = false;
	if (strcmp(keypath_json, "null") == 0)
		return 0;
	json_t *kp = json_loads(keypath_json, JSON_DECODE_ANY, NULL);
	if (!kp || json_is_null(kp)) {
		json_decref(kp);
		return 0;
	}
	int rc = 0;
	json_t *found = NULL;
	char *found_text = NULL;
	if (json_is_string(kp)) {
		json_t *v = keypath_get(value, json_string_value(kp));
		if (v)
			found = json_incref(v);
	} else if (json_is_array(kp)) {
		found = json_array();
		size_t i;
		json_t *p;
		json_array_foreach(kp, i, p)
		{
			json_t *v =
			        json_is_string(p) ? keypath_get(value, json_string_value(p)) : NULL;
			if (!v) {
				json_decref(found);
				found = NULL;
				break;
			}
			json_array_append(found, v);
		}
	}
	if (found) {
		found_text = key_canonical_json(found);
		if (!found_text || strcmp(found_text, key) != 0) {
			err_set(err, errlen,
			        "the value's key at keyPath %s is %s, but the record's key is %s",
			        keypath_json, found_text ? found_text : "not a valid key", key);
			rc = -EINVAL;
		}
	} else if (json_is_string(kp) && *json_string_value(kp) && json_is_object(value)) {
		/* The key codec reads its own text: 1e19's is
		 * 10000000000000000000, which no 64-bit integer holds. */
		json_t *k = key_from_json_text(key, strlen(key), NULL, 0);
		rc = k ? keypath_set(value, json_string_value(kp), k) : -EINVAL;
		json_decref(k);
		if (rc == 0)
			*changed = true;
		else
			err_set(err, errlen, "cannot add the key at keyPath %s", keypath_json);
	} else {
		err_set(err, errlen, "the value has no key at keyPath %s", keypath_json);
		rc = -EINVAL;
	}
	json_decref(found);
	free(found_text);
	json_decref(kp);
	return rc;
}

int store_key_valid(struct store *st, const json_t *key)
{
	char why[160];
	if (key_check(key, why, sizeof(why)) == 0)
		return 0;
	store_set_error(st, "not a valid key: %s", why);
	return -EINVAL;
}

/* The key as IndexedDB extracts it. */
int store_keypath_extract(struct store *st, const char *keypath_json, const json_t *value_in,
                          json_t **key_out)
{
	*key_out = NULL;
	/* Only read: keypath_get serves writers too. */
	json_t *value = (json_t *)value_in;
	json_t *kp = json_loads(keypath_json, JSON_DECODE_ANY, NULL);
	if (!kp || (!json_is_string(kp) && !json_is_array(kp))) {
		json_decref(kp);
		store_set_error(st, "the store has out-of-line keys: the key must be given");
		return -EINVAL;
	}
	json_t *key = NULL;
	if (json_is_string(kp)) {
		key = keypath_get(value, json_string_value(kp));
		if (key)
			json_incref(key);
	} else {
		key = json_array();
		size_t i;
		json_t *p;
		json_array_foreach(kp, i, p)
		{
			json_t *v =
			        json_is_string(p) ? keypath_get(value, json_string_value(p)) : NULL;
			if (!v || json_array_append(key, v)) {
				json_decref(key);
				key = NULL;
				break;
			}
		}
	}
	int rc = 0;
	char why[160];
	if (!key) {
		store_set_error(st, "the value has no key at keyPath %s", keypath_json);
		rc = -EINVAL;
	} else if (key_check(key, why, sizeof(why)) != 0) {
		store_set_error(st, "the value's key at keyPath %s is not a valid key: %s",
		                keypath_json, why);
		rc = -EINVAL;
	}
	json_decref(kp);
	if (rc)
		json_decref(key);
	else
		*key_out = key;
	return rc;
}

/* ---- values --------------------------------------------------------------- */

void store_prepared_free(struct prepared_value *p)
{
	buf_free(&p->file);
	buf_free(&p->compact);
}

/* The value laid out straight from its text by json_text_pretty_text, for
 * record `key` (canonical JSON) under `keypath`: 0 when that is sure and
 * the key path adds nothing (out-of-line keys, or a string path whose
 * member holds exactly `key`). With `key` NULL the key is the one at the
 * string key path, returned in *found_key (a new reference, not yet
 * checked as a key). Anything else, errors included, returns
 * JSON_TEXT_DECLINED with `out` as it was: the parsed way then decides and
 * words the error. `keep_text`: the file is `text` itself (written through
 * the mount), else the pretty layout (a push's value). */
static int prepare_text_fast(const char *keypath, const char *key, const char *text, size_t len,
                             bool keep_text, struct prepared_value *out, json_t **found_key)
{
	json_t *kp = NULL;
	if (strcmp(keypath, "null") != 0) {
		kp = json_loads(keypath, JSON_DECODE_ANY, NULL);
		/* keypath_get reads no member name of 256 bytes or more. */
		if (!json_is_string(kp) || json_string_length(kp) >= 255) {
			json_decref(kp);
			return JSON_TEXT_DECLINED;
		}
	}
	if (!key && !kp)
		return JSON_TEXT_DECLINED;
	struct json_text_find find = {.path = kp ? json_string_value(kp) : NULL};
	struct buf scratch = BUF_INIT(out->file.max);
	struct buf *pretty = keep_text ? &scratch : &out->file;
	int rc = json_text_pretty_text(pretty, text, len, kp ? &find : NULL);
	if (!rc && kp) {
		json_t *found = find.found ? json_text_parse(pretty->data + find.start,
		                                             find.end - find.start, NULL, 0)
		                           : NULL;
		if (!key) {
			rc = found ? 0 : JSON_TEXT_DECLINED;
			*found_key = found;
			found = NULL;
		} else {
			char *found_canon = found ? key_canonical_json(found) : NULL;
			if (!found_canon || strcmp(found_canon, key) != 0)
				rc = JSON_TEXT_DECLINED;
			free(found_canon);
		}
		json_decref(found);
	}
	if (!rc && keep_text)
		rc = buf_append(&out->file, text, len);
	if (!rc)
		rc = json_text_unindent(&out->compact, pretty->data, pretty->len);
	if (rc) {
		buf_reset(&out->file);
		buf_reset(&out->compact);
		rc = JSON_TEXT_DECLINED;
		if (found_key) {
			json_decref(*found_key);
			*found_key = NULL;
		}
	}
	buf_free(&scratch);
	json_decref(kp);
	return rc;
}

int store_prepare_value_keypath(size_t max_record, char *err, size_t errlen, const char *keypath,
                                const char *key, const char *text, size_t len,
                                const json_t *value_in, struct prepared_value *out)
{
	buf_init(&out->file, max_record);
	buf_init(&out->compact, max_record * 2 + 64);
	out->rewritten = false;
	json_t *value;
	if (text) {
		if (len > max_record) {
			err_set(err, errlen, "record of %zu bytes is over the cap of %zu bytes",
			        len, max_record);
			return -EFBIG;
		}
		if (prepare_text_fast(keypath, key, text, len, true, out, NULL) == 0)
			return 0;
		char why[200];
		value = json_text_parse(text, len, why, sizeof(why));
		if (!value) {
			err_set(err, errlen, "invalid JSON: %s", why);
			return -EINVAL;
		}
	} else if (strcmp(keypath, "null") == 0) {
		/* Out-of-line keys: nothing will touch the value, no copy. */
		value = json_incref((json_t *)value_in);
	} else {
		value = json_deep_copy(value_in);
		if (!value)
			return -ENOMEM;
	}
	bool changed = false;
	int rc = keypath_apply(err, errlen, keypath, key, value, &changed);
	bool pretty = false;
	if (!rc && text && !changed) {
		rc = buf_append(&out->file, text, len);
	} else if (!rc) {
		rc = json_text_pretty(&out->file, value);
		out->rewritten = text != NULL;
		pretty = true;
	}
	/* Our own pretty text unindents to the compact form; text written
	 * through the mount is written anew (its numbers may be "1.50"). */
	if (!rc && pretty)
		rc = json_text_unindent(&out->compact, out->file.data, out->file.len);
	else if (!rc)
		rc = json_text_compact(&out->compact, value);
	if (rc == -EFBIG)
		err_set(err, errlen, "record is over the cap of %zu bytes", max_record);
	else if (rc == -EINVAL && !err[0])
		err_set(err, errlen, "value holds a number JSON cannot write");
	json_decref(value);
	if (rc)
		store_prepared_free(out);
	return rc;
}

int store_put_prepare(size_t max_record, const char *keypath, const json_t *key,
                      const json_t *value, struct store_put_prep *out)
{
	memset(out, 0, sizeof(*out));
	char why[160];
	if (key_check(key, why, sizeof(why)) != 0) {
		err_set(out->err, sizeof(out->err), "not a valid key: %s", why);
		out->key_rc = -EINVAL;
		return out->key_rc;
	}
	out->canon = key_canonical_json(key);
	out->name = store_name_for_key(key);
	if (!out->canon || !out->name) {
		out->key_rc = -ENOMEM;
		return out->key_rc;
	}
	if (keypath) {
		out->value_rc =
		        store_prepare_value_keypath(max_record, out->err, sizeof(out->err), keypath,
		                                    out->canon, NULL, 0, value, &out->value);
		out->prepared = out->value_rc == 0;
	}
	return out->value_rc;
}

int store_put_prepare_text(size_t max_record, const char *keypath, const json_t *key,
                           struct json_span value, struct store_put_prep *out)
{
	int rc = store_put_prepare(max_record, NULL, key, NULL, out);
	if (rc)
		return rc;
	buf_init(&out->value.file, max_record);
	buf_init(&out->value.compact, max_record * 2 + 64);
	out->value.rewritten = false;
	rc = prepare_text_fast(keypath, out->canon, value.text, value.len, false, &out->value,
	                       NULL);
	if (rc) {
		store_prepared_free(&out->value);
		store_put_prep_free(out);
		return rc;
	}
	out->prepared = true;
	return 0;
}

int store_put_prepare_import(size_t max_record, const char *keypath, struct json_span key,
                             struct json_span value, struct store_put_prep *out)
{
	memset(out, 0, sizeof(*out));
	json_t *k = key.text ? json_text_parse(key.text, key.len, NULL, 0) : NULL;
	int rc = key.text && (!k || key_check(k, NULL, 0) != 0) ? JSON_TEXT_DECLINED : 0;
	if (!rc && k && !(out->canon = key_canonical_json(k)))
		rc = JSON_TEXT_DECLINED;
	buf_init(&out->value.file, max_record);
	buf_init(&out->value.compact, max_record * 2 + 64);
	out->prepared = true;
	if (!rc) {
		json_t *found = NULL;
		rc = prepare_text_fast(keypath, out->canon, value.text, value.len, false,
		                       &out->value, k ? NULL : &found);
		if (!k)
			k = found;
	}
	/* A key found at the key path is checked only now. */
	if (!rc && !out->canon &&
	    (key_check(k, NULL, 0) != 0 || !(out->canon = key_canonical_json(k))))
		rc = JSON_TEXT_DECLINED;
	if (!rc && !(out->name = store_name_for_key(k)))
		rc = JSON_TEXT_DECLINED;
	json_decref(k);
	if (rc)
		store_put_prep_free(out);
	return rc ? JSON_TEXT_DECLINED : 0;
}

void store_put_prep_free(struct store_put_prep *p)
{
	if (p->prepared)
		store_prepared_free(&p->value);
	free(p->canon);
	free(p->name);
	memset(p, 0, sizeof(*p));
}
