/* buf.c - growable byte buffers with a hard cap (see buf.h). */
#include "idbmount/util/buf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->err = 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	b->err = 0;
	if (b->data)
		b->data[0] = '\0';
}

/* Ensures room for `need` bytes of content plus the NUL. */
static int buf_grow(struct buf *b, size_t need)
{
	if (need > b->max)
		return -EFBIG;
	if (need + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need + 1)
		cap = cap > ((size_t)-1) / 2 ? need + 1 : cap * 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	char *p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int buf_fail(struct buf *b, int err)
{
	if (!b->err)
		b->err = err;
	return b->err;
}

int buf_append_growing(struct buf *b, const void *data, size_t len)
{
	if (b->err)
		return b->err;
	if (len > b->max - b->len)
		return buf_fail(b, -EFBIG);
	int rc = buf_grow(b, b->len + len);
	if (rc)
		return buf_fail(b, rc);
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	if (b->err)
		return b->err;
	va_list ap;
	va_start(ap, fmt);
	char small[256];
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return buf_fail(b, -EINVAL);
	if ((size_t)n < sizeof(small))
		return buf_append(b, small, (size_t)n);
	if ((size_t)n > b->max - b->len)
		return buf_fail(b, -EFBIG);
	int rc = buf_grow(b, b->len + (size_t)n);
	if (rc)
		return buf_fail(b, rc);
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

char *buf_reserve_at(struct buf *b, size_t at, size_t len)
{
	if (at > b->max || len > b->max - at)
		return NULL;
	size_t end = at + len;
	if (end > b->len) {
		if (buf_grow(b, end))
			return NULL;
		memset(b->data + b->len, 0, end - b->len);
		b->len = end;
		b->data[b->len] = '\0';
	}
	return b->data + at;
}

int buf_set_len(struct buf *b, size_t len)
{
	if (len > b->len) {
		if (!buf_reserve_at(b, b->len, len - b->len))
			return len > b->max ? -EFBIG : -ENOMEM;
		return 0;
	}
	b->len = len;
	b->err = 0;
	if (b->data)
		b->data[len] = '\0';
	return 0;
}

char *buf_take(struct buf *b, size_t *len)
{
	if (b->err || (!b->data && buf_grow(b, 0))) {
		buf_free(b);
		return NULL;
	}
	char *p = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	b->err = 0;
	return p;
}
