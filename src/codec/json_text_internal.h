/* json_text_internal.h - what json_text.c (writing, parsing, splitting) and
 * json_text_layout.c (json_text_pretty_text) share. Not for other parts:
 * they use json_text.h. */
#ifndef IDBMOUNT_JSON_TEXT_INTERNAL_H
#define IDBMOUNT_JSON_TEXT_INTERNAL_H

#include "idbmount/codec/json_text.h"

#include <stdbool.h>
#include <stddef.h>

static inline bool json_text_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The whitespace JSON allows between tokens. */
static inline bool json_text_is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Appends the characters of a string literal for s[0..len), quotes not
 * included: raw UTF-8 with only '"', '\\' and controls escaped, as
 * JSON.stringify writes them. A failure stays in the buffer's error. */
void json_text_string_body(struct buf *out, const char *s, size_t len);

#endif
