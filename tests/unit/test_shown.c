/* test_shown.c - the mark of how far the mount shows the store
 * (src/util/shown.c): a waiter returns once the mark reaches what it waits
 * for, at once while no notifier serves, when the notifier halts (a stop
 * never keeps a waiter), and times out only after idle_ms with no
 * progress, however long a catch-up that keeps moving takes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "idbmount/util/clock.h"
#include "idbmount/util/shown.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>

/* Generous: the machine may be loaded; a hang is what these catch. */
#define JOIN_DEADLINE_MS 30000

struct waiter {
	struct shown *shown;
	int64_t seq, tree_id;
	int idle_ms;
	int rc;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	w->rc = shown_wait(w->shown, w->seq, w->tree_id, w->idle_ms);
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&t, NULL);
}

/* Joins `thread` or fails the test when it does not return in time. */
static void join_in_time(pthread_t thread)
{
	struct timespec until = clock_deadline(CLOCK_REALTIME, JOIN_DEADLINE_MS);
	assert_int_equal(pthread_timedjoin_np(thread, NULL, &until), 0);
}

static void test_no_notifier_no_wait(void **state)
{
	(void)state;
	assert_int_equal(shown_wait(NULL, 5, 5, 60000), 0);
	struct shown *s;
	assert_int_equal(shown_new(&s), 0);
	/* Not yet serving: returns at once, not after the idle minute. */
	assert_int_equal(shown_wait(s, 5, 5, 60000), 0);
	/* An advance without a notifier serving moves nothing. */
	shown_advance(s, 10, 10);
	shown_serve(s, 1, 1);
	assert_int_equal(shown_wait(s, 2, 0, 10), -ETIMEDOUT);
	shown_halt(s);
	assert_int_equal(shown_wait(s, 5, 5, 60000), 0);
	shown_free(s);
}

static void test_reached_and_idle(void **state)
{
	(void)state;
	struct shown *s;
	assert_int_equal(shown_new(&s), 0);
	shown_serve(s, 5, 3);
	assert_int_equal(shown_wait(s, 5, 3, 60000), 0);
	assert_int_equal(shown_wait(s, 0, 0, 60000), 0);
	assert_int_equal(shown_wait(s, 6, 0, 20), -ETIMEDOUT);
	assert_int_equal(shown_wait(s, 0, 4, 20), -ETIMEDOUT);
	shown_advance(s, 6, 3);
	assert_int_equal(shown_wait(s, 6, 0, 60000), 0);
	assert_int_equal(shown_wait(s, 6, 4, 20), -ETIMEDOUT);
	shown_halt(s);
	shown_free(s);
}

static void test_an_advance_wakes_the_waiter(void **state)
{
	(void)state;
	struct shown *s;
	assert_int_equal(shown_new(&s), 0);
	shown_serve(s, 0, 0);
	struct waiter w = {.shown = s, .seq = 7, .tree_id = 2, .idle_ms = 60000, .rc = 1};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, wait_thread, &w), 0);
	sleep_ms(20);
	shown_advance(s, 7, 1); /* the tree log is not there yet */
	sleep_ms(20);
	shown_advance(s, 7, 2);
	join_in_time(t);
	assert_int_equal(w.rc, 0);
	shown_halt(s);
	shown_free(s);
}

static void test_a_halt_wakes_every_waiter(void **state)
{
	(void)state;
	struct shown *s;
	assert_int_equal(shown_new(&s), 0);
	shown_serve(s, 0, 0);
	struct waiter w[3];
	pthread_t t[3];
	for (int i = 0; i < 3; i++) {
		w[i] = (struct waiter){.shown = s, .seq = 100 + i, .idle_ms = 600000, .rc = 1};
		assert_int_equal(pthread_create(&t[i], NULL, wait_thread, &w[i]), 0);
	}
	sleep_ms(50);
	shown_halt(s);
	for (int i = 0; i < 3; i++) {
		join_in_time(t[i]);
		assert_int_equal(w[i].rc, 0);
	}
	shown_free(s);
}

static void test_progress_keeps_a_waiter_waiting(void **state)
{
	(void)state;
	struct shown *s;
	assert_int_equal(shown_new(&s), 0);
	shown_serve(s, 0, 0);
	/* 30 steps 100 ms apart: three seconds, past the idle two, each step
	 * well within them. */
	struct waiter w = {.shown = s, .seq = 30, .idle_ms = 2000, .rc = 1};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, wait_thread, &w), 0);
	for (int64_t seq = 1; seq <= 30; seq++) {
		sleep_ms(100);
		shown_advance(s, seq, 0);
	}
	join_in_time(t);
	assert_int_equal(w.rc, 0);
	shown_halt(s);
	shown_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_no_notifier_no_wait),
	        cmocka_unit_test(test_reached_and_idle),
	        cmocka_unit_test(test_an_advance_wakes_the_waiter),
	        cmocka_unit_test(test_a_halt_wakes_every_waiter),
	        cmocka_unit_test(test_progress_keeps_a_waiter_waiting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
