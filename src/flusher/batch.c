/* batch.c - what goes into a batch and when it ships.
 *
 * A runner keeps one open batch in memory: the change lines it selected
 * after the sink's cursor, rendered by the one renderer (changeline.c).
 * The batch closes when it holds max_records changes or max_bytes bytes,
 * or when its first change is max_age old (by the change's own time, so a
 * backlog found after a restart ships at once). Its name derives from the
 * change log and the intent, so a redo writes the same bytes under the
 * same name.
 */
#include "flusher_internal.h"

#include "idbmount/codec/changeline.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK 1000

void batch_init(struct batch *b)
{
	memset(b, 0, sizeof(*b));
	buf_init(&b->lines, 0);
}

void batch_reset(struct batch *b, int64_t scan_seq, size_t max_bytes)
{
	buf_reset(&b->lines);
	b->lines.max = max_bytes + BATCH_LINE_ROOM;
	b->n = 0;
	b->first_seq = b->last_seq = 0;
	b->first_ts_ms = 0;
	b->long_lines = 0;
	b->scan_seq = scan_seq;
	b->full = false;
}

void batch_free(struct batch *b)
{
	buf_free(&b->lines);
	free(b->ends);
	memset(b, 0, sizeof(*b));
}

/* Characters of a UTF-8 line without its "\n": every byte but the
 * continuation bytes starts one (Flume counts characters). */
static size_t line_chars(const char *line, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i + 1 < len; i++)
		n += ((unsigned char)line[i] & 0xc0) != 0x80;
	return n;
}

int batch_add(struct batch *b, const struct store_change *c, const char *node,
              const struct sink_config *cfg, bool limited)
{
	size_t mark = b->lines.len;
	int rc = changeline_render(&b->lines, c, node);
	if (rc)
		return rc;
	if (limited && b->n > 0 && b->lines.len > (size_t)cfg->max_bytes) {
		/* This line goes into the next batch. */
		buf_set_len(&b->lines, mark);
		b->full = true;
		return 1;
	}
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		size_t *grown = realloc(b->ends, cap * sizeof(*grown));
		if (!grown) {
			buf_set_len(&b->lines, mark);
			return -ENOMEM;
		}
		b->ends = grown;
		b->cap = cap;
	}
	b->ends[b->n++] = b->lines.len;
	/* A line has at most as many characters as bytes: count them only
	 * when the bytes are over. */
	size_t bytes = b->lines.len - mark - 1;
	if (cfg->max_line > 0 && bytes > (size_t)cfg->max_line &&
	    line_chars(b->lines.data + mark, b->lines.len - mark) > (size_t)cfg->max_line)
		b->long_lines++;
	if (b->n == 1) {
		b->first_seq = c->seq;
		b->first_ts_ms = c->ts_ms;
	}
	b->last_seq = c->seq;
	b->scan_seq = c->seq;
	if (limited &&
	    (b->n >= (size_t)cfg->max_records || b->lines.len >= (size_t)cfg->max_bytes)) {
		b->full = true;
		return 1;
	}
	return 0;
}

bool batch_due(const struct batch *b, int64_t now_ms, int64_t max_age_ms)
{
	return b->n > 0 && (b->full || now_ms - b->first_ts_ms >= max_age_ms);
}

/* ---- reading from the change log ---------------------------------------------- */

static bool selected(const struct runner *r, const struct store_change *c)
{
	for (size_t i = 0; i < r->n_selectors; i++) {
		const struct selector *s = &r->selectors[i];
		if (s->all || (config_glob_match(s->level[0], c->client) &&
		               config_glob_match(s->level[1], c->db) &&
		               config_glob_match(s->level[2], c->objstore)))
			return true;
	}
	return false;
}

struct reading {
	const struct runner *r;
	struct batch *b;
	int64_t upto; /* read changes up to this seq */
	bool limited; /* stop at max_records / max_bytes */
	int error;
};

static int on_change(void *ctx, const struct store_change *c)
{
	struct reading *rd = ctx;
	if (c->seq > rd->upto)
		return 1;
	if (!selected(rd->r, c)) {
		rd->b->scan_seq = c->seq;
		return 0;
	}
	int rc = batch_add(rd->b, c, rd->r->node, rd->r->cfg, rd->limited);
	if (rc < 0) {
		rd->error = rc;
		return 1;
	}
	return rc;
}

int batch_read(const struct runner *r, struct store *st, struct batch *b, int64_t upto,
               bool limited)
{
	struct reading rd = {.r = r, .b = b, .upto = upto, .limited = limited};
	for (;;) {
		int64_t before = b->scan_seq;
		int64_t n = store_changes_since(st, b->scan_seq, READ_CHUNK, 0, on_change, &rd);
		if (n < 0)
			return (int)n;
		if (rd.error)
			return rd.error;
		if (b->full || n < READ_CHUNK || b->scan_seq >= upto || b->scan_seq == before)
			return 0;
	}
}

int batch_selectors_make(struct runner *r)
{
	r->selectors = calloc(r->cfg->n_select, sizeof(*r->selectors));
	if (!r->selectors)
		return -ENOMEM;
	r->n_selectors = r->cfg->n_select;
	for (size_t i = 0; i < r->n_selectors; i++) {
		struct selector *s = &r->selectors[i];
		const char *p = r->cfg->select[i];
		s->all = strcmp(p, "*/*/*") == 0;
		for (int level = 0; level < 3; level++) {
			const char *slash = level < 2 ? strchr(p, '/') : NULL;
			size_t len = slash ? (size_t)(slash - p) : strlen(p);
			s->level[level] = strndup(p, len);
			if (!s->level[level])
				return -ENOMEM;
			p = slash ? slash + 1 : p + len;
		}
	}
	return 0;
}

void batch_selectors_free(struct runner *r)
{
	for (size_t i = 0; i < r->n_selectors; i++)
		for (int level = 0; level < 3; level++)
			free(r->selectors[i].level[level]);
	free(r->selectors);
	r->selectors = NULL;
	r->n_selectors = 0;
}

/* ---- names ---------------------------------------------------------------------- */

void batch_owner(const struct runner *r, char *out, size_t outlen)
{
	/* At most 100 + 63 + 16 + 2 bytes: config.c caps the prefix. */
	snprintf(out, outlen, "%s-%s-%s", r->cfg->prefix, r->name_node, r->epoch);
}

void batch_name(const struct runner *r, int64_t generation, int64_t first, int64_t last, char *out,
                size_t outlen)
{
	char owner[200], gen[32] = "";
	batch_owner(r, owner, sizeof(owner));
	if (generation > 0)
		snprintf(gen, sizeof(gen), ".%lld", (long long)generation);
	/* At most 182 + 21 + 2 x 20 + 10 bytes: it always fits. */
	int n = snprintf(out, outlen, "%s%s-%020lld-%020lld.jsonl", owner, gen, (long long)first,
	                 (long long)last);
	if (n < 0 || (size_t)n >= outlen)
		out[0] = '\0';
}
