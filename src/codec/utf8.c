/* utf8.c - the one UTF-8 check of the codecs (see utf8.h). */
#include "utf8.h"

size_t utf8_sequence(const unsigned char *t, size_t len, size_t i)
{
	unsigned c = t[i];
	size_t n;
	unsigned cp;
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		cp = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		cp = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (i + n > len)
		return 0;
	for (size_t k = 1; k < n; k++) {
		if ((t[i + k] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (t[i + k] & 0x3F);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return n;
}

bool utf8_valid(const char *s, size_t n)
{
	const unsigned char *t = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		if (t[i] < 0x80) {
			i++;
			continue;
		}
		size_t len = utf8_sequence(t, n, i);
		if (!len)
			return false;
		i += len;
	}
	return true;
}
