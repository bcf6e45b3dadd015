/* fuzz.h - what the libFuzzer targets of tests/fuzz share.
 *
 * A target checks properties, not only that nothing crashes: a property
 * that does not hold is reported with FUZZ_CHECK, which prints what was
 * expected and aborts, so libFuzzer keeps the input as a crash. Each
 * target's header comment says which properties it checks.
 */
#ifndef IDBMOUNT_FUZZ_H
#define IDBMOUNT_FUZZ_H

#include <ftw.h>
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

static char fuzz_datadir_path[256];

static inline int fuzz_remove_one(const char *path, const struct stat *sb, int flag,
                                  struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static inline void fuzz_remove_datadir(void)
{
	nftw(fuzz_datadir_path, fuzz_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A new empty directory for a target's data directory, in $TMPDIR (else
 * /tmp), named after `name` and removed with all it holds when the process
 * exits. A target that keeps a store open there closes it in an atexit
 * handler registered after this call (handlers run in reverse order). */
static inline const char *fuzz_temp_datadir(const char *name)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(fuzz_datadir_path, sizeof(fuzz_datadir_path), "%s/idbmount-fuzz-%s-XXXXXX",
	         tmp ? tmp : "/tmp", name);
	FUZZ_CHECK(mkdtemp(fuzz_datadir_path), "mkdtemp %s", fuzz_datadir_path);
	atexit(fuzz_remove_datadir);
	return fuzz_datadir_path;
}

#endif
