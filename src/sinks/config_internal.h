/* config_internal.h - what config.c (reading, validating) takes from
 * config_values.c (the values and their checks). */
#ifndef IDBMOUNT_CONFIG_INTERNAL_H
#define IDBMOUNT_CONFIG_INTERNAL_H

#include <stddef.h>

/* Splits a `select` value into its patterns, separated by commas or
 * blanks, into *out (malloc'd, *n of them); see config_values.c for what
 * it returns and how it says why. */
int config_split_select(const char *value, char ***out, size_t *n, char *why, size_t why_len);

#endif
