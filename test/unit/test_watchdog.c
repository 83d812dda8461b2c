/*
 * The deadline watchdog (core/node/watchdog.c) against the real fs storage
 * plugin, loaded as the worker loads it: a job still running at its
 * deadline gets "overruns" in its record, the second overrun fails it with
 * the reason, and a disarmed watchdog writes nothing. Deadlines are given
 * in the past or far in the future, so no test depends on timing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "host.h"
#include "node/job.h"
#include "node/watchdog.h"
#include "plugin.h"

#define ID_A "0123456789abcdef0123456789abcdef"
#define ID_B "fedcba9876543210fedcba9876543210"

struct fx {
	char dir[64];
	void *dl;
	struct conf *conf;
	struct plugin storage; /* as the worker's plugin set holds it */
	struct watchdog *wd;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char ini[128], err[CONF_ERR_MAX] = "";
	FILE *fp;

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/imgnode-watchdog-XXXXXX");
	if (!mkdtemp(f->dir) ||
	    snprintf(ini, sizeof(ini), "%s/imgnode.ini", f->dir) < 0 ||
	    !(fp = fopen(ini, "w"))) {
		free(f);
		return -1;
	}
	fprintf(fp, "[node]\nstate_dir = %s\n[storage]\nplugin = fs\n", f->dir);
	fclose(fp);
	f->storage.desc = harness_load("fs", IMGNODE_KIND_STORAGE, &f->dl);
	if (!f->storage.desc)
		return -1;
	f->storage.conf = harness_configure(f->storage.desc, ini, "storage",
	                                    &f->conf, err, sizeof(err));
	if (!f->storage.conf ||
	    f->storage.desc->init(host_table(), f->storage.conf,
	                          &f->storage.state)) {
		fprintf(stderr, "fs: %s\n", err);
		return -1;
	}
	if (watchdog_start(&f->wd, &f->storage, 400, NULL, err, sizeof(err))) {
		fprintf(stderr, "watchdog: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	watchdog_stop(f->wd);
	f->storage.desc->fini(f->storage.state);
	harness_release(f->storage.desc, &f->storage.conf, &f->conf);
	dlclose(f->dl);
	harness_rm_tree(f->dir);
	free(f);
	return 0;
}

static json_t *running(const char *id)
{
	return json_pack("{s:s, s:s, s:i, s:n}", "id", id, "status", "running",
	                 "attempts", 1, "error");
}

/* The stored record of id, or NULL if there is none. */
static json_t *stored(struct fx *f, const char *id)
{
	int ret;
	json_t *rec = job_record_get(&f->storage, id, &ret);

	if (!rec)
		assert_int_equal(ret, -ENOENT);
	return rec;
}

/* Waits (bounded) until id's record has overruns == n; returns it. */
static json_t *wait_overruns(struct fx *f, const char *id, json_int_t n)
{
	struct timespec pause = {0, 10 * 1000000};

	for (int i = 0; i < 1000; i++) {
		json_t *rec = stored(f, id);
		if (rec &&
		    json_integer_value(json_object_get(rec, "overruns")) == n)
			return rec;
		json_decref(rec);
		nanosleep(&pause, NULL);
	}
	fail_msg("job %s never got overruns=%lld", id, (long long)n);
	return NULL;
}

/* Past the deadline once: marked, still running (one more attempt);
 * twice: failed, with the reason. */
static void test_overruns_are_counted_then_fail(void **state)
{
	struct fx *f = *state;
	json_t *rec = running(ID_A), *got;

	watchdog_arm(f->wd, rec, now_ms());
	got = wait_overruns(f, ID_A, 1);
	watchdog_disarm(f->wd);
	assert_string_equal(json_string_value(json_object_get(got, "status")),
	                    "running");
	assert_true(json_is_null(json_object_get(got, "error")));
	/* the next attempt starts from the stored record */
	watchdog_arm(f->wd, got, now_ms());
	json_decref(got);
	got = wait_overruns(f, ID_A, 2);
	watchdog_disarm(f->wd);
	assert_string_equal(json_string_value(json_object_get(got, "status")),
	                    "failed");
	assert_string_equal(
	        json_string_value(json_object_get(got, "error")),
	        "killed after job_timeout (0.4 s) on 2 attempts: the job costs more than a worker may spend on one");
	assert_non_null(json_object_get(got, "finished"));
	json_decref(got);
	json_decref(rec);
}

/* Disarmed before its deadline: nothing written, ever. The watchdog
 * serves one job at a time, so once the next job's mark is written the
 * first one's can no longer come. */
static void test_disarmed_writes_nothing(void **state)
{
	struct fx *f = *state;
	json_t *a = running(ID_A), *b = running(ID_B), *got;

	watchdog_arm(f->wd, a, now_ms() + 60000);
	watchdog_disarm(f->wd);
	watchdog_arm(f->wd, b, now_ms());
	got = wait_overruns(f, ID_B, 1);
	watchdog_disarm(f->wd);
	assert_null(stored(f, ID_A));
	/* arming again replaces the job watched */
	watchdog_arm(f->wd, a, now_ms() + 60000);
	watchdog_arm(f->wd, got, now_ms());
	json_decref(got);
	json_decref(wait_overruns(f, ID_B, 2));
	watchdog_disarm(f->wd);
	assert_null(stored(f, ID_A));
	json_decref(a);
	json_decref(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(
	                test_overruns_are_counted_then_fail, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_disarmed_writes_nothing,
	                                        setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
