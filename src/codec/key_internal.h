/* key_internal.h - what the key codec's two files share: key.c (encoding and
 * decoding) uses key_check.c's validators and readers. Not for other parts:
 * they use key.h. */
#ifndef IDBMOUNT_KEY_INTERNAL_H
#define IDBMOUNT_KEY_INTERNAL_H

#include "idbmount/codec/key.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Hard cap on any text the codec builds (stems before hashing, canonical
 * JSON). Far beyond any key a browser will send. */
#define KEY_TEXT_CAP (64u * 1024 * 1024)

/* Deepest array nesting accepted; the same limit as jansson's parser, so any
 * key that can be built can also be read back from its JSON text. */
#define KEY_MAX_DEPTH 2048

/* Largest integer magnitude a double holds exactly (2^53). */
#define KEY_SAFE_INTEGER 9007199254740992.0

/* The time value range of a JavaScript Date, in ms from the epoch. */
#define KEY_DATE_MS_MAX 8640000000000000LL

/* Writes `msg` into `why` when the caller asked for a reason. Returns
 * -EINVAL so that callers can `return key_reject(...)`. */
int key_reject(char *why, size_t why_len, const char *msg);

/* A new number key, normalized: integers up to 2^53 as json_integer (so -0
 * becomes 0), infinities as {"~n": ...}. */
json_t *key_number_new(double d);

/* Parses the JSON text of a key with the flags every key reader uses.
 * Returns a checked, normalized key or NULL with the reason in `why`. */
json_t *key_parse_text(const char *text, size_t len, char *why, size_t why_len);

#endif
