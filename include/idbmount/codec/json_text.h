/* json_text.h - JSON text as idbmount writes it.
 *
 * jansson's own dumper prints reals with "%.17g" (0.1 becomes
 * 0.10000000000000001); a value that came from JSON.stringify must come back
 * as the browser wrote it, so numbers are written in the ECMAScript
 * Number::toString form of the key codec. Strings are written as
 * JSON.stringify writes them: raw UTF-8, only '"', '\\' and controls escaped.
 */
#ifndef IDBMOUNT_JSON_TEXT_H
#define IDBMOUNT_JSON_TEXT_H

#include "idbmount/util/buf.h"

#include <jansson.h>
#include <stdbool.h>

/* Appends `value` as compact JSON (no spaces). Returns 0 or -EFBIG/-ENOMEM,
 * -EINVAL for a non-finite real. */
int json_text_compact(struct buf *out, const json_t *value);

/* Appends `value` as JSON.stringify(value, null, 2) would, plus "\n": the
 * form of a record file written by the daemon. */
int json_text_pretty(struct buf *out, const json_t *value);

/* What json_text_pretty_text returns for a text it leaves to jansson. */
#define JSON_TEXT_DECLINED 1

/* A member json_text_pretty_text looks for on the way: `path` is a string
 * key path ("" the value itself, "a.b" member b of member a); on return,
 * `found` and the bytes of its value in the output, start..end. */
struct json_text_find {
	const char *path;
	bool found;
	size_t start, end;
};

/* Appends what json_text_pretty appends for the value jansson parses from
 * `text` (len bytes), without parsing it into a value: one pass, no
 * allocation per node. Returns 0, or JSON_TEXT_DECLINED (and appends
 * nothing) for any text it is not sure about: errors, a member name given
 * twice, integers of more than 18 digits, nesting past 200 levels, objects
 * of more than 64 members. The caller then parses the text with
 * json_text_parse, which decides and explains. `find` may be NULL. */
int json_text_pretty_text(struct buf *out, const char *text, size_t len,
                          struct json_text_find *find);

/* Appends the JSON text `text` (len bytes) without the whitespace between
 * tokens. Given json_text_pretty's output it appends exactly what
 * json_text_compact writes for the same value, without walking the value
 * and formatting its numbers again. */
int json_text_unindent(struct buf *out, const char *text, size_t len);

/* Appends `s` (len bytes) as a JSON string literal. */
int json_text_string(struct buf *out, const char *s, size_t len);

/* The same for text that may not be UTF-8 (a message quoting a request's
 * bytes, or cut to a number of bytes): each byte that does not belong to
 * a valid UTF-8 sequence is written as U+FFFD, so the JSON stays UTF-8. */
int json_text_string_lossy(struct buf *out, const char *s, size_t len);

/* Whether `text` (len bytes) is a string literal written plainly: quotes
 * around bytes with no escape, no control character and no other quote,
 * so the string is those bytes (their UTF-8 still to be checked). */
bool json_text_plain_string(const char *text, size_t len);

/* Whether `text` is a string literal that jansson reads as exactly the
 * bytes between its quotes: written plainly, and valid UTF-8. */
bool json_text_string_as_written(const char *text, size_t len);

/* The string `v` as a C string, or NULL when `v` is not a string or holds
 * U+0000 (which json_text_parse lets through): a name cut at its NUL would
 * be taken for another ("shop\u0000x" for "shop"). */
const char *json_text_c_string(const json_t *v);

/* Parses a whole JSON text (any value, NUL allowed in strings). Returns a new
 * reference, or NULL with "line L column C: reason" in `why`. A text with an
 * integer past 64 bits (JSON.stringify writes 1e19 as 10000000000000000000)
 * is read as JavaScript reads it: its numbers as doubles, those that are
 * whole numbers of at most 2^53 as integers. */
json_t *json_text_parse(const char *text, size_t len, char *why, size_t why_len);

/* ---- splitting a text without parsing it ----
 * A push body of 1,000 mutations is split into one text per mutation, so
 * they can be parsed one by one on two threads. The split checks only the
 * structure (strings, brackets, commas, colons, whitespace); whoever uses
 * the pieces parses each one with json_text_parse, so that together every
 * byte of the text is checked as jansson checks a whole text. */
struct json_span {
	const char *text;
	size_t len;
};

/* A member of an object: its name (the string literal, quotes included)
 * and its value. */
struct json_member {
	struct json_span name;
	struct json_span value;
};

/* Splits the object that is the whole of `text` into its members (in order,
 * *members malloc'd). Returns 0, -EINVAL when the text is not an object of
 * that shape, -ENOMEM. */
int json_text_members(const char *text, size_t len, struct json_member **members, size_t *n);

/* json_text_members, and on the way the elements of the first member
 * named `name` (its name written plainly, without escapes) whose value is
 * an array, as json_text_elements would give them: one pass over the text
 * where the two calls made two (a push's body is mostly its mutations).
 * *at is that member's index; *elems (malloc'd) is NULL when there is no
 * such member, or its array does not split (json_text_elements then says
 * why). */
int json_text_members_splitting(const char *text, size_t len, const char *name,
                                struct json_member **members, size_t *n, size_t *at,
                                struct json_span **elems, size_t *nelems);

/* Splits the array that is the whole of `span` into its elements (*elems
 * malloc'd). Returns 0, -EINVAL, -ENOMEM. */
int json_text_elements(struct json_span span, struct json_span **elems, size_t *n);

#endif
