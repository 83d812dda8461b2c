/*
 * Unit tests for the supervisor's deadlines: a tree in the test's own loop,
 * with real forked children. The supervisor has no tick, so these check
 * that a deadline alone wakes the loop and acts (a start timeout, a restart
 * backoff), and that an idle tree does not wake at all. Each run has a
 * guard timer: the only other thing that could wake the loop; the tests
 * assert it did not fire and count what happened, never how fast.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "spawn.h"
#include "supervisor.h"

#define GUARD_MS 10000

struct run {
	struct loop *loop;
	struct sup *root;
	bool ready, guard_fired;
	bool stop_on_ready;
	int exit_code;
	unsigned restarts; /* at the root's exit */
	char last_exit[64]; /* of the first child, at the root's exit */
	char second_exit[64]; /* of the second child, if any */
	unsigned wakeups; /* loop turns (prepare hook calls) */
};

/* Reports ready, then waits to be killed. */
static int child_hang(void *arg, const char *id)
{
	(void)arg;
	(void)id;
	proc_notify_ready();
	for (;;)
		pause();
	return 0;
}

/* Never reports ready. */
static int child_silent(void *arg, const char *id)
{
	(void)arg;
	(void)id;
	for (;;)
		pause();
	return 0;
}

/* Crashes at once. */
static int child_crash(void *arg, const char *id)
{
	(void)arg;
	(void)id;
	return 1;
}

static void on_ready(struct sup *root, void *arg)
{
	struct run *r = arg;

	(void)root;
	r->ready = true;
	if (r->stop_on_ready)
		loop_stop(r->loop, 0);
}

static void on_exit_tree(struct sup *root, int code, void *arg)
{
	struct run *r = arg;
	json_t *st = sup_status(root);
	json_t *child = json_array_get(json_object_get(st, "children"), 0);
	const char *last =
	        json_string_value(json_object_get(child, "last_exit"));
	json_t *second = json_array_get(json_object_get(st, "children"), 1);
	const char *second_last =
	        json_string_value(json_object_get(second, "last_exit"));

	r->exit_code = code;
	r->restarts = sup_restarts(root);
	snprintf(r->last_exit, sizeof(r->last_exit), "%s", last ? last : "");
	snprintf(r->second_exit, sizeof(r->second_exit), "%s",
	         second_last ? second_last : "");
	json_decref(st);
	loop_stop(r->loop, 0);
}

static void on_guard(struct loop *loop, void *arg)
{
	struct run *r = arg;

	r->guard_fired = true;
	loop_stop(loop, 1);
}

static void count_wakeup(struct loop *loop, void *arg)
{
	(void)loop;
	((struct run *)arg)->wakeups++;
}

/* Runs spec until the root exits (or the guard fires); the guard is
 * cancelled unless it fired. */
static void run_tree(struct run *r, const struct sup_spec *spec)
{
	struct loop_timer *guard;

	memset(r, 0, sizeof(*r));
	r->loop = loop_new();
	assert_non_null(r->loop);
	r->root = sup_start(r->loop, spec, on_ready, on_exit_tree, r);
	assert_non_null(r->root);
	guard = loop_timer_add(r->loop, GUARD_MS, on_guard, r);
	loop_run(r->loop);
	if (!r->guard_fired)
		loop_timer_cancel(r->loop, guard);
}

static void end_run(struct run *r)
{
	sup_free(r->root);
	loop_free(r->loop);
}

/*
 * One permanent child crashing at every start under intensity 3 and the
 * backoff bounds given: runs the tree until it gives up.
 */
static void run_crashing(struct run *r, int64_t backoff_min_ms,
                         int64_t backoff_max_ms)
{
	const struct sup_child_spec child = {
	        .id = "crash",
	        .type = SUP_WORKER,
	        .restart = SUP_PERMANENT,
	        .start = child_crash,
	};
	const struct sup_spec spec = {
	        .id = "root",
	        .strategy = SUP_ONE_FOR_ONE,
	        .intensity = 3,
	        .period_ms = 60000,
	        .backoff_min_ms = backoff_min_ms,
	        .backoff_max_ms = backoff_max_ms,
	        .children = &child,
	        .nchildren = 1,
	};

	run_tree(r, &spec);
}

/*
 * A child that never says ready is killed at its start timeout and counts
 * as a crash; with intensity 0 the tree gives up (exit 1). Nothing but the
 * deadline wakes the loop before the kill.
 */
static void test_start_timeout_fires_without_a_tick(void **state)
{
	const struct sup_child_spec child = {
	        .id = "silent",
	        .type = SUP_WORKER,
	        .restart = SUP_PERMANENT,
	        .shutdown_ms = 0,
	        .start = child_silent,
	        .start_timeout_ms = 100,
	};
	const struct sup_spec spec = {
	        .id = "root",
	        .strategy = SUP_ONE_FOR_ONE,
	        .intensity = 0,
	        .period_ms = 10000,
	        .children = &child,
	        .nchildren = 1,
	};
	struct run r;

	(void)state;
	run_tree(&r, &spec);
	assert_false(r.guard_fired);
	assert_false(r.ready);
	assert_int_equal(r.exit_code, 1);
	assert_int_equal(r.restarts, 1);
	assert_non_null(strstr(r.last_exit, "start timeout"));
	end_run(&r);
}

/*
 * A child crashing at once is restarted at once, then after a backoff each
 * time; only the backoff's deadline can start it again. The fourth restart
 * passes intensity 3: four restarts counted, then exit 1.
 */
static void test_backoff_restart_happens_without_a_tick(void **state)
{
	struct run r;

	(void)state;
	run_crashing(&r, 50, 100);
	assert_false(r.guard_fired);
	assert_int_equal(r.exit_code, 1);
	assert_int_equal(r.restarts, 4);
	assert_string_equal(r.last_exit, "exit 1");
	end_run(&r);
}

static void on_quiet_end(struct loop *loop, void *arg)
{
	(void)arg;
	loop_stop(loop, 0);
}

/*
 * A running tree with no deadline (no heartbeat, no start timeout under
 * way, no max_rss) sleeps until something happens: over a quiet stretch
 * the loop turns only for the timer that ends it (a 20 ms tick would turn
 * it about 25 times). Then an orderly stop, exit 0.
 */
static void test_idle_tree_does_not_wake(void **state)
{
	const struct sup_child_spec child = {
	        .id = "idle",
	        .type = SUP_WORKER,
	        .restart = SUP_PERMANENT,
	        .shutdown_ms = 1000,
	        .start = child_hang,
	        .start_timeout_ms = 5000,
	};
	const struct sup_spec spec = {
	        .id = "root",
	        .strategy = SUP_ONE_FOR_ONE,
	        .intensity = 1,
	        .period_ms = 10000,
	        .children = &child,
	        .nchildren = 1,
	};
	struct loop_prepare *hook;
	struct loop_timer *guard;
	struct run r;

	(void)state;
	memset(&r, 0, sizeof(r));
	r.stop_on_ready = true;
	r.loop = loop_new();
	assert_non_null(r.loop);
	r.root = sup_start(r.loop, &spec, on_ready, on_exit_tree, &r);
	assert_non_null(r.root);
	guard = loop_timer_add(r.loop, GUARD_MS, on_guard, &r);
	while (!r.ready && !r.guard_fired)
		loop_run(r.loop); /* the status pipe wakes it: "ready" */
	assert_false(r.guard_fired);
	hook = loop_prepare_add(r.loop, count_wakeup, &r);
	assert_non_null(hook);
	loop_timer_add(r.loop, 500, on_quiet_end, &r);
	loop_run(r.loop);
	loop_prepare_del(r.loop, hook);
	assert_true(r.wakeups <= 2);
	sup_shutdown(r.root);
	loop_run(r.loop);
	assert_false(r.guard_fired);
	assert_int_equal(r.exit_code, 0);
	assert_int_equal(r.restarts, 0);
	loop_timer_cancel(r.loop, guard);
	end_run(&r);
}

/*
 * Pool members for test_pool_backoff_is_per_member: m.1 crashes before it
 * says ready, every time; m.2 says ready, and in its first life crashes
 * 100 ms later (lives counted in memory shared with the test).
 */
static int child_pool_member(void *arg, const char *id)
{
	_Atomic int *lives = arg;

	if (strcmp(id, "m.1") == 0)
		return 1;
	proc_notify_ready();
	if (atomic_fetch_add(lives, 1) == 0) {
		usleep(100 * 1000);
		return 1;
	}
	for (;;)
		pause();
	return 0;
}

/*
 * In a pool each member backs off on its own: m.1 crashes twice in a row
 * and waits 2 s; m.2, crashing meanwhile for the first time, is restarted
 * at once instead of waiting behind m.1. m.1's next crash is the fourth
 * restart, past intensity 3: the pool stops m.2, which was running again
 * (SIGKILLed: brutal_kill), not still down from its crash ("exit 1").
 */
static void test_pool_backoff_is_per_member(void **state)
{
	_Atomic int *lives = mmap(NULL, sizeof(*lives), PROT_READ | PROT_WRITE,
	                          MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	const struct sup_child_spec child = {
	        .id = "m",
	        .type = SUP_WORKER,
	        .restart = SUP_PERMANENT,
	        .shutdown_ms = 0,
	        .start = child_pool_member,
	        .arg = lives,
	        .start_timeout_ms = 5000,
	};
	const struct sup_spec spec = {
	        .id = "root",
	        .strategy = SUP_SIMPLE_ONE_FOR_ONE,
	        .intensity = 3,
	        .period_ms = 60000,
	        .backoff_min_ms = 2000,
	        .backoff_max_ms = 2000,
	        .children = &child,
	        .nchildren = 1,
	        .count = 2,
	};
	struct run r;

	(void)state;
	assert_true(lives != MAP_FAILED);
	atomic_store(lives, 0);
	run_tree(&r, &spec);
	assert_false(r.guard_fired);
	assert_int_equal(r.exit_code, 1);
	assert_int_equal(r.restarts, 4);
	assert_string_equal(r.last_exit, "exit 1");
	assert_int_equal(atomic_load(lives), 2);
	assert_string_equal(r.second_exit, "signal SIGKILL");
	end_run(&r);
	munmap(lives, sizeof(*lives));
}

/*
 * The backoff never passes its cap, even when backoff_min is above it
 * (the workers' own cap may be set below [supervisor] backoff_min): with
 * backoff_min 5 s and a cap of 50 ms, a child crashing at once is
 * restarted past intensity 3 well within the guard.
 */
static void test_backoff_min_is_capped(void **state)
{
	struct run r;

	(void)state;
	run_crashing(&r, 5000, 50);
	assert_false(r.guard_fired);
	assert_int_equal(r.exit_code, 1);
	assert_int_equal(r.restarts, 4);
	end_run(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_start_timeout_fires_without_a_tick),
	        cmocka_unit_test(test_backoff_restart_happens_without_a_tick),
	        cmocka_unit_test(test_idle_tree_does_not_wake),
	        cmocka_unit_test(test_pool_backoff_is_per_member),
	        cmocka_unit_test(test_backoff_min_is_capped),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
