/* buf.h - a growable byte buffer with a hard cap, set when it is made.
 *
 * As curl's dynbuf: every append checks the cap, so no input can make a
 * buffer grow without bound; a failed append leaves the buffer as it was.
 * The data is always NUL-terminated (the NUL is not counted in len).
 *
 * The first failure sticks: once an append failed (or a renderer called
 * buf_fail), every later append fails the same way and appends nothing, so
 * a renderer appends piece by piece without checking each step and looks
 * once at the end (buf_error, or the answer of its last append). buf_reset,
 * and buf_set_len back to a length taken before the failure, clear it.
 */
#ifndef IDBMOUNT_BUF_H
#define IDBMOUNT_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <string.h>

struct buf {
	char *data;
	size_t len;
	size_t cap; /* allocated, including room for the NUL */
	size_t max; /* the hard cap on len */
	int err;    /* 0, or the -errno of the first failure since the last reset */
};

/* An empty buffer capped at `max` bytes, as buf_init makes it. */
#define BUF_INIT(max_)                                                                             \
	{                                                                                          \
		.data = NULL, .len = 0, .cap = 0, .max = (max_), .err = 0                          \
	}

void buf_init(struct buf *b, size_t max);
void buf_free(struct buf *b);
/* Empties the buffer, keeping its allocation, and clears its error. */
void buf_reset(struct buf *b);

/* The buffer's sticky error: 0, -EFBIG, -ENOMEM or what buf_fail set. */
static inline int buf_error(const struct buf *b)
{
	return b->err;
}

/* Makes the buffer fail with `err` (a -errno) unless it failed already, for
 * a renderer that finds its input cannot be written. Returns the error the
 * buffer now holds. */
int buf_fail(struct buf *b, int err);

/* Each returns 0, or -EFBIG past the cap, or -ENOMEM, or the error the
 * buffer already held (and then appends nothing). */
int buf_append_growing(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);

/* Inline while the data fits what is allocated: the JSON writers append
 * a token at a time, and a call per token was a tenth of a push's time. */
static inline int buf_append(struct buf *b, const void *data, size_t len)
{
	if (!b->err && len < b->cap - b->len && len <= b->max - b->len) {
		if (len)
			memcpy(b->data + b->len, data, len);
		b->len += len;
		b->data[b->len] = '\0';
		return 0;
	}
	return buf_append_growing(b, data, len);
}

static inline int buf_append_char(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Makes room for len bytes from offset `at` (growing len, zero-filling a
 * gap) and returns where to write them, or NULL past the cap. For a file's
 * bytes, written anywhere: it neither looks at nor sets the error. */
char *buf_reserve_at(struct buf *b, size_t at, size_t len);
/* Sets len (shrinking, or growing with zeros, which neither looks at nor
 * sets the error). Shrinking rolls back to a mark: it clears the error,
 * which came from the appends past the mark, so a renderer that failed
 * leaves the buffer as it found it. */
int buf_set_len(struct buf *b, size_t len);
/* Hands the data to the caller (malloc'd, NUL-terminated) and empties b;
 * NULL (and b freed) when b holds an error or nothing could be allocated. */
char *buf_take(struct buf *b, size_t *len);

#endif
