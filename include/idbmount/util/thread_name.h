/* thread_name.h - names the calling thread, as `top -H`, `ps -L`, perf and
 * gdb show it: each of the daemon's threads says what it is for. */
#ifndef IDBMOUNT_THREAD_NAME_H
#define IDBMOUNT_THREAD_NAME_H

/* Names the calling thread `prefix` followed by `name` (NULL for none),
 * cut to the kernel's 15 bytes. Failing to name a thread changes
 * nothing else, so there is nothing to return. */
void thread_name_set(const char *prefix, const char *name);

#endif
