/* number_text.c - ECMAScript Number::toString, and its exact reverse (see
 * number_text.h).
 *
 * Numbers are formatted without any locale dependence: the shortest
 * round-tripping digits are found by binary search over "%.*e" precisions,
 * and round trips are tested by strtod on a "DIGITSe-N" text that holds no
 * radix character. Where the correctly rounded p-digit decimal does not read
 * back but its upper neighbour does (the narrow lower half-interval at a
 * power of two), the neighbour is taken, since ECMA-262 asks for the fewest
 * digits first and the closest value second.
 */
#include "idbmount/codec/number_text.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Returns 1 when the decimal dg[0..k) * 10^(e-k+1) reads back as a. */
static int digits_round_trip(const char *dg, int k, int e, double a)
{
	char text[48];

	snprintf(text, sizeof(text), "%.*se%d", k, dg, e - (k - 1));
	return strtod(text, NULL) == a;
}

/* Finds a p+1 digit decimal that reads back as a, if there is one: the
 * correctly rounded one, else its upper neighbour. Fills dg (p+1 digits)
 * and *e (exponent of the first digit). Returns 1 if found. */
static int digits_at_precision(double a, int p, char dg[24], int *e)
{
	char text[48], up[24];
	const char *q;
	int k = 0, i, up_e;

	snprintf(text, sizeof(text), "%.*e", p, a);
	/* Collect the digits, skipping whatever radix character the locale uses. */
	for (q = text; *q && *q != 'e'; q++) {
		if (*q >= '0' && *q <= '9' && k < 23)
			dg[k++] = *q;
	}
	*e = (int)strtol(q + 1, NULL, 10);
	if (digits_round_trip(dg, k, *e, a))
		return 1;
	memcpy(up, dg, (size_t)k);
	up_e = *e;
	for (i = k - 1; i >= 0 && up[i] == '9'; i--)
		up[i] = '0';
	if (i < 0) {
		up[0] = '1';
		up_e++;
	} else {
		up[i]++;
	}
	if (!digits_round_trip(up, k, up_e, a))
		return 0;
	memcpy(dg, up, (size_t)k);
	*e = up_e;
	return 1;
}

/* Shortest round-trip digits of a finite a > 0: fills dg (no trailing
 * zeros), returns their count k and sets *n so that a = 0.dg * 10^n. Whether
 * some p+1 digit decimal reads back as a is monotonic in p, so p is found by
 * binary search; 17 digits always suffice. */
static int shortest_digits(double a, char dg[24], int *n)
{
	int lo = 0, hi = 16, e, k;

	/* Most numbers were written with at most 15 significant digits. Then
	 * the 15-digit rounding reads back, and it is the shortest digits with
	 * zeros appended: a normal double is within 2^-53 (relative) of its
	 * shortest decimal, far less than half a unit of the 15th digit. So
	 * one try, not the search, finds them. (Subnormals have fewer bits:
	 * they search.) */
	bool fifteen = isnormal(a) && digits_at_precision(a, 14, dg, &e);
	if (fifteen)
		lo = hi = 14;
	while (lo < hi) {
		int mid = (lo + hi) / 2;

		if (digits_at_precision(a, mid, dg, &e))
			hi = mid;
		else
			lo = mid + 1;
	}
	if (!fifteen)
		digits_at_precision(a, lo, dg, &e);
	k = lo + 1;
	while (k > 1 && dg[k - 1] == '0')
		k--;
	*n = e + 1;
	return k;
}

int number_text_format(double d, char out[32])
{
	char dg[24];
	int k, n, len = 0;

	if (isnan(d))
		return snprintf(out, 32, "NaN");
	if (d == 0)
		return snprintf(out, 32, "0");
	if (isinf(d))
		return snprintf(out, 32, "%s", d > 0 ? "Infinity" : "-Infinity");
	if (d < 0) {
		out[len++] = '-';
		d = -d;
	}
	/* Integers below 2^53 are their own shortest digits: the common case
	 * (keys, counters) skips the search below. */
	if (d < 9007199254740992.0 && d == floor(d))
		return len + snprintf(out + len, 32 - (size_t)len, "%llu", (unsigned long long)d);
	k = shortest_digits(d, dg, &n);
	if (k <= n && n <= 21) {
		/* An integer: the digits and n-k zeros. */
		memcpy(out + len, dg, (size_t)k);
		len += k;
		memset(out + len, '0', (size_t)(n - k));
		len += n - k;
	} else if (0 < n && n <= 21) {
		memcpy(out + len, dg, (size_t)n);
		len += n;
		out[len++] = '.';
		memcpy(out + len, dg + n, (size_t)(k - n));
		len += k - n;
	} else if (-6 < n && n <= 0) {
		out[len++] = '0';
		out[len++] = '.';
		memset(out + len, '0', (size_t)-n);
		len += -n;
		memcpy(out + len, dg, (size_t)k);
		len += k;
	} else {
		out[len++] = dg[0];
		if (k > 1) {
			out[len++] = '.';
			memcpy(out + len, dg + 1, (size_t)(k - 1));
			len += k - 1;
		}
		len += snprintf(out + len, (size_t)(32 - len), "e%c%d", n - 1 < 0 ? '-' : '+',
		                abs(n - 1));
	}
	out[len] = '\0';
	return len;
}

bool number_text_parse_canonical(const char *s, size_t n, double *out)
{
	char digits[32], text[48], again[32];
	size_t i = 0, k = 0;
	long exponent = 0;
	int negative = 0, seen_dot = 0;
	double d;

	if (n == 0 || n >= sizeof(again))
		return 0;
	if (s[0] == '-') {
		negative = 1;
		i = 1;
	}
	if (n - i == 8 && memcmp(s + i, "Infinity", 8) == 0) {
		*out = negative ? -INFINITY : INFINITY;
		return 1;
	}
	/* A permissive reading of digits[.digits][e[+-]digits]; the comparison
	 * with the formatted value below rejects every non-canonical spelling. */
	for (; i < n; i++) {
		if (s[i] >= '0' && s[i] <= '9') {
			digits[k++] = s[i];
			if (seen_dot)
				exponent--;
		} else if (s[i] == '.' && !seen_dot) {
			seen_dot = 1;
		} else {
			break;
		}
	}
	if (k == 0)
		return 0;
	if (i < n) {
		long e = 0;
		int sign = 1;

		if (s[i++] != 'e')
			return 0;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			sign = s[i++] == '-' ? -1 : 1;
		if (i == n)
			return 0;
		for (; i < n; i++) {
			if (s[i] < '0' || s[i] > '9')
				return 0;
			e = e * 10 + (s[i] - '0');
			if (e > 100000)
				return 0;
		}
		exponent += sign * e;
	}
	snprintf(text, sizeof(text), "%.*se%ld", (int)k, digits, exponent);
	d = strtod(text, NULL);
	if (negative)
		d = -d;
	if ((size_t)number_text_format(d, again) != n || memcmp(again, s, n) != 0)
		return 0;
	*out = d;
	return 1;
}
