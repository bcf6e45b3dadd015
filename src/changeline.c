/* changeline.c - renders the change line (see changeline.h).
 *
 * The store keeps each change's key as canonical key JSON and its value as
 * compact JSON, so rendering is concatenation: no parse, no re-encoding.
 * The field order is DESIGN.md's, fixed, so that lines diff and grep well.
 */
#include "idbmount/changeline.h"

#include "idbmount/json_text.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

void changeline_format_time(int64_t ms, char out[32])
{
	time_t secs = (time_t)(ms / 1000);
	int millis = (int)(ms % 1000);
	if (millis < 0) {
		millis += 1000;
		secs -= 1;
	}
	struct tm tm;
	gmtime_r(&secs, &tm);
	/* strftime cannot overflow here the way gcc fears snprintf might. */
	size_t n = strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%03dZ", millis);
}

static int field_string(struct buf *out, const char *name, const char *value)
{
	int rc = buf_append_str(out, name);
	return rc ? rc : json_text_string(out, value, strlen(value));
}

int changeline_render(struct buf *out, const struct store_change *c, const char *node)
{
	size_t mark = out->len;
	char ts[32];
	changeline_format_time(c->ts_ms, ts);
	int rc = buf_printf(out, "{\"seq\":%lld,\"ts\":\"%s\"", (long long)c->seq, ts);
	if (!rc)
		rc = field_string(out, ",\"node\":", node);
	if (!rc)
		rc = field_string(out, ",\"client\":", c->client);
	if (!rc)
		rc = field_string(out, ",\"db\":", c->db);
	if (!rc)
		rc = field_string(out, ",\"store\":", c->store);
	if (!rc)
		rc = buf_append_str(out, ",\"key\":");
	if (!rc)
		rc = buf_append_str(out, c->key);
	if (!rc)
		rc = buf_printf(out, ",\"op\":\"%s\",\"rev\":%lld,\"origin\":\"%s\"",
		                c->deleted ? "delete" : "put", (long long)c->rev,
		                store_origin_name(c->origin));
	if (!rc && !c->deleted && c->value) {
		rc = buf_append_str(out, ",\"value\":");
		if (!rc)
			rc = buf_append_str(out, c->value);
	}
	if (!rc)
		rc = buf_append(out, "}\n", 2);
	if (rc)
		buf_set_len(out, mark);
	return rc;
}
