/* key.h - the one key codec: IndexedDB keys <-> file names and canonical JSON.
 *
 * A key lives in memory as a jansson value in its *tagged* form, the same form
 * the sync protocol and the change line use:
 *
 *   number  a JSON number (integer or real); +-Infinity, which JSON cannot
 *           hold, as {"~n":"Infinity"} / {"~n":"-Infinity"}
 *   string  a JSON string (valid UTF-8; lone surrogates cannot be stored)
 *   date    {"~d":"2026-01-02T03:04:05.000Z"}  (JS toISOString form, also
 *           the +-YYYYYY extended years)
 *   binary  {"~b":"AAEC"}  (base64url, no padding)
 *   array   a JSON array of keys
 *
 * A file name is encode(key) + ".json"; this module deals in the part before
 * ".json" (the "stem"). See src/DESIGN.md, "Key <-> file name". Decisions
 * beyond the table, written down here because every caller inherits them:
 *   - the empty string key is the stem "~s" (".json" alone would be hidden);
 *   - a stem is accepted only in its canonical form: decode(stem) must
 *     encode back to the same bytes, so "%61" is not another name for "a";
 *   - a stem whose file name would exceed 255 bytes is "~h" + 64 lowercase
 *     hex digits of SHA-256(unhashed stem); only the store can map it back.
 *
 * Names of clients, databases and stores use the string escaping
 * (name_escape / name_unescape), without ".json".
 */
#ifndef IDBMOUNT_KEY_H
#define IDBMOUNT_KEY_H

#include <jansson.h>
#include <stddef.h>

/* Longest file name the kernel accepts (NAME_MAX), and the suffix. */
#define KEY_NAME_MAX   255
#define KEY_SUFFIX     ".json"
#define KEY_SUFFIX_LEN 5

/* What key_decode_stem found. */
enum key_decode_result {
	KEY_DECODED = 0, /* *key_out holds the key */
	KEY_HASHED = 1,  /* a well-formed "~h" stem: ask the store */
};

/* Checks that `key` is a valid key in tagged form. Returns 0, or -EINVAL and
 * writes a short reason (for an HTTP 400 body or a log line) into `why`. */
int key_check(const json_t *key, char *why, size_t why_len);

/* Returns the stem (malloc'd, NUL-terminated) for a valid key, "~h..." when
 * stem + ".json" would be longer than KEY_NAME_MAX; NULL if the key is not
 * valid. `unhashed_out`, when not NULL, receives the stem before hashing
 * (malloc'd) so the store can keep it. */
char *key_encode_stem(const json_t *key, char **unhashed_out);

/* Decodes a stem of `len` bytes (not NUL-terminated necessarily). Returns
 * KEY_DECODED with a new reference in *key_out, KEY_HASHED for a canonical
 * "~h" stem (nothing in *key_out), or -EINVAL for a stem that is not the
 * canonical name of any key. */
int key_decode_stem(const char *stem, size_t len, json_t **key_out);

/* Canonical compact JSON text of a valid key (malloc'd): numbers in the
 * ECMAScript Number::toString form, no spaces, tags as above. Two keys are
 * equal in IndexedDB exactly when their canonical texts are equal. */
char *key_canonical_json(const json_t *key);

/* Parses JSON text into a key and checks it. Returns a new reference or NULL
 * with the reason in `why`. */
json_t *key_from_json_text(const char *text, size_t len, char *why, size_t why_len);

/* Name escaping for client, database and store names: the string-key rules
 * ('%', '/', 0x00-0x1F, 0x7F as %XX; a leading '.', '~', '%' or a name that
 * reads as a number escaped; "" as "~s"). Returns malloc'd text or NULL when
 * `s` is not valid UTF-8. */
char *name_escape(const char *s, size_t len);

/* Reverses name_escape. Returns malloc'd text (length in *len_out, may hold
 * NUL bytes) or NULL when `name` is not the canonical escaping of any
 * string. */
char *name_unescape(const char *name, size_t *len_out);

#endif
