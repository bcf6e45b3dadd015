/* import_line.h - one line of `idbmountctl import` (src/codec/import_line.c):
 * what it says and whether the store would take it. Both passes of the
 * import (src/ctl/ctl.c) read every line through here, so that the second
 * applies exactly what the first checked.
 *
 * A line is one of (see ctl.c for the command):
 *   - {"key":K,"value":V} puts V under K; {"key":K,"op":"delete"} deletes
 *     K; a change line (as `idbmountctl log` prints it) is one of these:
 *     an object with "key", with "value" or "op", and no members but seq,
 *     ts, node, client, db, store, key, op, rev, origin and value;
 *   - in a store with an inline keyPath, any other value: a record whose
 *     key is at the keyPath;
 *   - blank (spaces, tabs): skipped. The first line may start with a
 *     UTF-8 BOM.
 */
#ifndef IDBMOUNT_IMPORT_LINE_H
#define IDBMOUNT_IMPORT_LINE_H

#include "idbmount/store/store.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One line, parsed and classified. */
struct import_line {
	json_t *doc;
	bool del;
	json_t *key;   /* borrowed; NULL: the key at the store's keyPath */
	json_t *value; /* borrowed; NULL for a delete */
};

/* Parses and classifies the line `text` (len bytes, without its newline)
 * for a store with (`inline_keys`) or without an inline keyPath. Returns 0
 * or -EINVAL with the reason in `why`. Free *l with import_line_free in
 * either case. */
int import_line_parse(const char *text, size_t len, bool inline_keys, struct import_line *l,
                      char *why, size_t why_len);
void import_line_free(struct import_line *l);

/* One line split into texts, not parsed: what import_line_parse reads,
 * the key and the value left as JSON text for store_import_put and
 * store_import_delete to parse as they lay them out. */
struct import_line_split {
	bool del;
	const char *key; /* NULL: the key at the store's keyPath */
	size_t key_len;
	const char *value; /* NULL for a delete */
	size_t value_len;
};

/* What import_line_split returns for a line it leaves to import_line_parse. */
#define IMPORT_LINE_DECLINED 1

/* Splits the line `text` as import_line_parse would read it, without
 * parsing the key and the value (whoever takes them parses them whole, as
 * store_import_put does; the other members of a change line are parsed
 * here). Returns 0, or IMPORT_LINE_DECLINED for any line it is not sure
 * of, errors included: import_line_parse then decides and explains. */
int import_line_split(const char *text, size_t len, bool inline_keys,
                      struct import_line_split *out);

/* Checks the line as the store `path` of `st` would take it (the key, the
 * keyPath agreement, the record cap), inside the caller's transaction:
 * "" in `why` for a good line, else the reason. */
void import_line_check(struct store *st, const struct store_path *path, bool inline_keys,
                       const char *text, size_t len, char *why, size_t why_len);

/* The text of line number `lineno` (from 1) past the UTF-8 BOM the first
 * line may start with; *len is updated. */
const char *import_line_text(const char *text, size_t *len, uint64_t lineno);

/* Whether the line is blank (spaces, tabs), to be skipped. */
bool import_line_is_blank(const char *text, size_t len);

#endif
