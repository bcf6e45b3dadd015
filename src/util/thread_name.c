/* thread_name.c - see thread_name.h. */
#include "idbmount/util/thread_name.h"

#include <pthread.h>
#include <stdio.h>

void thread_name_set(const char *prefix, const char *name)
{
	char cut[16]; /* the kernel's TASK_COMM_LEN, with its NUL */
	snprintf(cut, sizeof(cut), "%s%s", prefix, name ? name : "");
	pthread_setname_np(pthread_self(), cut);
}
