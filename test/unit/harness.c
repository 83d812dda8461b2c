/*
 * The plugin tests' shared harness (see harness.h).
 */
#include "harness.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base.h"
#include "config.h"
#include "host.h"
#include "node/node_conf.h"

const struct imgnode_plugin *harness_load(const char *name, unsigned kind,
                                          void **dl)
{
	const char *build = getenv("BUILD");
	const struct imgnode_plugin *p;
	char path[4096];

	snprintf(path, sizeof(path), "%s/plugins/%s.so",
	         build && *build ? build : "build", name);
	*dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!*dl) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		return NULL;
	}
	p = dlsym(*dl, IMGNODE_PLUGIN_SYMBOL);
	if (!p || p->kind != kind) {
		fprintf(stderr, "%s: no plugin descriptor of kind %u\n", path,
		        kind);
		return NULL;
	}
	return p;
}

void *harness_configure(const struct imgnode_plugin *p, const char *path,
                        const char *section, struct conf **conf, char *err,
                        size_t errlen)
{
	void *cfg;

	node_conf_register();
	*conf = conf_load(path, err, errlen);
	if (!*conf)
		return NULL;
	cfg = calloc(1, p->conf_size ? p->conf_size : 1);
	if (!cfg) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (conf_fill(*conf, section, p->conf_keys, cfg, false, err, errlen)) {
		free(cfg);
		return NULL;
	}
	host_set_conf(*conf);
	return cfg;
}

void harness_release(const struct imgnode_plugin *p, void **cfg,
                     struct conf **conf)
{
	if (*cfg)
		conf_release(p->conf_keys, *cfg);
	free(*cfg);
	*cfg = NULL;
	host_set_conf(NULL);
	conf_free(*conf);
	*conf = NULL;
}

static int rm_entry(const char *path, const struct stat *sb, int type,
                    struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

void harness_rm_tree(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void *harness_random(size_t len, uint64_t seed)
{
	unsigned char *p = malloc(len ? len : 1);
	size_t i = 0;

	assert_non_null(p);
	seed = seed * 2654435761u + 1;
	for (; i + 8 <= len; i += 8) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		memcpy(p + i, &seed, 8);
	}
	for (; i < len; i++)
		p[i] = (unsigned char)(seed >> (8 * (i % 8)));
	return p;
}

void harness_assert_object(const struct imgnode_storage_ops *ops, void *st,
                           const char *key, const void *data, size_t len)
{
	void *got = NULL;
	size_t got_len = 12345;
	int ret = ops->get(st, key, SIZE_MAX, &got, &got_len);

	if (ret)
		fail_msg("get %s: %s", key, strerror(-ret));
	assert_non_null(got);
	assert_int_equal(got_len, len);
	if (len && memcmp(got, data, len) != 0)
		fail_msg("%s: %zu bytes read back differ", key, len);
	free(got);
}

void harness_check_stat(const struct imgnode_storage_ops *ops, void *st)
{
	struct imgnode_stat sb = {0, 0};
	void *data = harness_random(1234, 2);
	struct timespec before, after;

	clock_gettime(CLOCK_REALTIME, &before);
	assert_int_equal(ops->put(st, "s/t", data, 1234), 0);
	clock_gettime(CLOCK_REALTIME, &after);
	assert_int_equal(ops->stat(st, "s/t", &sb), 0);
	assert_int_equal(sb.size, 1234);
	assert_true(sb.mtime_ms >= (int64_t)before.tv_sec * 1000 - 1000);
	assert_true(sb.mtime_ms <= (int64_t)after.tv_sec * 1000 + 1000);
	assert_int_equal(ops->put(st, "s/empty", "", 0), 0);
	assert_int_equal(ops->stat(st, "s/empty", &sb), 0);
	assert_int_equal(sb.size, 0);
	assert_int_equal(ops->stat(st, "s/none", &sb), -ENOENT);
	assert_int_equal(ops->stat(st, "s", &sb), -ENOENT);
	free(data);
}

void harness_check_read(const struct imgnode_storage_ops *ops, void *st)
{
	static const size_t pieces[] = {1, 7, 4096, 65536 + 3, 131072};
	const size_t size = 300000;
	void *data = harness_random(size, 3);
	char *back = malloc(size), buf[16];
	size_t got;

	assert_non_null(back);
	assert_non_null(ops->read);
	assert_int_equal(ops->put(st, "r/big", data, size), 0);
	/* whole, in pieces of each size: every piece full but the last */
	for (size_t p = 0; p < sizeof(pieces) / sizeof(pieces[0]); p++) {
		size_t off = 0;

		memset(back, 0, size);
		for (int n = 0; off < size; n++) {
			assert_true(n < 400000);
			got = 12345;
			assert_int_equal(ops->read(st, "r/big", off, back + off,
			                           pieces[p] < size - off
			                                   ? pieces[p]
			                                   : size - off,
			                           &got),
			                 0);
			assert_true(got > 0);
			assert_true(got == pieces[p] || off + got == size);
			off += got;
		}
		assert_int_equal(off, size);
		assert_memory_equal(back, data, size);
	}
	/* across the end: short; at and past it: nothing */
	assert_int_equal(
	        ops->read(st, "r/big", size - 5, buf, sizeof(buf), &got), 0);
	assert_int_equal(got, 5);
	assert_memory_equal(buf, (char *)data + size - 5, 5);
	assert_int_equal(ops->read(st, "r/big", size, buf, sizeof(buf), &got),
	                 0);
	assert_int_equal(got, 0);
	assert_int_equal(
	        ops->read(st, "r/big", size + 100000, buf, sizeof(buf), &got),
	        0);
	assert_int_equal(got, 0);
	/* an empty object, a missing one, a mere prefix */
	assert_int_equal(ops->put(st, "r/empty", "", 0), 0);
	assert_int_equal(ops->read(st, "r/empty", 0, buf, sizeof(buf), &got),
	                 0);
	assert_int_equal(got, 0);
	assert_int_equal(ops->read(st, "r/none", 0, buf, sizeof(buf), &got),
	                 -ENOENT);
	assert_int_equal(ops->read(st, "r", 0, buf, sizeof(buf), &got),
	                 -ENOENT);
	/* a replaced object reads as the new one */
	assert_int_equal(ops->put(st, "r/big", "short", 5), 0);
	assert_int_equal(ops->read(st, "r/big", 0, buf, sizeof(buf), &got), 0);
	assert_int_equal(got, 5);
	assert_memory_equal(buf, "short", 5);
	free(back);
	free(data);
}

int harness_collect(const char *key, void *arg)
{
	struct harness_seen *s = arg;

	if (s->n < 16)
		snprintf(s->keys[s->n], sizeof(s->keys[0]), "%s", key);
	s->n++;
	return s->n == s->stop_at ? 7 : 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

void harness_assert_list(const struct imgnode_storage_ops *ops, void *st,
                         const char *prefix, const char *const *want)
{
	struct harness_seen s;
	int n = 0;

	memset(&s, 0, sizeof(s));
	assert_int_equal(ops->list(st, prefix, harness_collect, &s), 0);
	qsort(s.keys, (size_t)(s.n < 16 ? s.n : 16), sizeof(s.keys[0]),
	      by_name);
	for (; want[n]; n++) {
		if (n >= s.n || strcmp(s.keys[n], want[n]) != 0)
			fail_msg("list \"%s\": item %d is \"%s\", want \"%s\"",
			         prefix ? prefix : "(null)", n,
			         n < s.n ? s.keys[n] : "(none)", want[n]);
	}
	assert_int_equal(s.n, n);
}

static const char *const none[] = {NULL};

void harness_list_put(const struct imgnode_storage_ops *ops, void *st)
{
	static const char *const keys[] = {
	        "jobs/1", "jobs/2", "jobs/sub/3", "jobsx", "out/ab/cd", "z",
	};

	harness_assert_list(ops, st, "", none);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		assert_int_equal(ops->put(st, keys[i], "v", 1), 0);
}

void harness_list_check(const struct imgnode_storage_ops *ops, void *st)
{
	static const char *const all[] = {"jobs/1", "jobs/2",    "jobs/sub/3",
	                                  "jobsx",  "out/ab/cd", "z",
	                                  NULL};
	static const char *const jobs_dir[] = {"jobs/1", "jobs/2", "jobs/sub/3",
	                                       NULL};
	static const char *const jobs[] = {"jobs/1", "jobs/2", "jobs/sub/3",
	                                   "jobsx", NULL};
	static const char *const out[] = {"out/ab/cd", NULL};
	static const char *const sub[] = {"jobs/sub/3", NULL};
	struct harness_seen s;

	harness_assert_list(ops, st, "", all);
	harness_assert_list(ops, st, NULL, all);
	harness_assert_list(ops, st, "jobs/", jobs_dir);
	harness_assert_list(ops, st, "jobs", jobs);
	harness_assert_list(ops, st, "out/a", out);
	harness_assert_list(ops, st, "jobs/sub/", sub);
	harness_assert_list(ops, st, "nothing/", none);
	harness_assert_list(ops, st, "jobs/1/", none);
	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	assert_int_equal(ops->list(st, "", harness_collect, &s), 7);
	assert_int_equal(s.n, 2);
}

void harness_check_invalid_keys(const struct imgnode_storage_ops *ops, void *st,
                                const char *dir)
{
	static const char *const bad[] = {
	        "../x", "/abs", "a//b", "a/./b",  "",    "a/",  "x y",
	        "..",   ".",    "a/..", "a/../b", "b\n", "x~y",
	};
	char long_key[IMGNODE_KEY_MAX + 2];
	struct imgnode_stat sb;
	void *got = NULL;
	char buf[8];
	size_t len;

	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	harness_capture_start(dir);
	for (size_t i = 0; i <= sizeof(bad) / sizeof(bad[0]); i++) {
		const char *key =
		        i < sizeof(bad) / sizeof(bad[0]) ? bad[i] : long_key;

		assert_int_equal(ops->put(st, key, "evil", 4), -EINVAL);
		assert_int_equal(ops->put_excl(st, key, "evil", 4), -EINVAL);
		assert_int_equal(ops->get(st, key, 100, &got, &len), -EINVAL);
		assert_int_equal(ops->stat(st, key, &sb), -EINVAL);
		assert_int_equal(ops->del(st, key), -EINVAL);
		assert_int_equal(ops->read(st, key, 0, buf, sizeof(buf), &len),
		                 -EINVAL);
	}
	harness_capture_end();
	assert_null(got);
	harness_assert_logged("unable to write \"../x\": invalid key");
	harness_assert_logged("unable to read \"/abs\": invalid key");
	harness_assert_logged("unable to delete \"a//b\": invalid key");
	harness_assert_logged("unable to stat \"\": invalid key");
	/* a key cannot forge a log line */
	harness_assert_logged("unable to write \"b?\": invalid key");
	harness_assert_logged("unable to write \"x?y\": invalid key");
}

#define RACERS 8
#define RACE_LEN (256 * 1024)

/*
 * One racer: its own process with its own instance, as nodes are. Says
 * "ready" once started, waits at the gate (which the parent closes for all
 * at once), then put_excl. Exits 0 if it won, 1 on -EEXIST, 2 on another
 * error, 3 if it could not start.
 */
static void racer(const struct imgnode_plugin *p, const void *cfg,
                  const char *key, void (*in_child)(void), int gate, int ready,
                  int i)
{
	const struct imgnode_storage_ops *ops = p->ops;
	char c, *buf = malloc(RACE_LEN);
	void *st;
	int ret;

	if (in_child)
		in_child();
	if (!buf || p->init(host_table(), cfg, &st))
		_exit(3);
	memset(buf, 'A' + i, RACE_LEN);
	if (write(ready, "r", 1) != 1)
		_exit(3);
	close(ready);
	while (read(gate, &c, 1) < 0 && errno == EINTR)
		;
	ret = ops->put_excl(st, key, buf, RACE_LEN);
	p->fini(st);
	free(buf);
	_exit(ret == 0 ? 0 : ret == -EEXIST ? 1 : 2);
}

void harness_check_excl_race(const struct imgnode_plugin *p, const void *cfg,
                             const char *key, void (*in_child)(void))
{
	const struct imgnode_storage_ops *ops = p->ops;
	int gate[2], ready[2], wins = 0, losses = 0, winner = -1;
	pid_t pids[RACERS];
	unsigned char *got = NULL;
	size_t len = 0;
	void *st;
	char c;

	assert_int_equal(pipe(gate), 0);
	assert_int_equal(pipe(ready), 0);
	for (int i = 0; i < RACERS; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			close(gate[1]);
			close(ready[0]);
			racer(p, cfg, key, in_child, gate[0], ready[1], i);
		}
	}
	close(gate[0]);
	close(ready[1]);
	for (int i = 0; i < RACERS; i++)
		if (read(ready[0], &c, 1) != 1)
			break; /* a racer failed to start: seen below */
	close(ready[0]);
	close(gate[1]);
	for (int i = 0; i < RACERS; i++) {
		int status = harness_reap(pids[i]);

		if (status == 0) {
			wins++;
			winner = i;
		} else if (status == 1) {
			losses++;
		} else {
			fail_msg("racer %d exited with %d", i, status);
		}
	}
	assert_int_equal(wins, 1);
	assert_int_equal(losses, RACERS - 1);
	assert_int_equal(p->init(host_table(), cfg, &st), 0);
	assert_int_equal(ops->get(st, key, SIZE_MAX, (void **)&got, &len), 0);
	p->fini(st);
	assert_int_equal(len, RACE_LEN);
	for (size_t i = 0; i < len; i++)
		if (got[i] != 'A' + winner)
			fail_msg("byte %zu is '%c', not the winner's '%c'", i,
			         got[i], 'A' + winner);
	free(got);
}

void harness_sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int harness_reap(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void harness_expect_body(const struct imgnode_delivery *d, const char *s)
{
	assert_int_equal(d->len, strlen(s));
	assert_memory_equal(d->body, s, d->len);
}

void harness_publish(const struct harness_transport *t, const char *s,
                     const char *reply_to)
{
	const struct imgnode_transport_ops *ops = t->plugin->ops;

	assert_int_equal(
	        ops->publish(t->st, s, strlen(s), reply_to, t->wait_ms), 0);
}

void *harness_child_open(const struct harness_transport *t)
{
	void *st;

	if (t->plugin->init(host_table(), t->cfg, &st) != 0)
		_exit(2);
	return st;
}

void (*harness_transport_start)(void **state, const char *keys,
                                struct harness_transport *t);

/* The file's instance, started for this test with extra keys. */
static struct harness_transport start_transport(void **state, const char *keys)
{
	struct harness_transport t;

	assert_non_null(harness_transport_start);
	harness_transport_start(state, keys, &t);
	return t;
}

void harness_test_fifo(void **state)
{
	struct harness_transport tr = start_transport(state, ""), *t = &tr;
	const struct imgnode_transport_ops *ops = t->plugin->ops;
	struct imgnode_delivery d;
	char buf[16];
	int n = 50;

	for (int i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "m%02d", i);
		harness_publish(t, buf, NULL);
	}
	for (int i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "m%02d", i);
		assert_int_equal(
		        ops->consume(t->st, IMGNODE_QUEUE_JOBS, &d, t->wait_ms),
		        0);
		harness_expect_body(&d, buf);
		assert_int_equal(ops->ack(t->st, &d), 0);
	}
	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_JOBS, &d, 0),
	                 -ETIMEDOUT);
}

void harness_test_consume_timeout(void **state)
{
	struct harness_transport tr = start_transport(state, ""), *t = &tr;
	const struct imgnode_transport_ops *ops = t->plugin->ops;
	struct imgnode_delivery d;
	int64_t t0 = now_ms(), ms;

	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_JOBS, &d, 300),
	                 -ETIMEDOUT);
	ms = now_ms() - t0;
	assert_true(ms >= 300);
	assert_true(ms < 3000);
}

void harness_test_wakeup(void **state)
{
	struct harness_transport tr = start_transport(state, ""), *t = &tr;
	const struct imgnode_transport_ops *ops = t->plugin->ops;
	struct imgnode_delivery d;
	int64_t t0, ms;
	pid_t pid;

	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_JOBS, &d, 0),
	                 -ETIMEDOUT);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		void *st = harness_child_open(t);
		harness_sleep_ms(300);
		_exit(ops->publish(st, "wake", 4, NULL, t->wait_ms) == 0 ? 0
		                                                         : 1);
	}
	t0 = now_ms();
	/* without a wake-up this would wait the whole 10 s */
	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_JOBS, &d, 10000), 0);
	ms = now_ms() - t0;
	harness_expect_body(&d, "wake");
	assert_true(ms < 5000);
	assert_int_equal(harness_reap(pid), 0);
	assert_int_equal(ops->ack(t->st, &d), 0);
}

void harness_test_pollfd(void **state)
{
	struct harness_transport tr = start_transport(state, ""), *t = &tr;
	const struct imgnode_transport_ops *ops = t->plugin->ops;
	struct imgnode_delivery d;
	struct pollfd pfd = {.events = POLLIN};
	pid_t pid;

	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_JOBS, &d, 0),
	                 -ETIMEDOUT);
	pfd.fd = ops->pollfd(t->st);
	assert_int_equal(poll(&pfd, 1, 0), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		void *st = harness_child_open(t);
		_exit(ops->publish(st, "x", 1, NULL, t->wait_ms) == 0 ? 0 : 1);
	}
	assert_int_equal(harness_reap(pid), 0);
	assert_int_equal(poll(&pfd, 1, 5000), 1);
	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_JOBS, &d, 0), 0);
	assert_int_equal(ops->ack(t->st, &d), 0);
	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_JOBS, &d, 0),
	                 -ETIMEDOUT);
	assert_int_equal(poll(&pfd, 1, 0), 0);
}

/* A consumer in a child that takes one message and hangs; *attempt is
 * that delivery's attempt. */
static pid_t consume_and_hang(const struct harness_transport *t, int *attempt)
{
	const struct imgnode_transport_ops *ops = t->plugin->ops;
	int fds[2];
	char c = 0;
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		void *st = harness_child_open(t);
		struct imgnode_delivery d;

		close(fds[0]);
		if (ops->consume(st, IMGNODE_QUEUE_JOBS, &d, 5000) != 0)
			_exit(1);
		c = (char)d.attempt;
		if (write(fds[1], &c, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	close(fds[0]);
	*attempt = c;
	return pid;
}

void harness_kill(pid_t pid)
{
	kill(pid, SIGKILL);
	assert_int_equal(harness_reap(pid), 128 + SIGKILL);
}

void harness_test_killed_consumer(void **state)
{
	struct harness_transport tr = start_transport(state, ""), *t = &tr;
	const struct imgnode_transport_ops *ops = t->plugin->ops;
	struct imgnode_delivery d;
	int attempt;

	harness_publish(t, "job", NULL);
	harness_kill(consume_and_hang(t, &attempt));
	assert_int_equal(attempt, 1);
	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_JOBS, &d, 5000), 0);
	harness_expect_body(&d, "job");
	assert_int_equal(d.attempt, 2);
	assert_int_equal(ops->ack(t->st, &d), 0);
}

void harness_test_crash_limit(void **state)
{
	struct harness_transport tr = start_transport(state,
	                                              "delivery_limit = 2\n"),
	                         *t = &tr;
	const struct imgnode_transport_ops *ops = t->plugin->ops;
	struct imgnode_delivery d;
	char name[128];
	int attempt;

	assert_int_equal(ops->reply_open(t->st, name, sizeof(name)), 0);
	harness_publish(t, "poison", name);
	harness_kill(consume_and_hang(t, &attempt));
	assert_int_equal(attempt, 1);
	harness_kill(consume_and_hang(t, &attempt));
	assert_int_equal(attempt, 2);
	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_DEAD, &d, 5000), 0);
	harness_expect_body(&d, "poison");
	assert_string_equal(d.reason, "delivery limit (2) exceeded");
	assert_string_equal(d.reply_to, name);
	assert_int_equal(d.attempt, 1);
	assert_int_equal(ops->ack(t->st, &d), 0);
	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_JOBS, &d, 300),
	                 -ETIMEDOUT);
	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_DEAD, &d, 0),
	                 -ETIMEDOUT);
}

void harness_test_release(void **state)
{
	struct harness_transport tr = start_transport(state,
	                                              "delivery_limit = 3\n"),
	                         *t = &tr;
	const struct imgnode_transport_ops *ops = t->plugin->ops;
	struct imgnode_delivery d;

	harness_publish(t, "again", NULL);
	for (unsigned i = 1; i <= 3; i++) {
		assert_int_equal(
		        ops->consume(t->st, IMGNODE_QUEUE_JOBS, &d, 5000), 0);
		harness_expect_body(&d, "again");
		assert_int_equal(d.attempt, i);
		assert_int_equal(ops->release(t->st, &d), 0);
	}
	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_DEAD, &d, 5000), 0);
	harness_expect_body(&d, "again");
	assert_string_equal(d.reason, "delivery limit (3) exceeded");
	assert_int_equal(d.attempt, 1);
	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_JOBS, &d, 0),
	                 -ETIMEDOUT);
	/* dead letters have no limit of their own */
	for (unsigned i = 1; i <= 4; i++) {
		assert_int_equal(ops->release(t->st, &d), 0);
		assert_int_equal(
		        ops->consume(t->st, IMGNODE_QUEUE_DEAD, &d, 5000), 0);
		assert_int_equal(d.attempt, i + 1);
		assert_string_equal(d.reason, "delivery limit (3) exceeded");
	}
	assert_int_equal(ops->ack(t->st, &d), 0);
	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_DEAD, &d, 300),
	                 -ETIMEDOUT);
}

#define PUBLISHERS 2

/* A consumer child of harness_check_many. */
static void consumer(const struct harness_transport *t, const char *dir, int n,
                     bool stops_return)
{
	const struct imgnode_transport_ops *ops = t->plugin->ops;
	void *st = harness_child_open(t);
	struct imgnode_delivery d;
	int64_t end = now_ms() + 60000;
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/got.%d", dir, n);
	f = fopen(path, "w");
	if (!f)
		_exit(3);
	while (now_ms() < end) {
		int r = ops->consume(st, IMGNODE_QUEUE_JOBS, &d, 1000);
		bool stop;

		if (r == -ETIMEDOUT)
			continue;
		if (r != 0)
			_exit(4);
		stop = d.len == 4 && memcmp(d.body, "stop", 4) == 0;
		if (d.attempt != 1 && !(stop && stops_return))
			_exit(7);
		if (!stop)
			fprintf(f, "%.*s\n", (int)d.len, (const char *)d.body);
		if (ops->ack(st, &d) != 0)
			_exit(5);
		if (stop) {
			fclose(f);
			t->plugin->fini(st);
			_exit(0);
		}
	}
	_exit(6);
}

void harness_check_many(const struct harness_transport *t, const char *dir,
                        int consumers, int per_publisher, bool stops_return)
{
	const struct imgnode_transport_ops *ops = t->plugin->ops;
	bool *seen = calloc((size_t)(PUBLISHERS * per_publisher), 1);
	pid_t pubs[PUBLISHERS], cons[16];
	struct imgnode_delivery d;
	char path[4096], line[64];
	int total = 0;

	assert_non_null(seen);
	assert_true(consumers <= 16);
	for (int i = 0; i < consumers; i++) {
		cons[i] = fork();
		assert_true(cons[i] >= 0);
		if (cons[i] == 0)
			consumer(t, dir, i, stops_return);
	}
	for (int p = 0; p < PUBLISHERS; p++) {
		pubs[p] = fork();
		assert_true(pubs[p] >= 0);
		if (pubs[p] == 0) {
			void *st = harness_child_open(t);
			for (int i = 0; i < per_publisher; i++) {
				int n = snprintf(line, sizeof(line), "%d %d", p,
				                 i);
				if (ops->publish(st, line, (size_t)n, NULL,
				                 10000) != 0)
					_exit(1);
			}
			t->plugin->fini(st);
			_exit(0);
		}
	}
	for (int p = 0; p < PUBLISHERS; p++)
		assert_int_equal(harness_reap(pubs[p]), 0);
	for (int i = 0; i < consumers; i++)
		harness_publish(t, "stop", NULL);
	for (int i = 0; i < consumers; i++)
		assert_int_equal(harness_reap(cons[i]), 0);

	for (int i = 0; i < consumers; i++) {
		FILE *f;

		snprintf(path, sizeof(path), "%s/got.%d", dir, i);
		f = fopen(path, "r");
		assert_non_null(f);
		while (fgets(line, sizeof(line), f)) {
			int p, n;

			assert_int_equal(sscanf(line, "%d %d", &p, &n), 2);
			assert_in_range(p, 0, PUBLISHERS - 1);
			assert_in_range(n, 0, per_publisher - 1);
			if (seen[p * per_publisher + n])
				fail_msg("\"%d %d\" delivered twice", p, n);
			seen[p * per_publisher + n] = true;
			total++;
		}
		fclose(f);
	}
	free(seen);
	assert_int_equal(total, PUBLISHERS * per_publisher);
	assert_int_equal(ops->consume(t->st, IMGNODE_QUEUE_JOBS, &d, 500),
	                 -ETIMEDOUT);
}

char harness_captured[16384];
static int saved_stderr = -1;
static char capture_path[4096];

void harness_capture_start(const char *dir)
{
	int fd;

	snprintf(capture_path, sizeof(capture_path), "%s/log", dir);
	fd = open(capture_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	saved_stderr = dup(STDERR_FILENO);
	assert_true(saved_stderr >= 0);
	assert_true(dup2(fd, STDERR_FILENO) >= 0);
	close(fd);
}

void harness_capture_end(void)
{
	ssize_t n;
	int fd;

	if (saved_stderr < 0)
		return;
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	saved_stderr = -1;
	fd = open(capture_path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, harness_captured, sizeof(harness_captured) - 1);
	close(fd);
	unlink(capture_path);
	harness_captured[n > 0 ? n : 0] = '\0';
}

void harness_assert_logged(const char *want)
{
	if (!strstr(harness_captured, want))
		fail_msg("log lacks \"%s\":\n%s", want, harness_captured);
}
