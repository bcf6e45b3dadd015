/* utf8.h - the one UTF-8 check of the codecs (utf8.c): what jansson and
 * JavaScript's TextDecoder accept, no overlong forms, no surrogates,
 * nothing past U+10FFFF. Private to src/codec/. */
#ifndef IDBMOUNT_CODEC_UTF8_H
#define IDBMOUNT_CODEC_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* The length of the UTF-8 sequence at t[i] (its first byte >= 0x80), or 0
 * when it is not a valid one. */
size_t utf8_sequence(const unsigned char *t, size_t len, size_t i);

/* Whether the n bytes at s are all valid UTF-8 (NUL bytes included). */
bool utf8_valid(const char *s, size_t n);

#endif
