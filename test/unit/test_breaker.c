/*
 * The ingress's breakers and executors (core/node/breaker.c, executor.c)
 * with a fake dependency: operations that return what the test says, or
 * block until it lets them go; a ping that answers as the test says. No
 * test depends on timing beyond bounded waits for the executor's thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "node/breaker.h"
#include "node/executor.h"

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the breaker alone ---- */

static void counts_outages_not_refusals(void **state)
{
	(void)state;
	assert_true(breaker_counts(-ETIME));
	assert_true(breaker_counts(-ETIMEDOUT));
	assert_true(breaker_counts(-ENOTCONN));
	assert_true(breaker_counts(-ECONNREFUSED));
	assert_true(breaker_counts(-EIO));
	assert_false(breaker_counts(0));
	assert_false(breaker_counts(-ENOENT));
	assert_false(breaker_counts(-EBADMSG));
	assert_false(breaker_counts(-EFBIG));
	assert_false(breaker_counts(-EINVAL));
}

static void opens_once_and_closes_once(void **state)
{
	struct breaker b = {0};

	(void)state;
	assert_int_equal(breaker_ok(&b, 100), -1);
	assert_true(breaker_fail(&b, 1000, "rados: osd op\ntimed out"));
	assert_true(b.open);
	/* the first reason stays, unprintable bytes replaced */
	assert_string_equal(b.why, "rados: osd op?timed out");
	assert_false(breaker_fail(&b, 2000, "something else"));
	assert_string_equal(b.why, "rados: osd op?timed out");
	assert_int_equal(breaker_ok(&b, 4500), 3500);
	assert_false(b.open);
	assert_int_equal(breaker_ok(&b, 5000), -1);
	assert_true(breaker_fail(&b, 6000, "again"));
	assert_int_equal(b.opened, 2);
}

static void keeps_a_long_reason_short(void **state)
{
	struct breaker b = {0};
	char why[1000];

	(void)state;
	memset(why, 'x', sizeof(why) - 1);
	why[sizeof(why) - 1] = '\0';
	assert_true(breaker_fail(&b, 1, why));
	assert_int_equal(strlen(b.why), BREAKER_WHY_MAX - 1);
}

/* ---- an executor over a fake dependency ---- */

struct fake {
	atomic_int ping_ret; /* what ping answers */
	atomic_int pings;
};

struct op {
	struct exec_op op;
	int ret; /* what run returns */
	sem_t *gate; /* run waits for it, if set */
	atomic_int *ran, *dropped;
};

static int op_run(struct exec_op *op, void *state)
{
	struct op *o = (struct op *)op;

	(void)state;
	if (o->gate)
		sem_wait(o->gate);
	atomic_fetch_add(o->ran, 1);
	return o->ret;
}

static void op_drop(struct exec_op *op)
{
	struct op *o = (struct op *)op;

	atomic_fetch_add(o->dropped, 1);
	free(o);
}

static int fake_ping(void *state)
{
	struct fake *f = state;

	atomic_fetch_add(&f->pings, 1);
	return atomic_load(&f->ping_ret);
}

struct fx {
	struct fake fake;
	struct executor ex;
	sem_t gate;
	atomic_int ran, dropped;
};

static struct op *new_op(struct fx *f, int ret, bool gated)
{
	struct op *o = calloc(1, sizeof(*o));

	assert_non_null(o);
	o->op.run = op_run;
	o->op.drop = op_drop;
	o->ret = ret;
	o->gate = gated ? &f->gate : NULL;
	o->ran = &f->ran;
	o->dropped = &f->dropped;
	return o;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	sem_init(&f->gate, 0, 0);
	f->ex.name = "storage";
	snprintf(f->ex.label, sizeof(f->ex.label), "fake pool p");
	f->ex.state = &f->fake;
	f->ex.ping = fake_ping;
	f->ex.idle_fd = -1;
	f->ex.turn_ms = 50;
	if (executor_start(&f->ex))
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < 8; i++)
		sem_post(&f->gate); /* let anything still blocked go */
	assert_true(executor_stop(&f->ex, 5000));
	sem_destroy(&f->gate);
	free(f);
	return 0;
}

/* Waits (bounded) until the dependency is up, or down. */
static void wait_up(struct executor *ex, bool up)
{
	int64_t until = now_ms() + 10000;

	while (executor_up(ex, NULL, 0, NULL) != up) {
		assert_true(now_ms() < until);
		usleep(10000);
	}
}

static void runs_an_op_and_gives_its_result(void **state)
{
	struct fx *f = *state;
	struct op *o = new_op(f, -ENOENT, false);

	/* an answer, even "no such object", keeps it up */
	assert_int_equal(executor_call(&f->ex, &o->op, now_ms() + 10000),
	                 -ENOENT);
	assert_int_equal(atomic_load(&f->ran), 1);
	assert_true(executor_up(&f->ex, NULL, 0, NULL));
	op_drop(&o->op);
}

static void a_deadline_opens_it_and_a_ping_closes_it(void **state)
{
	struct fx *f = *state;
	struct op *stuck = new_op(f, 0, true), *queued = new_op(f, 0, false);
	char why[BREAKER_WHY_MAX];
	int64_t t0;

	atomic_store(&f->fake.ping_ret, -ETIMEDOUT);
	assert_int_equal(executor_call(&f->ex, &stuck->op, now_ms() + 200),
	                 -ETIME);
	/* down, named, and every call now refused at once, never run */
	assert_false(executor_up(&f->ex, why, sizeof(why), NULL));
	assert_non_null(strstr(why, "fake pool p: no answer within"));
	t0 = now_ms();
	assert_int_equal(executor_call(&f->ex, &queued->op, now_ms() + 5000),
	                 -ECANCELED);
	assert_true(now_ms() - t0 < 1000);
	op_drop(&queued->op);
	assert_int_equal(atomic_load(&f->dropped), 1);
	/* the stuck op returns: its result is thrown away, it is freed */
	sem_post(&f->gate);
	for (int64_t until = now_ms() + 10000; atomic_load(&f->dropped) < 2;)
		assert_true(now_ms() < until), usleep(10000);
	assert_int_equal(atomic_load(&f->ran), 1);
	/* "0 returned" closed it; make it fail again, pings keep it down */
	queued = new_op(f, -ENOTCONN, false);
	assert_int_equal(executor_call(&f->ex, &queued->op, now_ms() + 5000),
	                 -ENOTCONN);
	op_drop(&queued->op);
	assert_false(executor_up(&f->ex, NULL, 0, NULL));
	for (int64_t until = now_ms() + 10000; atomic_load(&f->fake.pings) < 2;)
		assert_true(now_ms() < until), usleep(10000);
	assert_false(executor_up(&f->ex, NULL, 0, NULL));
	/* it answers again: the next ping closes it */
	atomic_store(&f->fake.ping_ret, 0);
	wait_up(&f->ex, true);
}

static void a_queued_op_past_its_deadline_never_runs(void **state)
{
	struct fx *f = *state;
	struct op *stuck = new_op(f, 0, true), *behind = new_op(f, 0, false);

	executor_post(&f->ex, &stuck->op);
	assert_int_equal(executor_call(&f->ex, &behind->op, now_ms() + 200),
	                 -ETIME);
	/* dropped by the caller's side at once, unrun */
	assert_int_equal(atomic_load(&f->dropped), 1);
	sem_post(&f->gate);
	for (int64_t until = now_ms() + 10000; atomic_load(&f->dropped) < 2;)
		assert_true(now_ms() < until), usleep(10000);
	assert_int_equal(atomic_load(&f->ran), 1);
}

static void posted_ops_are_dropped_while_down(void **state)
{
	struct fx *f = *state;
	struct op *fail = new_op(f, -EIO, false);

	atomic_store(&f->fake.ping_ret, -EIO);
	assert_int_equal(executor_call(&f->ex, &fail->op, now_ms() + 5000),
	                 -EIO);
	op_drop(&fail->op);
	assert_false(executor_up(&f->ex, NULL, 0, NULL));
	executor_post(&f->ex, &new_op(f, 0, false)->op);
	for (int64_t until = now_ms() + 10000; atomic_load(&f->dropped) < 2;)
		assert_true(now_ms() < until), usleep(10000);
	assert_int_equal(atomic_load(&f->ran), 1); /* only the first */
}

static void a_patient_call_past_its_deadline_opens_nothing(void **state)
{
	struct fx *f = *state;
	struct op *stuck = new_op(f, 0, true);

	stuck->op.patient = true; /* /metrics' queue depths */
	assert_int_equal(executor_call(&f->ex, &stuck->op, now_ms() + 100),
	                 -ETIME);
	assert_true(executor_up(&f->ex, NULL, 0, NULL));
	sem_post(&f->gate);
	for (int64_t until = now_ms() + 10000; atomic_load(&f->dropped) < 1;)
		assert_true(now_ms() < until), usleep(10000);
}

static void a_stuck_call_opens_it_while_still_stuck(void **state)
{
	struct fx *f = *state;
	struct op *stuck = new_op(f, 0, true);

	executor_post(&f->ex, &stuck->op);
	usleep(100000);
	executor_check(&f->ex, 10000);
	assert_true(executor_up(&f->ex, NULL, 0, NULL));
	executor_check(&f->ex, 50);
	assert_false(executor_up(&f->ex, NULL, 0, NULL));
	sem_post(&f->gate);
	wait_up(&f->ex, true); /* it answered */
}

/* executor_begin's callback: what it heard, once. */
struct heard {
	atomic_int calls;
	atomic_int ret;
};

static void on_done(struct exec_op *op, int ret, void *arg)
{
	struct heard *h = arg;

	(void)op;
	atomic_store(&h->ret, ret);
	atomic_fetch_add(&h->calls, 1);
}

static void wait_heard(struct heard *h)
{
	for (int64_t until = now_ms() + 10000; atomic_load(&h->calls) < 1;)
		assert_true(now_ms() < until), usleep(10000);
}

static void a_begun_op_tells_its_end(void **state)
{
	struct fx *f = *state;
	struct op *o = new_op(f, -ENOENT, false);
	struct heard h = {0};

	assert_int_equal(
	        executor_begin(&f->ex, &o->op, now_ms() + 10000, on_done, &h),
	        0);
	wait_heard(&h);
	assert_int_equal(atomic_load(&h.ret), -ENOENT);
	/* the op is the caller's again, and only once told */
	usleep(50000);
	assert_int_equal(atomic_load(&h.calls), 1);
	assert_int_equal(atomic_load(&f->dropped), 0);
	op_drop(&o->op);
}

static void expiry_ends_begun_ops_past_their_deadline(void **state)
{
	struct fx *f = *state;
	struct op *stuck = new_op(f, 0, true), *behind = new_op(f, 0, false);
	struct heard hs = {0}, hb = {0};
	int64_t now = now_ms();

	atomic_store(&f->fake.ping_ret, -ETIMEDOUT);
	assert_int_equal(
	        executor_begin(&f->ex, &stuck->op, now + 100, on_done, &hs), 0);
	assert_int_equal(
	        executor_begin(&f->ex, &behind->op, now + 100000, on_done, &hb),
	        0);
	/* before the deadline: nothing ends */
	executor_expire(&f->ex, now, false);
	assert_int_equal(atomic_load(&hs.calls), 0);
	assert_true(executor_up(&f->ex, NULL, 0, NULL));
	/* past the first one's: it ends (-ETIME), the breaker opens, the
	 * other one waits on */
	usleep(150000);
	executor_expire(&f->ex, now_ms(), false);
	assert_int_equal(atomic_load(&hs.calls), 1);
	assert_int_equal(atomic_load(&hs.ret), -ETIME);
	assert_int_equal(atomic_load(&hb.calls), 0);
	assert_false(executor_up(&f->ex, NULL, 0, NULL));
	/* new ones are refused at once */
	struct op *late = new_op(f, 0, false);
	assert_int_equal(executor_begin(&f->ex, &late->op, now_ms() + 10000,
	                                on_done, &hb),
	                 -ECANCELED);
	op_drop(&late->op);
	/* stopping: every wait ends; one never run was never tried */
	executor_expire(&f->ex, now_ms(), true);
	assert_int_equal(atomic_load(&hb.calls), 1);
	assert_int_equal(atomic_load(&hb.ret), -ECANCELED);
	/* the stuck one, freed when it returns; the other, dropped unrun */
	sem_post(&f->gate);
	for (int64_t until = now_ms() + 10000; atomic_load(&f->dropped) < 3;)
		assert_true(now_ms() < until), usleep(10000);
	assert_int_equal(atomic_load(&f->ran), 1);
	assert_int_equal(atomic_load(&hs.calls), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(counts_outages_not_refusals),
	        cmocka_unit_test(opens_once_and_closes_once),
	        cmocka_unit_test(keeps_a_long_reason_short),
	        cmocka_unit_test_setup_teardown(runs_an_op_and_gives_its_result,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                a_deadline_opens_it_and_a_ping_closes_it, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(
	                a_queued_op_past_its_deadline_never_runs, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(
	                posted_ops_are_dropped_while_down, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                a_patient_call_past_its_deadline_opens_nothing, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(
	                a_stuck_call_opens_it_while_still_stuck, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(a_begun_op_tells_its_end, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(
	                expiry_ends_begun_ops_past_their_deadline, setup,
	                teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
