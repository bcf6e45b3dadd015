/* changeline.h - the one renderer of the change line (src/DESIGN.md, "The
 * change line"): what every sink receives, what `idbmountctl log` prints
 * and what /v1/changes streams. One JSON object, no newline inside, then
 * "\n". */
#ifndef IDBMOUNT_CHANGELINE_H
#define IDBMOUNT_CHANGELINE_H

#include "idbmount/util/buf.h"
#include "idbmount/store/store.h"

/* Appends the line for `change` (with the trailing "\n") to `out`, naming
 * this machine `node`. Returns 0 or -EFBIG/-ENOMEM. */
int changeline_render(struct buf *out, const struct store_change *change, const char *node);

/* Formats a time in ms since the epoch as ISO 8601 UTC with milliseconds
 * ("2026-11-23T10:00:00.123Z"); writes at most 32 bytes. */
void changeline_format_time(int64_t ms, char out[32]);

#endif
