/*
 * Tests of the ticker (core/node/ticker.c) against a transport whose
 * tick() only counts and lingers: it ticks while running, a pause waits
 * for a tick under way and then none runs, a resume ticks again, and a
 * paused ticker stops at once. Waits are bounded loops on counts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdatomic.h>
#include <time.h>

#include "node/ticker.h"

static atomic_int ticks, inside;

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static int fake_tick(void *state)
{
	(void)state;
	atomic_store(&inside, 1);
	sleep_ms(20); /* long enough for a pause to come in the middle */
	atomic_fetch_add(&ticks, 1);
	atomic_store(&inside, 0);
	return 0;
}

static const struct imgnode_transport_ops ops = {.tick = fake_tick};

/* Waits (at most 10 s) until ticks passes n; false if it never does. */
static bool ticks_pass(int n)
{
	for (int i = 0; i < 1000; i++) {
		if (atomic_load(&ticks) > n)
			return true;
		sleep_ms(10);
	}
	return false;
}

static void test_pause_and_resume(void **state)
{
	struct ticker t;
	int n;

	(void)state;
	atomic_store(&ticks, 0);
	assert_int_equal(ticker_start(&t, &ops, NULL, 5), 0);
	assert_true(ticks_pass(2));
	/* paused: the tick under way has ended, and no other starts */
	ticker_pause(&t);
	assert_int_equal(atomic_load(&inside), 0);
	n = atomic_load(&ticks);
	sleep_ms(100);
	assert_int_equal(atomic_load(&ticks), n);
	ticker_resume(&t);
	assert_true(ticks_pass(n + 1));
	ticker_pause(&t);
	ticker_resume(&t);
	ticker_pause(&t);
	/* stopped while paused: joined at once, its count kept */
	assert_true(ticker_stop(&t) >= (uint64_t)n + 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_pause_and_resume),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
