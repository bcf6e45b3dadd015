/* fuzz.h - what the libFuzzer targets of tests/fuzz share.
 *
 * A target checks properties, not only that nothing crashes: a property
 * that does not hold is reported with FUZZ_CHECK, which prints what was
 * expected and aborts, so libFuzzer keeps the input as a crash. Each
 * target's header comment says which properties it checks.
 */
#ifndef IDBMOUNT_FUZZ_H
#define IDBMOUNT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* Aborts with a message when `cond` does not hold. */
#define FUZZ_CHECK(cond, ...)                                                                      \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: property violated: %s\n  ", __FILE__, __LINE__,    \
			        #cond);                                                            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

/* A copy of `size` bytes with a NUL after them (malloc'd; aborts when out
 * of memory). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	for (size_t i = 0; i < size; i++)
		s[i] = (char)data[i];
	s[size] = '\0';
	return s;
}

#endif
