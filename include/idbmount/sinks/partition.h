/* partition.h - time partitions of file sinks (src/DESIGN.md, "Partitions
 * and done flags"): the `partition` template
 * (${YEAR}/${MONTH}/${DAY}/${HOUR}/${MINUTE}, UTC, zero-padded, as Falcon
 * feeds and Oozie datasets name their instances) and the periods it cuts
 * time into, for done flags (partition.c). */
#ifndef IDBMOUNT_PARTITION_H
#define IDBMOUNT_PARTITION_H

#include <stddef.h>
#include <stdint.h>

/* A template's period: the span of its finest variable. */
enum partition_period {
	PARTITION_YEAR,
	PARTITION_MONTH,
	PARTITION_DAY,
	PARTITION_HOUR,
	PARTITION_MINUTE,
	PARTITION_SECOND, /* for very short periods (and tests) */
};

/* The variables, "YEAR" ... "SECOND", in the order of the enum; NULL-ended. */
extern const char *const partition_variables[];

/* Renders `tmpl` for the UTC time `ms` (ms since the epoch) into `out`
 * (cut short, NUL-terminated, when it does not fit). */
void partition_render(const char *tmpl, int64_t ms, char *out, size_t outlen);

/* The period of a template (PARTITION_YEAR when it names no variable). */
enum partition_period partition_period_of(const char *tmpl);

/* The start of the period that holds `ms`, and the end of it (the start of
 * the next one), in ms: months and years by the calendar, the rest by
 * their length (Unix time has no leap seconds). */
int64_t partition_period_start(enum partition_period period, int64_t ms);
int64_t partition_period_end(enum partition_period period, int64_t ms);

#endif
