/* http_push_body.h - reading a push's body (POST /v1/push).
 *
 * A push body of 1,000 mutations is split, not parsed whole: its members
 * other than "mutations" are parsed into `doc`, and the mutations are left
 * as texts for store_sync_push to parse (on two threads), which reports a
 * text that does not parse as a malformed body. Whatever is refused is
 * refused with jansson's reason, its line and column counted in the body,
 * as a reading of the whole body would word it, without reading the body
 * again.
 */
#ifndef IDBMOUNT_HTTP_PUSH_BODY_H
#define IDBMOUNT_HTTP_PUSH_BODY_H

#include "idbmount/codec/json_text.h"

#include <jansson.h>
#include <stddef.h>

struct http_push_body {
	json_t *doc;
	struct json_span *mutations; /* NULL: no "mutations" array */
	size_t count;
	char **owned; /* texts written anew from jansson's value, when not split */
};

/* Reads the body `text` (len bytes) of a push. A body the splitter does
 * not take is parsed whole by jansson, which decides. Returns 0, -EINVAL
 * when the body is no JSON object (the 400's detail in `why`), -ENOMEM.
 * Free *b with http_push_body_free in every case. */
int http_push_body_read(const char *text, size_t len, struct http_push_body *b, char *why,
                        size_t why_len);
void http_push_body_free(struct http_push_body *b);

/* Parses `text` as a JSON object; NULL with the reason (for a 400's
 * detail: "malformed JSON: line L column C: ...") in `why` when it is not
 * one. */
json_t *http_parse_object(const char *text, size_t len, char *why, size_t why_len);

/* The detail of a 400 for body `text` whose mutation `index` does not
 * parse, `mutation_why` being json_text_parse's reason for that mutation's
 * text: as http_parse_object words it for the whole body, the line and
 * column moved from the mutation's text to the body. */
void http_push_body_malformed(const char *text, const struct http_push_body *b, size_t index,
                              const char *mutation_why, char *why, size_t why_len);

#endif
