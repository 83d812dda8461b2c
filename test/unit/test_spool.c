/*
 * Unit tests of the spool transport, loaded as the node loads it (dlopen of
 * $BUILD/plugins/spool.so), configured from an INI file through the real
 * config loader and driven through its ops with the real host table. The
 * tests that need several consumers fork: each child opens its own state,
 * reports through its exit status or a pipe, and never returns to cmocka.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "host.h"
#include "node/node_conf.h"
#include "node/ticker.h"
#include "plugin.h"

#define JOBS IMGNODE_QUEUE_JOBS
#define DEAD IMGNODE_QUEUE_DEAD
#define REPLY IMGNODE_QUEUE_REPLY

static void *handle;
static const struct imgnode_plugin *plugin;
static const struct imgnode_transport_ops *ops;

/* One test's spool: its temp dir, config and this process's state. */
struct env {
	char dir[64];
	char spool[96];
	struct conf *conf;
	void *cfg;
	void *st;
	struct harness_transport tr; /* st, for the harness */
};

static int load_plugin(void **state)
{
	(void)state;
	plugin = harness_load("spool", IMGNODE_KIND_TRANSPORT, &handle);
	if (!plugin || strcmp(plugin->name, "spool") != 0)
		return -1;
	ops = plugin->ops;
	return 0;
}

static int unload_plugin(void **state)
{
	(void)state;
	dlclose(handle);
	return 0;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e)
		return -1;
	snprintf(e->dir, sizeof(e->dir), "/tmp/imgnode-spool-XXXXXX");
	if (!mkdtemp(e->dir)) {
		free(e);
		return -1;
	}
	snprintf(e->spool, sizeof(e->spool), "%s/q", e->dir);
	*state = e;
	return 0;
}

/* Fills the config from [transport] keys (plus dir unless default_dir). */
static int env_config(struct env *e, const char *keys, bool default_dir,
                      char *err, size_t errlen)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/imgnode.ini", e->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "[node]\nstate_dir = %s\n[transport]\nplugin = spool\n",
	        e->dir);
	if (!default_dir)
		fprintf(f, "dir = %s\n", e->spool);
	fputs(keys, f);
	fclose(f);
	e->cfg = harness_configure(plugin, path, "transport", &e->conf, err,
	                           errlen);
	return e->cfg ? 0 : -1;
}

static void env_start(struct env *e, const char *keys)
{
	char err[CONF_ERR_MAX] = "";

	if (env_config(e, keys, false, err, sizeof(err)) != 0)
		fail_msg("config: %s", err);
	assert_int_equal(plugin->init(host_table(), e->cfg, &e->st), 0);
	e->tr = (struct harness_transport){plugin, e->cfg, e->st, 1000};
}

/* Closes the state and frees the config; the spool stays. */
static void env_stop(struct env *e)
{
	if (e->st)
		plugin->fini(e->st);
	e->st = NULL;
	harness_release(plugin, &e->cfg, &e->conf);
}

static int teardown(void **state)
{
	struct env *e = *state;

	env_stop(e);
	harness_rm_tree(e->dir);
	free(e);
	return 0;
}

static int count_files(const struct env *e, const char *sub)
{
	char path[160];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", e->spool, sub);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* For the transport contract's tests (harness_test_*). */
static void start(void **state, const char *keys, struct harness_transport *t)
{
	struct env *e = *state;

	env_start(e, keys);
	*t = e->tr;
}

static void test_roundtrip(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d;
	char path[256], head[32] = "";
	struct dirent *de;
	FILE *f;
	DIR *dir;

	env_start(e, "");
	harness_publish(&e->tr, "hello", NULL);
	assert_int_equal(count_files(e, "ready"), 1);
	/* the documented on-disk format */
	snprintf(path, sizeof(path), "%s/ready", e->spool);
	dir = opendir(path);
	while ((de = readdir(dir)) && de->d_name[0] == '.')
		;
	assert_non_null(de);
	snprintf(path, sizeof(path), "%s/ready/%.60s", e->spool, de->d_name);
	closedir(dir);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(head, sizeof(head), f));
	fclose(f);
	assert_string_equal(head, "imgnode-spool 1\n");

	assert_int_equal(ops->consume(e->st, JOBS, &d, 1000), 0);
	harness_expect_body(&d, "hello");
	assert_int_equal(d.attempt, 1);
	assert_null(d.reply_to);
	assert_null(d.reason);
	assert_int_equal(count_files(e, "ready"), 0);
	assert_int_equal(count_files(e, "claimed"), 1);
	assert_int_equal(ops->tick(e->st), 0);
	assert_int_equal(ops->ack(e->st, &d), 0);
	assert_int_equal(count_files(e, "claimed"), 0);
	assert_int_equal(ops->ack(e->st, &d), -EINVAL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 0), -ETIMEDOUT);
	assert_int_equal(ops->ping(e->st), 0);
	assert_true(ops->pollfd(e->st) >= 0);
}

/* 2 processes publish 2000 messages, 3 consume: each delivered once. */
static void test_many(void **state)
{
	struct env *e = *state;

	env_start(e, "");
	harness_check_many(&e->tr, e->dir, 3, 1000, false);
	assert_int_equal(count_files(e, "claimed"), 0);
}

/* A limit lowered below what a waiting job has had dead-letters it. */
static void test_limit_lowered(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d;

	env_start(e, "");
	harness_publish(&e->tr, "old", NULL);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ops->consume(e->st, JOBS, &d, 1000), 0);
		assert_int_equal(ops->release(e->st, &d), 0);
	}
	env_stop(e);
	env_start(e, "delivery_limit = 2\n");
	assert_int_equal(ops->consume(e->st, JOBS, &d, 0), -ETIMEDOUT);
	assert_int_equal(ops->consume(e->st, DEAD, &d, 1000), 0);
	harness_expect_body(&d, "old");
	assert_string_equal(d.reason, "delivery limit (2) exceeded");
	assert_int_equal(ops->ack(e->st, &d), 0);
}

static void test_reject(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d;

	env_start(e, "");
	harness_publish(&e->tr, "bad", NULL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 1000), 0);
	assert_int_equal(ops->reject(e->st, &d, "corrupt image\nat byte 7"), 0);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 0), -ETIMEDOUT);
	assert_int_equal(ops->consume(e->st, DEAD, &d, 1000), 0);
	harness_expect_body(&d, "bad");
	assert_string_equal(d.reason, "corrupt image at byte 7");
	/* rejecting a dead letter drops it */
	assert_int_equal(ops->reject(e->st, &d, "unreadable"), 0);
	assert_int_equal(ops->consume(e->st, DEAD, &d, 0), -ETIMEDOUT);
	assert_int_equal(count_files(e, "dead.claimed"), 0);
}

/* depth (ABI 1.3): waiting messages, not held ones, per queue. */
static void test_depth(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d;
	uint64_t n = 99;

	env_start(e, "");
	assert_int_equal(ops->depth(e->st, JOBS, &n), 0);
	assert_int_equal(n, 0);
	harness_publish(&e->tr, "one", NULL);
	harness_publish(&e->tr, "two", NULL);
	assert_int_equal(ops->depth(e->st, JOBS, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 1000), 0);
	assert_int_equal(ops->depth(e->st, JOBS, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ops->reject(e->st, &d, "no"), 0);
	assert_int_equal(ops->depth(e->st, DEAD, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ops->depth(e->st, IMGNODE_QUEUE_REPLY, &n), -EINVAL);
}

/* Tags this process does not hold are refused and touch nothing. */
static void test_bogus_tag(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d, bad;
	int fds[2], go[2];
	char c;
	pid_t pid;

	env_start(e, "");
	harness_publish(&e->tr, "one", NULL);
	harness_publish(&e->tr, "two", NULL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 1000), 0);
	bad = d;
	bad.tag += 1000;
	assert_int_equal(ops->ack(e->st, &bad), -EINVAL);
	assert_int_equal(ops->release(e->st, &bad), -EINVAL);
	assert_int_equal(ops->reject(e->st, &bad, "x"), -EINVAL);
	assert_int_equal(ops->ack(e->st, &d), 0);
	assert_int_equal(ops->release(e->st, &d), -EINVAL);

	/* another consumer's message: our ack of its tag changes nothing */
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(pipe(go), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		void *st = harness_child_open(&e->tr);
		struct imgnode_delivery cd;

		if (ops->consume(st, JOBS, &cd, 1000) != 0)
			_exit(1);
		c = (char)cd.tag;
		if (write(fds[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
			_exit(1);
		_exit(ops->ack(st, &cd) == 0 ? 0 : 1);
	}
	assert_int_equal(read(fds[0], &c, 1), 1);
	bad.tag = (uint64_t)c;
	assert_int_equal(ops->ack(e->st, &bad), -EINVAL);
	assert_int_equal(ops->release(e->st, &bad), -EINVAL);
	assert_int_equal(count_files(e, "claimed"), 1);
	assert_int_equal(write(go[1], "g", 1), 1);
	assert_int_equal(harness_reap(pid), 0);
	close(fds[0]);
	close(fds[1]);
	close(go[0]);
	close(go[1]);
	assert_int_equal(count_files(e, "claimed"), 0);
}

static void test_max_message(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d;
	char big[1025], name[64];

	env_start(e, "max_message = 1K\n");
	memset(big, 'x', sizeof(big));
	assert_int_equal(ops->publish(e->st, big, 1025, NULL, 1000), -EMSGSIZE);
	assert_int_equal(ops->publish(e->st, big, 1024, NULL, 1000), 0);
	assert_int_equal(ops->reply_open(e->st, name, sizeof(name)), 0);
	assert_int_equal(ops->reply(e->st, name, big, 1025), -EMSGSIZE);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 1000), 0);
	assert_int_equal(d.len, 1024);
	assert_int_equal(ops->ack(e->st, &d), 0);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 0), -ETIMEDOUT);
}

static void test_reply(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d;
	char name[64], again[64], small[4], path[256];
	struct stat st;
	pid_t pid;

	env_start(e, "");
	/* a dead process's reply queue is removed by the next reply_open */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(harness_reap(pid), 0);
	snprintf(path, sizeof(path), "%s/reply/%d.0123456789abcdef", e->spool,
	         (int)pid);
	assert_int_equal(mkdir(path, 0700), 0);

	assert_int_equal(ops->reply_open(e->st, name, sizeof(name)), 0);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(ops->reply_open(e->st, again, sizeof(again)), 0);
	assert_string_equal(name, again);
	assert_int_equal(ops->reply_open(e->st, small, sizeof(small)), -ERANGE);

	harness_publish(&e->tr, "job", name);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		void *cst = harness_child_open(&e->tr);
		struct imgnode_delivery cd;

		if (ops->consume(cst, JOBS, &cd, 5000) != 0 || !cd.reply_to ||
		    strcmp(cd.reply_to, name) != 0 ||
		    ops->reply(cst, cd.reply_to, "done", 4) != 0 ||
		    ops->ack(cst, &cd) != 0)
			_exit(1);
		_exit(0);
	}
	assert_int_equal(ops->consume(e->st, REPLY, &d, 5000), 0);
	harness_expect_body(&d, "done");
	assert_int_equal(harness_reap(pid), 0);
	assert_int_equal(ops->consume(e->st, REPLY, &d, 0), -ETIMEDOUT);

	assert_int_equal(ops->reply(e->st, "../x", "x", 1), -EINVAL);
	assert_int_equal(ops->reply(e->st, "../../ready/x", "x", 1), -EINVAL);
	assert_int_equal(ops->reply(e->st, "1.zz", "x", 1), -EINVAL);
	assert_int_equal(ops->reply(e->st, NULL, "x", 1), -EINVAL);
	assert_int_equal(ops->publish(e->st, "x", 1, "../x", 1000), -EINVAL);
	assert_int_equal(count_files(e, "ready"), 0);
	/* a queue nobody listens on any more: dropped, like amqp */
	assert_int_equal(ops->reply(e->st, "999999.0123456789abcdef", "x", 1),
	                 0);

	snprintf(path, sizeof(path), "%s/reply/%s", e->spool, name);
	assert_int_equal(stat(path, &st), 0);
	env_stop(e);
	assert_int_equal(stat(path, &st), -1);
}

/* A lease not renewed by tick expires; one renewed does not. */
static void test_lease(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d, d2;
	void *st2;

	env_start(e, "lease = 300ms\n");
	assert_int_equal(plugin->init(host_table(), e->cfg, &st2), 0);

	harness_publish(&e->tr, "kept", NULL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 1000), 0);
	for (int i = 0; i < 30; i++) {
		assert_int_equal(ops->tick(e->st), 0);
		assert_int_equal(ops->consume(st2, JOBS, &d2, 0), -ETIMEDOUT);
		harness_sleep_ms(30);
	}
	assert_int_equal(ops->ack(e->st, &d), 0);

	harness_publish(&e->tr, "slow", NULL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 1000), 0);
	assert_int_equal(d.attempt, 1);
	assert_int_equal(ops->consume(st2, JOBS, &d2, 5000), 0);
	harness_expect_body(&d2, "slow");
	assert_int_equal(d2.attempt, 2);
	assert_int_equal(ops->ack(e->st, &d), -ETIMEDOUT);
	assert_int_equal(ops->ack(st2, &d2), 0);
	plugin->fini(st2);
}

/*
 * A worker busy with a job calls no transport op; its ticker thread
 * renews the lease meanwhile, so the job is not delivered again long past
 * the lease's original expiry, and the worker can still ack it. Without
 * the ticker the same wait loses the job (test_lease).
 */
static void test_lease_renewed_while_busy(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d, d2;
	struct ticker t;
	void *st2;

	env_start(e, "lease = 300ms\n");
	assert_int_equal(plugin->init(host_table(), e->cfg, &st2), 0);
	harness_publish(&e->tr, "long job", NULL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 1000), 0);
	assert_int_equal(ticker_start(&t, ops, e->st, 50), 0);
	/* 1.5 s, five leases: the other consumer keeps looking */
	for (int i = 0; i < 15; i++)
		assert_int_equal(ops->consume(st2, JOBS, &d2, 100), -ETIMEDOUT);
	assert_true(ticker_stop(&t) >= 5);
	assert_int_equal(d.attempt, 1);
	assert_int_equal(ops->ack(e->st, &d), 0);
	assert_int_equal(ops->consume(st2, JOBS, &d2, 500), -ETIMEDOUT);
	plugin->fini(st2);
}

/*
 * The host refuses a lease shorter than [workers] job_timeout when it
 * configures the plugins (imgnode -t, start-up, reload), naming both keys
 * and where they were set.
 */
static void test_lease_shorter_than_job_timeout(void **state)
{
	struct env *e = *state;
	const char *build = getenv("BUILD");
	struct plugin_set set = {0};
	char path[128], dir[256], err[CONF_ERR_MAX] = "", want[400];
	struct conf *conf;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/plugins",
	         build && *build ? build : "build");
	snprintf(path, sizeof(path), "%s/imgnode.ini", e->dir);
	for (int ok = 0; ok < 2; ok++) {
		f = fopen(path, "w");
		assert_non_null(f);
		fprintf(f,
		        "[node]\nstate_dir = %s\n[workers]\njob_timeout = 90s\n"
		        "[transport]\nplugin = spool\nlease = %s\n",
		        e->dir, ok ? "90s" : "1m");
		fclose(f);
		conf = conf_load(path, err, sizeof(err));
		assert_non_null(conf);
		assert_int_equal(plugin_set_load(&set, dir, err, sizeof(err)),
		                 0);
		if (ok) {
			assert_int_equal(plugin_set_configure(&set, conf, err,
			                                      sizeof(err)),
			                 0);
		} else {
			assert_int_equal(plugin_set_configure(&set, conf, err,
			                                      sizeof(err)),
			                 -EINVAL);
			snprintf(
			        want, sizeof(want),
			        "%s:7: [transport] lease: 1m is shorter than [workers] job_timeout (90s, %s:4)",
			        path, path);
			if (strncmp(err, want, strlen(want)))
				fail_msg("got \"%s\"", err);
		}
		plugin_set_free(&set);
		conf_free(conf);
	}
}

/* Without dir, the queue lives in <state_dir>/spool. */
static void test_default_dir(void **state)
{
	struct env *e = *state;
	char err[CONF_ERR_MAX] = "", path[160];
	struct stat st;

	if (env_config(e, "", true, err, sizeof(err)) != 0)
		fail_msg("config: %s", err);
	assert_int_equal(plugin->init(host_table(), e->cfg, &e->st), 0);
	snprintf(path, sizeof(path), "%s/spool/ready", e->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_roundtrip),
	        T(harness_test_fifo),
	        T(harness_test_consume_timeout),
	        T(harness_test_wakeup),
	        T(harness_test_pollfd),
	        T(test_many),
	        T(harness_test_killed_consumer),
	        T(harness_test_crash_limit),
	        T(harness_test_release),
	        T(test_limit_lowered),
	        T(test_reject),
	        T(test_depth),
	        T(test_bogus_tag),
	        T(test_max_message),
	        T(test_reply),
	        T(test_lease),
	        T(test_lease_renewed_while_busy),
	        T(test_lease_shorter_than_job_timeout),
	        T(test_default_dir),
	};

	node_conf_register();
	harness_transport_start = start;
	return cmocka_run_group_tests(tests, load_plugin, unload_plugin);
}
