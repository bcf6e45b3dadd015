/* number_text.h - numbers as JavaScript writes them.
 *
 * The one formatter of a double as text, shared by the key codec (keys,
 * stems) and JSON text (values), so that a number is spelled the same in a
 * file name, a record and a change line.
 */
#ifndef IDBMOUNT_NUMBER_TEXT_H
#define IDBMOUNT_NUMBER_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* ECMAScript Number::toString of a finite or infinite double (never NaN),
 * -0 as "0". Writes at most 32 bytes including the NUL; returns the length. */
int number_text_format(double d, char out[32]);

/* Returns true and sets *out when s[0..n) is exactly number_text_format of
 * some number (including "Infinity" and "-Infinity"); false for any other
 * spelling ("1.0", "01", "1e2"). */
bool number_text_parse_canonical(const char *s, size_t n, double *out);

#endif
