/*
 * Tests of the amqp transport against a real RabbitMQ: one broker for the
 * whole file, started by test/lib/rabbitmq on a free loopback port with its
 * state in a temp dir (killed and restarted by the last test). The plugin is
 * loaded as the node loads it (dlopen of $BUILD/plugins/amqp.so), configured
 * from an INI file through the real config loader and driven through its
 * ops with the real host table. Each test uses queues of its own. Tests that
 * need several consumers fork: each child opens its own state (its own
 * connection), reports through its exit status, a pipe or a file, and never
 * returns to cmocka. The semantic tests mirror test_spool.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "host.h"

#define JOBS IMGNODE_QUEUE_JOBS
#define DEAD IMGNODE_QUEUE_DEAD
#define REPLY IMGNODE_QUEUE_REPLY
#define SCRIPT "test/lib/rabbitmq"

static void *handle;
static const struct imgnode_plugin *plugin;
static const struct imgnode_transport_ops *ops;
static char broker_dir[64]; /* the broker's state, for the whole file */
static char broker_url[128];
static pid_t guard;
static int test_seq;

/* One test's queues, temp dir, config and this process's state. */
struct env {
	char dir[96];
	char queue[64];
	char dead[64];
	struct conf *conf;
	void *cfg;
	void *st;
	struct harness_transport tr; /* st, for the harness */
};

/* Runs test/lib/rabbitmq CMD on the file's broker; its exit status. */
static int rabbitmq(const char *cmd)
{
	char line[256];

	snprintf(line, sizeof(line), "%s %s %s >/dev/null", SCRIPT, cmd,
	         broker_dir);
	return system(line);
}

static void guard_stop(int sig)
{
	(void)sig;
}

/*
 * Forks the broker's guard: in a session of its own (a timeout killing
 * the test's process group leaves it alone), it waits for SIGTERM, sent by
 * group_teardown or by the kernel when the test process dies, then stops
 * the broker and removes its dir. A test killed halfway leaks nothing.
 */
static int start_guard(void)
{
	struct sigaction sa = {.sa_handler = guard_stop};
	pid_t parent = getpid();
	sigset_t all, none;

	guard = fork();
	if (guard != 0)
		return guard > 0 ? 0 : -1;
	setsid();
	sigfillset(&all);
	sigemptyset(&none);
	sigprocmask(SIG_BLOCK, &all, NULL);
	sigaction(SIGTERM, &sa, NULL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == parent)
		sigsuspend(&none);
	signal(SIGTERM, SIG_IGN);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execl("/bin/sh", "sh", "-c",
	      SCRIPT " stop \"$0\" >/dev/null 2>&1; rm -rf \"$0\"", broker_dir,
	      (char *)NULL);
	_exit(127);
}

static int group_setup(void **state)
{
	char path[512];
	FILE *p;

	(void)state;
	plugin = harness_load("amqp", IMGNODE_KIND_TRANSPORT, &handle);
	if (!plugin || strcmp(plugin->name, "amqp") != 0)
		return -1;
	ops = plugin->ops;

	snprintf(broker_dir, sizeof(broker_dir), "/tmp/imgnode-rmq-XXXXXX");
	if (!mkdtemp(broker_dir) || start_guard() != 0)
		return -1;
	snprintf(path, sizeof(path), "%s start %s", SCRIPT, broker_dir);
	p = popen(path, "r");
	if (!p || !fgets(broker_url, sizeof(broker_url), p)) {
		fprintf(stderr, "test_amqp: %s failed\n", path);
		if (p)
			pclose(p);
		return -1;
	}
	broker_url[strcspn(broker_url, "\n")] = '\0';
	return pclose(p) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	kill(guard, SIGTERM); /* stops the broker, removes its dir */
	waitpid(guard, NULL, 0);
	dlclose(handle);
	return 0;
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e)
		return -1;
	/* under the broker's dir, which the guard removes whatever happens */
	snprintf(e->dir, sizeof(e->dir), "%s/test-XXXXXX", broker_dir);
	if (!mkdtemp(e->dir)) {
		free(e);
		return -1;
	}
	test_seq++;
	snprintf(e->queue, sizeof(e->queue), "t%d.%d.jobs", (int)getpid(),
	         test_seq);
	snprintf(e->dead, sizeof(e->dead), "t%d.%d.dead", (int)getpid(),
	         test_seq);
	*state = e;
	return 0;
}

/* Fills the config: url (the file's broker unless keys set one), this
 * test's queues, short timeouts, then keys. */
static int env_config(struct env *e, const char *keys, char *err, size_t errlen)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/imgnode.ini", e->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f,
	        "[node]\nstate_dir = %s\n[transport]\nplugin = amqp\n"
	        "queue = %s\ndead_queue = %s\nconnect_timeout = 2s\n"
	        "rpc_timeout = 5s\n",
	        e->dir, e->queue, e->dead);
	if (!strstr(keys, "url ="))
		fprintf(f, "url = %s\n", broker_url);
	fputs(keys, f);
	fclose(f);
	e->cfg = harness_configure(plugin, path, "transport", &e->conf, err,
	                           errlen);
	return e->cfg ? 0 : -1;
}

static void env_start(struct env *e, const char *keys)
{
	char err[CONF_ERR_MAX] = "";

	if (env_config(e, keys, err, sizeof(err)) != 0)
		fail_msg("config: %s", err);
	assert_int_equal(plugin->init(host_table(), e->cfg, &e->st), 0);
	e->tr = (struct harness_transport){plugin, e->cfg, e->st, 5000};
}

/* Closes the state and frees the config; the queues stay. */
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

	env_start(e, "");
	assert_int_equal(ops->ping(e->st), 0);
	assert_int_equal(ops->tick(e->st), 0);
	harness_publish(&e->tr, "hello", NULL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 5000), 0);
	harness_expect_body(&d, "hello");
	assert_int_equal(d.attempt, 1);
	assert_null(d.reply_to);
	assert_null(d.reason);
	assert_int_equal(ops->tick(e->st), 0);
	assert_int_equal(ops->ack(e->st, &d), 0);
	assert_int_equal(ops->ack(e->st, &d), -EINVAL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 0), -ETIMEDOUT);
	assert_true(ops->pollfd(e->st) >= 0);
	/* acked means gone, also for a fresh connection */
	env_stop(e);
	env_start(e, "");
	assert_int_equal(ops->consume(e->st, JOBS, &d, 500), -ETIMEDOUT);
}

#define PUB_THREADS 4
#define PER_THREAD 250

struct pub_arg {
	struct env *e;
	int n;
	int failed;
};

static void *pub_thread(void *arg)
{
	struct pub_arg *a = arg;
	char buf[32];

	for (int i = 0; i < PER_THREAD; i++) {
		int n = snprintf(buf, sizeof(buf), "%d %d", a->n, i);
		if (ops->publish(a->e->st, buf, (size_t)n, NULL, 10000) != 0)
			a->failed++;
	}
	return NULL;
}

/*
 * Confirms: publishers in several threads of one state share its channel,
 * so the broker confirms them in batches (multiple); each publish returns
 * only once its own message is confirmed. A nack (the queue refusing a
 * message over its length limit) is -EIO, and publishes work again once
 * the queue takes messages.
 */
static void test_confirms(void **state)
{
	struct env *e = *state;
	static bool seen[PUB_THREADS][PER_THREAD];
	struct pub_arg args[PUB_THREADS];
	pthread_t th[PUB_THREADS];
	struct imgnode_delivery d;
	char cmd[512];
	int total = 0;

	env_start(e, "");
	memset(seen, 0, sizeof(seen));
	for (int i = 0; i < PUB_THREADS; i++) {
		args[i] = (struct pub_arg){.e = e, .n = i};
		assert_int_equal(
		        pthread_create(&th[i], NULL, pub_thread, &args[i]), 0);
	}
	for (int i = 0; i < PUB_THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].failed, 0);
	}
	while (ops->consume(e->st, JOBS, &d, 1000) == 0) {
		int t, n;
		char buf[32];

		snprintf(buf, sizeof(buf), "%.*s", (int)d.len,
		         (const char *)d.body);
		assert_int_equal(sscanf(buf, "%d %d", &t, &n), 2);
		if (seen[t][n])
			fail_msg("\"%s\" delivered twice", buf);
		seen[t][n] = true;
		total++;
		assert_int_equal(ops->ack(e->st, &d), 0);
	}
	assert_int_equal(total, PUB_THREADS * PER_THREAD);

	/* max-length 1 with reject-publish: the second publish is nacked
	 * (a fresh state: a consumer would keep the queue empty) */
	env_stop(e);
	env_start(e, "");
	snprintf(cmd, sizeof(cmd),
	         "%s ctl %s set_policy --apply-to queues len-%s '^%s$' "
	         "'{\"max-length\":1}' >/dev/null",
	         SCRIPT, broker_dir, e->queue, e->queue);
	assert_int_equal(system(cmd), 0);
	for (int i = 0;; i++) {
		int r = ops->publish(e->st, "more", 4, NULL, 5000);
		if (r == -EIO)
			break;
		/* the policy takes a moment to reach the queue */
		assert_int_equal(r, 0);
		assert_true(i < 50);
		harness_sleep_ms(100);
	}
	/* a nack makes the plugin start again on a new connection (RabbitMQ
	 * 3.10 may go on nacking on the old channel): once the queue takes
	 * messages again, publishes work */
	snprintf(cmd, sizeof(cmd), "%s ctl %s clear_policy len-%s >/dev/null",
	         SCRIPT, broker_dir, e->queue);
	assert_int_equal(system(cmd), 0);
	for (int i = 0;; i++) {
		int r = ops->publish(e->st, "again", 5, NULL, 5000);
		if (r == 0)
			break;
		assert_int_equal(r, -EIO);
		assert_true(i < 50);
		harness_sleep_ms(100);
	}
}

/* A job queue deleted under a publisher: the publish fails (the message
 * came back unroutable), the plugin declares the queue again, and the next
 * publish works. */
static void test_queue_deleted(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d;
	char cmd[256];

	env_start(e, "");
	harness_publish(&e->tr, "before", NULL);
	snprintf(cmd, sizeof(cmd), "%s ctl %s delete_queue '%s' >/dev/null",
	         SCRIPT, broker_dir, e->queue);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(ops->publish(e->st, "lost", 4, NULL, 5000), -ENOENT);
	harness_publish(&e->tr, "after", NULL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 5000), 0);
	harness_expect_body(&d, "after");
	assert_int_equal(ops->ack(e->st, &d), 0);
}

/* 2 processes publish 10,000 messages, 2 consume: each delivered once. */
static void test_many(void **state)
{
	struct env *e = *state;

	env_start(e, "");
	harness_check_many(&e->tr, e->dir, 2, 5000, true);
}

static void test_reject(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d;
	char name[128];

	env_start(e, "");
	assert_int_equal(ops->reply_open(e->st, name, sizeof(name)), 0);
	harness_publish(&e->tr, "bad", name);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 5000), 0);
	assert_int_equal(ops->reject(e->st, &d, "corrupt image\nat byte 7"), 0);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 300), -ETIMEDOUT);
	assert_int_equal(ops->consume(e->st, DEAD, &d, 5000), 0);
	harness_expect_body(&d, "bad");
	assert_string_equal(d.reason, "corrupt image at byte 7");
	assert_string_equal(d.reply_to, name);
	assert_int_equal(d.attempt, 1);
	/* rejecting a dead letter drops it */
	assert_int_equal(ops->reject(e->st, &d, "unreadable"), 0);
	assert_int_equal(ops->consume(e->st, DEAD, &d, 300), -ETIMEDOUT);
}

/* Waits until the state holds a message it has not handed out (one the
 * broker sent ahead, with prefetch > 1). */
static void wait_sent_ahead(struct env *e)
{
	struct pollfd pfd = {.fd = ops->pollfd(e->st), .events = POLLIN};

	assert_int_equal(poll(&pfd, 1, 10000), 1);
}

/*
 * A process about to close (a worker recycled after max_jobs) cancels its
 * consumer before settling its last job: the jobs the broker sent ahead go
 * back without using up a delivery. Through many closes, each job is
 * delivered once, as attempt 1, and none is dead-lettered (delivery_limit
 * 2 would dead-letter on the second close).
 */
static void test_prefetch_given_back(void **state)
{
	const char *keys = "prefetch = 5\ndelivery_limit = 2\n";
	struct env *e = *state;
	struct imgnode_delivery d;
	bool seen[6] = {false};

	env_start(e, keys);
	for (int i = 0; i < 6; i++) {
		char body[8];
		snprintf(body, sizeof(body), "j%d", i);
		harness_publish(&e->tr, body, NULL);
	}
	for (int round = 0; round < 6; round++) {
		int n;

		assert_int_equal(ops->consume(e->st, JOBS, &d, 5000), 0);
		assert_int_equal(sscanf(d.body, "j%d", &n), 1);
		assert_int_equal(d.attempt, 1);
		assert_true(n >= 0 && n < 6 && !seen[n]);
		seen[n] = true;
		if (round < 5)
			wait_sent_ahead(e);
		/* as a worker before its last job: no slot freed by the ack
		 * gets filled (the broker would return that job counted) */
		assert_int_equal(ops->cancel(e->st, JOBS), 0);
		assert_int_equal(ops->ack(e->st, &d), 0);
		env_stop(e);
		env_start(e, keys);
	}
	assert_int_equal(ops->consume(e->st, JOBS, &d, 300), -ETIMEDOUT);
	assert_int_equal(ops->consume(e->st, DEAD, &d, 300), -ETIMEDOUT);
}

/*
 * A job given back keeps the deliveries it had: its next attempt counts
 * on from them, and past delivery_limit it is dead-lettered as the broker
 * would (which counts the copy's returns afresh).
 */
static void test_given_back_keeps_its_count(void **state)
{
	const char *keys = "prefetch = 5\ndelivery_limit = 3\n";
	struct env *e = *state;
	struct imgnode_delivery d;

	env_start(e, keys);
	harness_publish(&e->tr, "x", NULL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 5000), 0);
	assert_int_equal(d.attempt, 1);
	assert_int_equal(ops->release(e->st, &d), 0);
	wait_sent_ahead(e); /* x again, not handed out */
	env_stop(e); /* fini gives it back too */
	env_start(e, keys);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 5000), 0);
	harness_expect_body(&d, "x");
	assert_int_equal(d.attempt, 2);
	assert_int_equal(ops->release(e->st, &d), 0);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 5000), 0);
	assert_int_equal(d.attempt, 3);
	assert_int_equal(ops->release(e->st, &d), 0);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 1000), -ETIMEDOUT);
	assert_int_equal(ops->consume(e->st, DEAD, &d, 5000), 0);
	harness_expect_body(&d, "x");
	assert_string_equal(d.reason, "delivery limit (3) exceeded");
	assert_int_equal(ops->ack(e->st, &d), 0);
}

/* Tags this process does not hold are refused and touch nothing. */
static void test_bogus_tag(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d, bad;

	env_start(e, "prefetch = 2\n");
	harness_publish(&e->tr, "one", NULL);
	harness_publish(&e->tr, "two", NULL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 5000), 0);
	harness_expect_body(&d, "one");
	bad = d;
	bad.tag += 1000;
	assert_int_equal(ops->ack(e->st, &bad), -EINVAL);
	assert_int_equal(ops->release(e->st, &bad), -EINVAL);
	assert_int_equal(ops->reject(e->st, &bad, "x"), -EINVAL);
	assert_int_equal(ops->ack(e->st, &d), 0);
	assert_int_equal(ops->release(e->st, &d), -EINVAL);
	/* the channel survived: the next one comes and acks */
	assert_int_equal(ops->consume(e->st, JOBS, &d, 5000), 0);
	harness_expect_body(&d, "two");
	assert_int_equal(d.attempt, 1);
	assert_int_equal(ops->ack(e->st, &d), 0);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 300), -ETIMEDOUT);
}

static void test_max_message(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d;
	static char big[300000];
	char name[128];

	env_start(e, "max_message = 1K\n");
	memset(big, 'x', sizeof(big));
	assert_int_equal(ops->publish(e->st, big, 1025, NULL, 5000), -EMSGSIZE);
	assert_int_equal(ops->publish(e->st, big, 1024, NULL, 5000), 0);
	assert_int_equal(ops->reply_open(e->st, name, sizeof(name)), 0);
	assert_int_equal(ops->reply(e->st, name, big, 1025), -EMSGSIZE);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 5000), 0);
	assert_int_equal(d.len, 1024);
	assert_int_equal(ops->ack(e->st, &d), 0);
	env_stop(e);
	/* bodies larger than a frame arrive whole */
	env_start(e, "max_message = 1M\n");
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	assert_int_equal(ops->publish(e->st, big, sizeof(big), NULL, 5000), 0);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 5000), 0);
	assert_int_equal(d.len, sizeof(big));
	assert_memory_equal(d.body, big, sizeof(big));
	assert_int_equal(ops->ack(e->st, &d), 0);
}

static void test_reply(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d;
	char name[128], again[128], small[4];
	pid_t pid;

	env_start(e, "");
	assert_int_equal(ops->reply_open(e->st, name, sizeof(name)), 0);
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
		plugin->fini(cst);
		_exit(0);
	}
	assert_int_equal(ops->consume(e->st, REPLY, &d, 5000), 0);
	harness_expect_body(&d, "done");
	assert_int_equal(d.attempt, 1);
	assert_int_equal(harness_reap(pid), 0);
	assert_int_equal(ops->consume(e->st, REPLY, &d, 0), -ETIMEDOUT);

	assert_int_equal(ops->reply(e->st, "../x", "x", 1), -EINVAL);
	assert_int_equal(ops->reply(e->st, e->queue, "x", 1), -EINVAL);
	assert_int_equal(ops->reply(e->st, NULL, "x", 1), -EINVAL);
	assert_int_equal(ops->publish(e->st, "x", 1, "../x", 1000), -EINVAL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 300), -ETIMEDOUT);
	/* a queue nobody listens on any more: dropped */
	assert_int_equal(ops->reply(e->st, "imgnode.reply.gone.1.0", "x", 1),
	                 0);
	/* own replies arrive too (one process can be both ends) */
	assert_int_equal(ops->reply(e->st, name, "self", 4), 0);
	assert_int_equal(ops->consume(e->st, REPLY, &d, 5000), 0);
	harness_expect_body(&d, "self");
}

/*
 * A "job" that keeps the caller away from the plugin for more than two
 * heartbeats: the connection survives (the I/O thread answers the broker)
 * and the ack counts.
 */
static void test_heartbeat(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d;
	void *other;

	env_start(e, "heartbeat = 1s\n");
	harness_publish(&e->tr, "slow", NULL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 5000), 0);
	harness_sleep_ms(3500);
	assert_int_equal(ops->tick(e->st), 0);
	assert_int_equal(ops->ack(e->st, &d), 0);
	assert_int_equal(ops->ping(e->st), 0);
	/* the ack reached the broker: nobody gets the job again */
	assert_int_equal(plugin->init(host_table(), e->cfg, &other), 0);
	assert_int_equal(ops->consume(other, JOBS, &d, 1000), -ETIMEDOUT);
	plugin->fini(other);
}

/* Runs init with stderr going to a file; returns init's result and the
 * log in buf. */
static int init_logged(struct env *e, const char *keys, char *buf, size_t len)
{
	char err[CONF_ERR_MAX] = "", path[128];
	int fd, saved, r;
	ssize_t n;

	if (env_config(e, keys, err, sizeof(err)) != 0)
		fail_msg("config: %s", err);
	snprintf(path, sizeof(path), "%s/stderr", e->dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);
	r = plugin->init(host_table(), e->cfg, &e->st);
	dup2(saved, 2);
	close(saved);
	n = pread(fd, buf, len - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	fputs(buf, stderr);
	if (r != 0)
		e->st = NULL;
	return r;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* Server-side refusals: one clear line and a permanent -errno, at once. */
static void test_refused(void **state)
{
	struct env *e = *state;
	char keys[512], log[4096], port[16], cmd[512];
	int64_t t0 = now_ms();

	/* the port of the file's broker */
	snprintf(port, sizeof(port), "%s", strrchr(broker_url, ':') + 1);
	port[strcspn(port, "/")] = '\0';

	snprintf(keys, sizeof(keys),
	         "url = amqp://nobody:wrong@127.0.0.1:%s/%%2f\n", port);
	assert_int_equal(init_logged(e, keys, log, sizeof(log)), -EACCES);
	assert_int_equal(count_lines(log), 1);
	assert_non_null(strstr(log, "amqp://nobody@127.0.0.1:"));
	assert_non_null(strstr(log, "ACCESS_REFUSED"));
	assert_null(strstr(log, "wrong"));
	env_stop(e);

	snprintf(keys, sizeof(keys),
	         "url = amqp://guest:guest@127.0.0.1:%s/nowhere\n", port);
	assert_int_equal(init_logged(e, keys, log, sizeof(log)), -ENOENT);
	assert_int_equal(count_lines(log), 1);
	assert_non_null(strstr(log, "vhost nowhere"));
	assert_non_null(strstr(log, "not found"));
	env_stop(e);

	/* an existing classic queue of the same name */
	snprintf(cmd, sizeof(cmd),
	         "amqp-declare-queue -u '%s' -q '%s' -d >/dev/null", broker_url,
	         e->queue);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(init_logged(e, "", log, sizeof(log)), -EINVAL);
	assert_int_equal(count_lines(log), 1);
	assert_non_null(strstr(log, e->queue));
	assert_non_null(strstr(log, "PRECONDITION_FAILED"));
	env_stop(e);

	/* a quorum queue declared with another delivery limit */
	snprintf(e->queue, sizeof(e->queue), "t%d.%d.jobs2", (int)getpid(),
	         test_seq);
	env_start(e, "delivery_limit = 5\n");
	env_stop(e);
	assert_int_equal(
	        init_logged(e, "delivery_limit = 3\n", log, sizeof(log)),
	        -EINVAL);
	assert_int_equal(count_lines(log), 1);
	assert_non_null(strstr(log, "x-delivery-limit"));
	assert_true(now_ms() - t0 < 10000);
}

/* A broker that is not there: init succeeds and retries in the background;
 * operations fail with -ENOTCONN in their time; the next URL is used. */
static void test_unreachable(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d;
	char keys[512], log[4096];
	int64_t t0;

	/* port 1: nothing listens there */
	assert_int_equal(
	        init_logged(e, "url = amqp://guest:guest@127.0.0.1:1/%2f\n",
	                    log, sizeof(log)),
	        0);
	assert_int_equal(count_lines(log), 1);
	assert_non_null(strstr(log, "127.0.0.1:1/"));
	t0 = now_ms();
	assert_int_equal(ops->publish(e->st, "x", 1, NULL, 300), -ENOTCONN);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 300), -ENOTCONN);
	assert_int_equal(ops->tick(e->st), -ENOTCONN);
	assert_int_equal(ops->ping(e->st), -ENOTCONN);
	assert_true(now_ms() - t0 < 2000);
	env_stop(e);

	snprintf(keys, sizeof(keys),
	         "url = amqp://guest:guest@127.0.0.1:1/%%2f, %s\n", broker_url);
	env_start(e, keys);
	harness_publish(&e->tr, "via the second", NULL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 5000), 0);
	harness_expect_body(&d, "via the second");
	assert_int_equal(ops->ack(e->st, &d), 0);
}

/* amqps: verified against the test CA, with a client certificate; a host
 * name the broker's certificate does not carry is refused in one line. */
static void test_tls(void **state)
{
	struct env *e = *state;
	struct imgnode_delivery d;
	char cmd[256], url[160], keys[1024], log[4096], *host;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "%s tls-url %s", SCRIPT, broker_dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(url, sizeof(url), p));
	assert_int_equal(pclose(p), 0);
	url[strcspn(url, "\n")] = '\0';
	snprintf(keys, sizeof(keys),
	         "url = %s\ntls_ca = %s/tls/ca.pem\n"
	         "tls_cert = %s/tls/client.pem\ntls_key = %s/tls/client.key\n",
	         url, broker_dir, broker_dir, broker_dir);
	env_start(e, keys);
	harness_publish(&e->tr, "sealed", NULL);
	assert_int_equal(ops->consume(e->st, JOBS, &d, 5000), 0);
	harness_expect_body(&d, "sealed");
	assert_int_equal(ops->ack(e->st, &d), 0);
	assert_int_equal(ops->ping(e->st), 0);
	env_stop(e);

	host = strstr(url, "@localhost:");
	assert_non_null(host);
	snprintf(keys, sizeof(keys),
	         "url = %.*s@127.0.0.1:%s\ntls_ca = %s/tls/ca.pem\n",
	         (int)(host - url), url, host + strlen("@localhost:"),
	         broker_dir);
	assert_int_equal(init_logged(e, keys, log, sizeof(log)), -EPROTO);
	assert_int_equal(count_lines(log), 1);
	assert_non_null(strstr(log, "amqps://guest@127.0.0.1:"));
	env_stop(e);
	/* tls_verify = no: encrypted, not authenticated */
	snprintf(keys + strlen(keys), sizeof(keys) - strlen(keys),
	         "tls_verify = no\n");
	env_start(e, keys);
	assert_int_equal(ops->ping(e->st), 0);
}

#define KILL_MAX 100000
#define QUEUE_AGE_MS 3000

/* Lines in dir/name so far (a file another process appends to). */
static int lines_in(const struct env *e, const char *name)
{
	char path[128];
	int n = 0, c;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", e->dir, name);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

/* Waits up to 60 s for dir/name to have n lines. */
static void wait_lines(const struct env *e, const char *name, int n)
{
	int64_t end = now_ms() + 60000;

	while (lines_in(e, name) < n) {
		assert_true(now_ms() < end);
		harness_sleep_ms(50);
	}
}

/*
 * SIGKILL of the broker under load, then a restart on its state: every
 * publish that returned 0 is delivered, publishers and consumers reconnect
 * by themselves, and a delivery from before the loss cannot be settled.
 * The queue is a few seconds old before the kill: RabbitMQ 3.10.8 (Ra
 * 2.2.0) records a new quorum queue on disk lazily, and one SIGKILLed 0.5 s
 * after its declare came back leaderless, without its confirmed messages
 * (one 2 s old was intact).
 */
static void test_broker_kill(void **state)
{
	struct env *e = *state;
	static bool got[KILL_MAX];
	struct imgnode_delivery d, old;
	char path[128], line[64];
	int confirmed = 0, before;
	int64_t born;
	pid_t pub, con;
	FILE *f;

	env_start(e, "heartbeat = 2s\n");
	born = now_ms();
	memset(got, 0, sizeof(got));
	harness_publish(&e->tr, "held", NULL);
	assert_int_equal(ops->consume(e->st, JOBS, &old, 5000), 0);
	harness_expect_body(&old, "held");

	/* consumer: acks and logs everything until "stop" */
	con = fork();
	assert_true(con >= 0);
	if (con == 0) {
		void *st = harness_child_open(&e->tr);
		int64_t end = now_ms() + 90000;

		snprintf(path, sizeof(path), "%s/got", e->dir);
		f = fopen(path, "w");
		if (!f)
			_exit(3);
		while (now_ms() < end) {
			if (ops->consume(st, JOBS, &d, 1000) != 0)
				continue;
			if (d.len == 4 && memcmp(d.body, "stop", 4) == 0)
				break;
			fprintf(f, "%.*s\n", (int)d.len, (const char *)d.body);
			fflush(f);
			ops->ack(st, &d); /* may be lost with the broker */
		}
		fclose(f);
		_exit(now_ms() < end ? 0 : 6);
	}
	/* publisher: logs each job, "-N" if not confirmed, until "halt" */
	pub = fork();
	assert_true(pub >= 0);
	if (pub == 0) {
		void *st = harness_child_open(&e->tr);

		snprintf(path, sizeof(path), "%s/confirmed", e->dir);
		f = fopen(path, "w");
		if (!f)
			_exit(3);
		snprintf(path, sizeof(path), "%s/halt", e->dir);
		for (int i = 0; i < KILL_MAX && access(path, F_OK) != 0; i++) {
			int n = snprintf(line, sizeof(line), "%d", i);
			int r = ops->publish(st, line, (size_t)n, NULL, 30000);
			fprintf(f, r == 0 ? "%d\n" : "-%d\n", i);
			fflush(f);
		}
		fclose(f);
		_exit(0);
	}
	wait_lines(e, "confirmed", 300);
	if (now_ms() - born < QUEUE_AGE_MS)
		harness_sleep_ms((long)(QUEUE_AGE_MS - (now_ms() - born)));
	assert_int_equal(rabbitmq("kill"), 0);
	for (int64_t end = now_ms() + 5000; ops->tick(e->st) == 0;) {
		assert_true(now_ms() < end); /* the loss is noticed */
		harness_sleep_ms(20);
	}
	before = lines_in(e, "confirmed");
	assert_int_equal(rabbitmq("restart"), 0);
	/* publishing goes on after the restart, then stops */
	wait_lines(e, "confirmed", before + 300);
	snprintf(path, sizeof(path), "%s/halt", e->dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(harness_reap(pub), 0);

	/* the delivery from before the loss was handed back by the broker */
	assert_int_equal(ops->ack(e->st, &old), -ESTALE);
	/* this state reconnected by itself */
	harness_publish(&e->tr, "stop", NULL);
	assert_int_equal(harness_reap(con), 0);
	assert_int_equal(ops->tick(e->st), 0);

	snprintf(path, sizeof(path), "%s/got", e->dir);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "held", 4) == 0)
			continue;
		int n = (int)strtol(line, NULL, 10);
		assert_in_range(n, 0, KILL_MAX - 1);
		got[n] = true;
	}
	fclose(f);
	/* this state consumes again since the reconnect (it had consumed
	 * "held"): it holds what the broker gave it meanwhile */
	while (ops->consume(e->st, JOBS, &d, 1000) == 0) {
		snprintf(line, sizeof(line), "%.*s", (int)d.len,
		         (const char *)d.body);
		if (strcmp(line, "held") != 0)
			got[strtol(line, NULL, 10) % KILL_MAX] = true;
		assert_int_equal(ops->ack(e->st, &d), 0);
	}
	snprintf(path, sizeof(path), "%s/confirmed", e->dir);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		int n = (int)strtol(line, NULL, 10);
		/* not confirmed: no promise (30 s covers the restart) */
		assert_true(n >= 0);
		confirmed++;
		if (!got[n])
			fail_msg("confirmed job %d was never delivered", n);
	}
	fclose(f);
	assert_true(confirmed >= before + 300);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	        T(test_roundtrip),
	        T(harness_test_fifo),
	        T(test_confirms),
	        T(test_queue_deleted),
	        T(harness_test_consume_timeout),
	        T(harness_test_wakeup),
	        T(harness_test_pollfd),
	        T(test_many),
	        T(harness_test_killed_consumer),
	        T(harness_test_crash_limit),
	        T(harness_test_release),
	        T(test_reject),
	        T(test_prefetch_given_back),
	        T(test_given_back_keeps_its_count),
	        T(test_bogus_tag),
	        T(test_max_message),
	        T(test_reply),
	        T(test_heartbeat),
	        T(test_refused),
	        T(test_unreachable),
	        T(test_tls),
	        T(test_broker_kill),
	};

	signal(SIGPIPE, SIG_IGN);
	harness_transport_start = start;
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
