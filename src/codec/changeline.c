/* changeline.c - renders the change line (see changeline.h).
 *
 * The store keeps each change's key as canonical key JSON and its value as
 * compact JSON, so rendering is concatenation: no parse, no re-encoding.
 * The field order is src/DESIGN.md's ("The change line"), fixed, so that
 * lines diff and grep well.
 */
#include "idbmount/codec/changeline.h"

#include "idbmount/codec/json_text.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* The date and time to the second of `secs` ("2026-11-23T10:00:00"),
 * remembered per thread: a backlog's changes share seconds, and gmtime_r
 * and strftime were a tenth of a sink's reading time. */
static const char *second_text(time_t secs)
{
	static _Thread_local time_t cached_secs = (time_t)-1;
	static _Thread_local char cached[24];
	if (secs != cached_secs) {
		struct tm tm;
		gmtime_r(&secs, &tm);
		/* strftime cannot overflow here the way gcc fears snprintf might. */
		if (strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
			cached[0] = '\0';
		cached_secs = secs;
	}
	return cached;
}

void changeline_format_time(int64_t ms, char out[32])
{
	time_t secs = (time_t)(ms / 1000);
	int millis = (int)(ms % 1000);
	if (millis < 0) {
		millis += 1000;
		secs -= 1;
	}
	const char *second = second_text(secs);
	size_t n = strlen(second);
	memcpy(out, second, n);
	out[n++] = '.';
	out[n++] = (char)('0' + millis / 100);
	out[n++] = (char)('0' + millis / 10 % 10);
	out[n++] = (char)('0' + millis % 10);
	out[n++] = 'Z';
	out[n] = '\0';
}

/* Writes `v` in decimal at `p`; returns the end. */
static char *put_int(char *p, int64_t v)
{
	char digits[24];
	size_t n = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	do {
		digits[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*p++ = '-';
	while (n)
		*p++ = digits[--n];
	return p;
}

static char *put_text(char *p, const char *text)
{
	size_t n = strlen(text);
	memcpy(p, text, n);
	return p + n;
}

static void field_string(struct buf *out, const char *name, const char *value)
{
	buf_append_str(out, name);
	json_text_string(out, value, strlen(value));
}

int changeline_render(struct buf *out, const struct store_change *c, const char *node)
{
	/* The rollback below would clear an error the buffer came with. */
	if (buf_error(out))
		return buf_error(out);
	size_t mark = out->len;
	/* The fixed-size parts are put together on the stack, without
	 * printf: this runs once per change a sink ships. */
	char head[96];
	char *p = put_text(head, "{\"seq\":");
	p = put_int(p, c->seq);
	p = put_text(p, ",\"ts\":\"");
	changeline_format_time(c->ts_ms, p);
	p += strlen(p);
	*p++ = '"';
	buf_append(out, head, (size_t)(p - head));
	field_string(out, ",\"node\":", node);
	field_string(out, ",\"client\":", c->client);
	field_string(out, ",\"db\":", c->db);
	field_string(out, ",\"store\":", c->objstore);
	buf_append_str(out, ",\"key\":");
	buf_append_str(out, c->key);
	p = put_text(head, ",\"op\":\"");
	p = put_text(p, c->deleted ? "delete" : "put");
	p = put_text(p, "\",\"rev\":");
	p = put_int(p, c->rev);
	p = put_text(p, ",\"origin\":\"");
	p = put_text(p, store_origin_name(c->origin));
	*p++ = '"';
	buf_append(out, head, (size_t)(p - head));
	if (!c->deleted && c->value) {
		buf_append_str(out, ",\"value\":");
		buf_append_str(out, c->value);
	}
	int rc = buf_append(out, "}\n", 2);
	if (rc)
		buf_set_len(out, mark);
	return rc;
}
