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

#include "idbmount/buf.h"

#include <jansson.h>

/* Appends `value` as compact JSON (no spaces). Returns 0 or -EFBIG/-ENOMEM,
 * -EINVAL for a non-finite real. */
int json_text_compact(struct buf *out, const json_t *value);

/* Appends `value` as JSON.stringify(value, null, 2) would, plus "\n": the
 * form of a record file written by the daemon. */
int json_text_pretty(struct buf *out, const json_t *value);

/* Appends the JSON text `text` (len bytes) without the whitespace between
 * tokens. Given json_text_pretty's output it appends exactly what
 * json_text_compact writes for the same value, without walking the value
 * and formatting its numbers again. */
int json_text_unindent(struct buf *out, const char *text, size_t len);

/* Appends `s` (len bytes) as a JSON string literal. */
int json_text_string(struct buf *out, const char *s, size_t len);

/* Parses a whole JSON text (any value, NUL allowed in strings). Returns a new
 * reference, or NULL with "line L column C: reason" in `why`. */
json_t *json_text_parse(const char *text, size_t len, char *why, size_t why_len);

#endif
