/*
 * Tests of the rados storage plugin against a real single-node Ceph cluster
 * (one mon, one bluestore OSD) that test/lib/ceph starts under a temporary
 * directory, once for the whole file: the start costs seconds, a client
 * costs milliseconds. The plugin is loaded from $BUILD/plugins/rados.so as
 * the daemon loads it and configured through the real config loader. The
 * tests that take the OSD away or fill the cluster run last and put things
 * back in their teardown. The real images come from the corpus
 * (test/data/README.md: build it with test/data/corpus).
 *
 * A watchdog process stops the cluster and removes its directory when this
 * process ends, however it ends (a crash, a timeout's SIGTERM).
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "harness.h"
#include "host.h"

#define CEPH_SCRIPT "test/lib/ceph"
/* The bound the failure tests configure, and what we allow on top of it
 * for scheduling on a busy two-core machine. */
#define OP_TIMEOUT_MS 3000
#define MARGIN_MS 2000
/* The [storage] lines most tests use: the pool test/lib/ceph makes, and
 * bounds short enough that a broken cluster fails a test instead of
 * hanging it. */
#define STD_KEYS                                                               \
	"pool = imgnode\nosd_op_timeout = 10s\nmon_op_timeout = 5s\n"          \
	"mount_timeout = 5s\n"

static void *dl;
static const struct imgnode_plugin *plugin;
static const struct imgnode_storage_ops *ops;
static char cdir[64]; /* the cluster's directory */
static char ceph_conf[128]; /* its ceph.conf */
static char corpus[1024];
static int watchdog_fd = -1; /* the watchdog's pipe; closing it ends it */
static pid_t watchdog_pid;

/* One test's world: its directory, config and plugin state. */
struct fx {
	char dir[64]; /* the test's temporary directory */
	struct conf *conf;
	void *cbuf; /* the plugin's config struct */
	void *st; /* the plugin's state, NULL when not open */
};

/* Runs a shell command line; its exit status, or -1. */
static int sh(const char *fmt, ...) IMGNODE_PRINTF(1, 2);
static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	status = system(cmd);
	if (status == -1 || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* test/lib/ceph VERB on our cluster; its output goes to cdir/script.log
 * and is shown if it fails. */
static int cluster(const char *verb)
{
	int ret = sh("timeout -k 5 150 " CEPH_SCRIPT
	             " %s %s >>%s/script.log 2>&1",
	             verb, cdir, cdir);

	if (ret != 0) {
		fprintf(stderr, "%s %s %s exited with %d:\n", CEPH_SCRIPT, verb,
		        cdir, ret);
		sh("tail -20 %s/script.log >&2", cdir);
	}
	return ret;
}

/* The ceph CLI on our cluster, bounded in time. */
#define ceph_cli(args)                                                         \
	sh("timeout -k 2 30 ceph -c %s %s >>%s/cli.log 2>&1", ceph_conf,       \
	   (args), cdir)

/*
 * Forks the watchdog: it ignores the signals that end a test run, waits
 * for its pipe to close (our exit, of any kind) and then stops the cluster
 * and removes its directory. Forked before this process starts librados.
 */
static int watchdog_start(void)
{
	int p[2];

	if (pipe(p))
		return -1;
	watchdog_pid = fork();
	if (watchdog_pid < 0)
		return -1;
	if (watchdog_pid == 0) {
		char c;

		signal(SIGTERM, SIG_IGN);
		signal(SIGINT, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		close(p[1]);
		while (read(p[0], &c, 1) != 0 && errno == EINTR)
			;
		sh("timeout -k 5 60 " CEPH_SCRIPT " stop %s >/dev/null 2>&1",
		   cdir);
		sh("rm -rf %s", cdir);
		_exit(0);
	}
	close(p[0]);
	fcntl(p[1], F_SETFD, FD_CLOEXEC);
	watchdog_fd = p[1];
	return 0;
}

static int group_setup(void **state)
{
	const char *cp = getenv("IMGNODE_CORPUS");
	char path[4096];
	int64_t t0;

	(void)state;
	snprintf(corpus, sizeof(corpus), "%s", cp && *cp ? cp : "build/corpus");
	snprintf(path, sizeof(path), "%s/photos/kleiber.jpg", corpus);
	if (access(path, R_OK)) {
		fprintf(stderr, "no corpus at %s: run test/data/corpus\n",
		        corpus);
		return -1;
	}
	plugin = harness_load("rados", IMGNODE_KIND_STORAGE, &dl);
	if (!plugin)
		return -1;
	ops = plugin->ops;

	snprintf(cdir, sizeof(cdir), "/tmp/imgnode-ceph-XXXXXX");
	if (!mkdtemp(cdir))
		return -1;
	snprintf(ceph_conf, sizeof(ceph_conf), "%s/ceph.conf", cdir);
	if (watchdog_start())
		return -1;
	t0 = now_ms();
	if (cluster("start"))
		return -1;
	fprintf(stderr, "ceph cluster in %s up in %.1f s\n", cdir,
	        (double)(now_ms() - t0) / 1000);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (watchdog_fd >= 0) {
		close(watchdog_fd); /* the watchdog stops the cluster */
		waitpid(watchdog_pid, NULL, 0);
	}
	if (dl)
		dlclose(dl);
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/imgnode-rados-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

/*
 * Writes text as the test's INI, loads it, fills the plugin's config from
 * [storage] and calls init. Returns what init returned; the config is kept
 * either way (fx_close frees it).
 */
static int fx_open_ini(struct fx *f, const char *text)
{
	char ini[128], err[CONF_ERR_MAX] = "";
	FILE *fp;
	int ret;

	snprintf(ini, sizeof(ini), "%s/imgnode.ini", f->dir);
	fp = fopen(ini, "w");
	assert_non_null(fp);
	fputs(text, fp);
	assert_int_equal(fclose(fp), 0);
	f->cbuf = harness_configure(plugin, ini, "storage", &f->conf, err,
	                            sizeof(err));
	if (!f->cbuf)
		fail_msg("%s", err);
	ret = plugin->init(host_table(), f->cbuf, &f->st);
	if (ret)
		f->st = NULL;
	return ret;
}

/* fx_open_ini with [storage] plugin = rados, conf = our cluster's
 * ceph.conf, and then keys. */
static int fx_open(struct fx *f, const char *keys)
{
	char text[1024];

	snprintf(
	        text, sizeof(text),
	        "[node]\nstate_dir = %s\n[storage]\nplugin = rados\nconf = %s\n%s\n",
	        f->dir, ceph_conf, keys ? keys : "");
	return fx_open_ini(f, text);
}

static void fx_close(struct fx *f)
{
	if (f->st)
		plugin->fini(f->st);
	f->st = NULL;
	harness_release(plugin, &f->cbuf, &f->conf);
}

static int teardown(void **state)
{
	struct fx *f = *state;

	fx_close(f);
	harness_rm_tree(f->dir);
	free(f);
	return 0;
}

static void open_ok(struct fx *f, const char *keys)
{
	assert_int_equal(fx_open(f, keys), 0);
}

/* A corpus file's bytes (free them) and length. */
static void *read_file(const char *rel, size_t *len)
{
	char path[1200];
	struct stat sb;
	void *buf;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", corpus, rel);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(fstat(fd, &sb), 0);
	buf = malloc((size_t)sb.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return buf;
}

/* Keys a list call saw (the first 256). */
struct keys {
	int n;
	char k[256][128];
};

static int collect_all(const char *key, void *arg)
{
	struct keys *ks = arg;

	if (ks->n < 256)
		snprintf(ks->k[ks->n], sizeof(ks->k[0]), "%s", key);
	ks->n++;
	return 0;
}

/* Removes every object whose key starts with prefix (the pool is shared by
 * this file's tests). */
static void clear_prefix(struct fx *f, const char *prefix)
{
	struct keys *ks = calloc(1, sizeof(*ks));

	assert_non_null(ks);
	assert_int_equal(ops->list(f->st, prefix, collect_all, ks), 0);
	assert_true(ks->n <= 256);
	for (int i = 0; i < ks->n; i++)
		assert_int_equal(ops->del(f->st, ks->k[i]), 0);
	free(ks);
}

/* ---- round trips */

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *key;
		size_t len;
	} sizes[] = {
	        {"rt/empty", 0},
	        {"rt/one", 1},
	        {"rt/1k", 1024},
	        {"rt/64k-1", 65535},
	        {"rt/64k", 65536},
	        {"rt/64k_1", 65537},
	        {"rt/1m", 1 << 20},
	        {"rt/4m_3", (4 << 20) + 3},
	        {"rt/a.b/c-d/E_F.jpg", 4097},
	        {"rt/30m", 30 << 20},
	};
	static const char *const images[] = {
	        "formats/pngsuite-basn3p08.png", /* 1.3 KB */
	        "formats/gif-anim-17x17.gif",
	        "photos/kleiber.jpg", /* 4.4 MB */
	        "photos/infinite-sea.jpg", /* 6.7 MB */
	        "hostile/large.jpg", /* 8.8 MB */
	};
	const size_t ns = sizeof(sizes) / sizeof(sizes[0]);
	const size_t ni = sizeof(images) / sizeof(images[0]);
	struct imgnode_stat st;
	char key[128];

	open_ok(f, STD_KEYS);
	for (size_t i = 0; i < ns; i++) {
		void *data = harness_random(sizes[i].len, i);

		assert_int_equal(
		        ops->put(f->st, sizes[i].key, data, sizes[i].len), 0);
		free(data);
	}
	for (size_t i = 0; i < ni; i++) {
		size_t len;
		void *data = read_file(images[i], &len);

		snprintf(key, sizeof(key), "rt/img/%s", images[i]);
		assert_int_equal(ops->put(f->st, key, data, len), 0);
		free(data);
	}
	/* read back through another client, as another node would */
	fx_close(f);
	open_ok(f, STD_KEYS);
	for (size_t i = 0; i < ns; i++) {
		void *data = harness_random(sizes[i].len, i);

		harness_assert_object(ops, f->st, sizes[i].key, data,
		                      sizes[i].len);
		assert_int_equal(ops->stat(f->st, sizes[i].key, &st), 0);
		assert_int_equal(st.size, sizes[i].len);
		free(data);
	}
	for (size_t i = 0; i < ni; i++) {
		size_t len;
		void *data = read_file(images[i], &len);

		snprintf(key, sizeof(key), "rt/img/%s", images[i]);
		harness_assert_object(ops, f->st, key, data, len);
		free(data);
	}
	clear_prefix(f, "rt/");
}

/* The defaults (client admin, pool imgnode, the keyring ceph.conf names,
 * the default timeouts) work; so do the same values spelled out. */
static void test_config_keys(void **state)
{
	struct fx *f = *state;
	char keys[512];

	open_ok(f, NULL);
	assert_int_equal(ops->ping(f->st), 0);
	assert_int_equal(ops->put(f->st, "cfg/a", "x", 1), 0);
	fx_close(f);
	snprintf(keys, sizeof(keys),
	         "client = admin\nkeyring = %s/keyring\npool = imgnode\n"
	         "mon_op_timeout = 2500ms\nosd_op_timeout = 1s\n"
	         "mount_timeout = 1m\nmax_object = 64M\n",
	         cdir);
	open_ok(f, keys);
	harness_assert_object(ops, f->st, "cfg/a", "x", 1);
	assert_int_equal(ops->del(f->st, "cfg/a"), 0);
}

static void test_put_replaces(void **state)
{
	struct fx *f = *state;
	void *big = harness_random(200000, 9);

	open_ok(f, STD_KEYS);
	assert_int_equal(ops->put(f->st, "rep/1", big, 200000), 0);
	assert_int_equal(ops->put(f->st, "rep/1", "queued-and-long", 15), 0);
	harness_assert_object(ops, f->st, "rep/1", "queued-and-long", 15);
	assert_int_equal(ops->put(f->st, "rep/1", "done", 4), 0);
	harness_assert_object(ops, f->st, "rep/1", "done", 4);
	assert_int_equal(ops->put(f->st, "rep/1", "", 0), 0);
	harness_assert_object(ops, f->st, "rep/1", "", 0);
	assert_int_equal(ops->put(f->st, "rep/1", big, 200000), 0);
	harness_assert_object(ops, f->st, "rep/1", big, 200000);
	assert_int_equal(ops->del(f->st, "rep/1"), 0);
	free(big);
}

static void test_put_excl(void **state)
{
	struct fx *f = *state;

	open_ok(f, STD_KEYS);
	assert_int_equal(ops->put_excl(f->st, "excl/k", "first", 5), 0);
	harness_capture_start(f->dir);
	assert_int_equal(ops->put_excl(f->st, "excl/k", "second", 6), -EEXIST);
	harness_capture_end();
	assert_string_equal(harness_captured,
	                    ""); /* an outcome, not an error */
	harness_assert_object(ops, f->st, "excl/k", "first", 5);
	/* put still replaces what put_excl made */
	assert_int_equal(ops->put(f->st, "excl/k", "third", 5), 0);
	harness_assert_object(ops, f->st, "excl/k", "third", 5);
	/* an empty object exists too */
	assert_int_equal(ops->put_excl(f->st, "excl/empty", "", 0), 0);
	assert_int_equal(ops->put_excl(f->st, "excl/empty", "x", 1), -EEXIST);
	harness_assert_object(ops, f->st, "excl/empty", "", 0);
	clear_prefix(f, "excl/");
}

/* A racer does not hold the watchdog's pipe open. */
static void close_watchdog(void)
{
	close(watchdog_fd);
}

/* Processes racing to put_excl one key, each with its own client as nodes
 * are: one wins, whole. */
static void test_excl_race(void **state)
{
	struct fx *f = *state;

	/* No client of ours runs while we fork: librados' threads would not
	 * survive into the children. The config stays loaded. */
	open_ok(f, STD_KEYS);
	clear_prefix(f, "race/");
	plugin->fini(f->st);
	f->st = NULL;
	harness_check_excl_race(plugin, f->cbuf, "race/key", close_watchdog);
	assert_int_equal(plugin->init(host_table(), f->cbuf, &f->st), 0);
	assert_int_equal(ops->del(f->st, "race/key"), 0);
}

/* A job record's life as the node lives it: created once, replaced whole
 * on each state change, read, listed, removed. */
static void test_records(void **state)
{
	struct fx *f = *state;
	static const char *const states[] = {
	        "{\"id\":\"j1\",\"state\":\"queued\",\"pipeline\":\"thumbnail(800)|webp(q=75)\"}",
	        "{\"id\":\"j1\",\"state\":\"running\",\"worker\":4242}",
	        "{\"id\":\"j1\",\"state\":\"done\",\"result\":\"out/ab12cd\",\"plugins\":{\"webp\":\"1.0.0\"}}",
	};
	const char *rec = "{\"id\":\"j2\",\"state\":\"queued\"}";
	struct keys *ks = calloc(1, sizeof(*ks));
	struct imgnode_stat st;

	assert_non_null(ks);
	open_ok(f, STD_KEYS);
	clear_prefix(f, "jobs/");
	assert_int_equal(
	        ops->put_excl(f->st, "jobs/j1", states[0], strlen(states[0])),
	        0);
	/* a duplicate submission finds the record there */
	assert_int_equal(
	        ops->put_excl(f->st, "jobs/j1", states[0], strlen(states[0])),
	        -EEXIST);
	for (size_t i = 1; i < 3; i++) {
		assert_int_equal(ops->put(f->st, "jobs/j1", states[i],
		                          strlen(states[i])),
		                 0);
		harness_assert_object(ops, f->st, "jobs/j1", states[i],
		                      strlen(states[i]));
	}
	assert_int_equal(ops->stat(f->st, "jobs/j1", &st), 0);
	assert_int_equal(st.size, strlen(states[2]));
	assert_int_equal(ops->put_excl(f->st, "jobs/j2", rec, strlen(rec)), 0);
	assert_int_equal(ops->list(f->st, "jobs/", collect_all, ks), 0);
	assert_int_equal(ks->n, 2);
	assert_true(
	        (!strcmp(ks->k[0], "jobs/j1") &&
	         !strcmp(ks->k[1], "jobs/j2")) ||
	        (!strcmp(ks->k[0], "jobs/j2") && !strcmp(ks->k[1], "jobs/j1")));
	assert_int_equal(ops->del(f->st, "jobs/j1"), 0);
	assert_int_equal(ops->del(f->st, "jobs/j2"), 0);
	free(ks);
}

static void test_get(void **state)
{
	struct fx *f = *state;
	void *data = harness_random(100, 1), *big = harness_random(300000, 2);
	void *got = NULL;
	size_t len = 0;

	open_ok(f, STD_KEYS);
	assert_int_equal(ops->put(f->st, "get/file", data, 100), 0);
	assert_int_equal(ops->put(f->st, "get/big", big, 300000), 0);
	harness_capture_start(f->dir);
	assert_int_equal(ops->get(f->st, "get/missing", 10, &got, &len),
	                 -ENOENT);
	/* "get" is a prefix of keys, not an object */
	assert_int_equal(ops->get(f->st, "get", 10, &got, &len), -ENOENT);
	harness_capture_end();
	assert_string_equal(harness_captured, ""); /* absence is not an error */
	harness_capture_start(f->dir);
	assert_int_equal(ops->get(f->st, "get/file", 99, &got, &len), -EFBIG);
	assert_int_equal(ops->get(f->st, "get/big", 299999, &got, &len),
	                 -EFBIG);
	assert_int_equal(ops->get(f->st, "get/file", 0, &got, &len), -EFBIG);
	harness_capture_end();
	harness_assert_logged(
	        "unable to read get/file: 100 bytes is more than the 99 allowed");
	harness_assert_logged(
	        "unable to read get/big: 300000 bytes is more than the 299999 allowed");
	assert_null(got);
	/* exactly max is fine, for small and big objects */
	assert_int_equal(ops->get(f->st, "get/file", 100, &got, &len), 0);
	assert_int_equal(len, 100);
	assert_memory_equal(got, data, 100);
	free(got);
	got = NULL;
	assert_int_equal(ops->get(f->st, "get/big", 300000, &got, &len), 0);
	assert_int_equal(len, 300000);
	assert_memory_equal(got, big, 300000);
	free(got);
	clear_prefix(f, "get/");
	free(data);
	free(big);
}

static void test_stat(void **state)
{
	struct fx *f = *state;

	open_ok(f, STD_KEYS);
	harness_check_stat(ops, f->st);
	clear_prefix(f, "s/");
}

static void test_read(void **state)
{
	struct fx *f = *state;

	open_ok(f, STD_KEYS);
	harness_check_read(ops, f->st);
	clear_prefix(f, "r/");
}

static void test_del(void **state)
{
	struct fx *f = *state;
	struct imgnode_stat st;
	void *got;
	size_t len;

	open_ok(f, STD_KEYS);
	assert_int_equal(ops->put(f->st, "del/b/c", "1", 1), 0);
	assert_int_equal(ops->put(f->st, "del/x", "2", 1), 0);
	assert_int_equal(ops->del(f->st, "del/b/c"), 0);
	assert_int_equal(ops->get(f->st, "del/b/c", 10, &got, &len), -ENOENT);
	assert_int_equal(ops->stat(f->st, "del/b/c", &st), -ENOENT);
	harness_capture_start(f->dir);
	assert_int_equal(ops->del(f->st, "del/b/c"), -ENOENT);
	assert_int_equal(ops->del(f->st, "del"), -ENOENT); /* a prefix */
	harness_capture_end();
	assert_string_equal(harness_captured, "");
	harness_assert_object(ops, f->st, "del/x", "2", 1);
	assert_int_equal(ops->del(f->st, "del/x"), 0);
	/* a deleted key can be created exclusively again */
	assert_int_equal(ops->put_excl(f->st, "del/x", "3", 1), 0);
	assert_int_equal(ops->del(f->st, "del/x"), 0);
	assert_int_equal(ops->del(f->st, "never"), -ENOENT);
}

static void test_list(void **state)
{
	struct fx *f = *state;
	static const char *const none[] = {NULL};

	open_ok(f, STD_KEYS);
	/* the pool is shared by this file's tests: start from empty */
	clear_prefix(f, "");
	harness_list_put(ops, f->st);
	/* objects of other tools that are no keys are not listed */
	assert_int_equal(sh("timeout -k 2 30 rados -c %s -p imgnode put "
	                    "'not a key' %s >>%s/cli.log 2>&1",
	                    ceph_conf, ceph_conf, cdir),
	                 0);
	assert_int_equal(sh("timeout -k 2 30 rados -c %s -p imgnode put "
	                    "'jobs/x~y' %s >>%s/cli.log 2>&1",
	                    ceph_conf, ceph_conf, cdir),
	                 0);

	harness_list_check(ops, f->st);
	clear_prefix(f, "");
	harness_assert_list(ops, f->st, "", none);
}

static void test_invalid_keys(void **state)
{
	struct fx *f = *state;
	char long_key[IMGNODE_KEY_MAX + 1];
	struct harness_seen s;

	open_ok(f, STD_KEYS);
	clear_prefix(f, "");
	harness_check_invalid_keys(ops, f->st, f->dir);
	/* nothing was written */
	memset(&s, 0, sizeof(s));
	assert_int_equal(ops->list(f->st, "", harness_collect, &s), 0);
	assert_int_equal(s.n, 0);
	/* the longest valid key is fine */
	memset(long_key, 'k', IMGNODE_KEY_MAX);
	long_key[IMGNODE_KEY_MAX] = '\0';
	for (int i = 200; i < IMGNODE_KEY_MAX; i += 200)
		long_key[i] = '/';
	assert_int_equal(ops->put(f->st, long_key, "ok", 2), 0);
	harness_assert_object(ops, f->st, long_key, "ok", 2);
	assert_int_equal(ops->del(f->st, long_key), 0);
}

/* max_object set, and by default the cluster's own limit, read at init. */
static void test_max_object(void **state)
{
	struct fx *f = *state;
	void *data = harness_random(1025, 3);
	size_t cluster_max = 90u << 20; /* osd_max_write_size, 90 MiB */
	char *huge;

	open_ok(f, STD_KEYS "max_object = 1K\n");
	assert_int_equal(ops->put(f->st, "m/ok", data, 1024), 0);
	harness_capture_start(f->dir);
	assert_int_equal(ops->put(f->st, "m/big", data, 1025), -EFBIG);
	assert_int_equal(ops->put_excl(f->st, "m/big2", data, 1025), -EFBIG);
	harness_capture_end();
	harness_assert_logged(
	        "unable to write m/big: 1025 bytes is more than max_object (1024 bytes, [storage] max_object)");
	fx_close(f);

	/* untouched pages: the refusal must not read them */
	huge = calloc(1, cluster_max + 1);
	assert_non_null(huge);
	open_ok(f, STD_KEYS);
	harness_capture_start(f->dir);
	assert_int_equal(ops->put(f->st, "m/huge", huge, cluster_max + 1),
	                 -EFBIG);
	harness_capture_end();
	harness_assert_logged(
	        "unable to write m/huge: 94371841 bytes is more than max_object (94371840 bytes, the cluster's osd_max_write_size)");
	fx_close(f);
	free(huge);

	/* the OSDs' configured object size, from the mon */
	assert_int_equal(ceph_cli("config set osd osd_max_object_size 2M"), 0);
	huge = harness_random((2u << 20) + 1, 4);
	open_ok(f, STD_KEYS);
	harness_capture_start(f->dir);
	assert_int_equal(ops->put(f->st, "m/2m", huge, (2u << 20) + 1), -EFBIG);
	harness_capture_end();
	assert_int_equal(ceph_cli("config rm osd osd_max_object_size"), 0);
	harness_assert_logged(
	        "unable to write m/2m: 2097153 bytes is more than max_object (2097152 bytes, the cluster's osd_max_object_size)");
	assert_int_equal(ops->put(f->st, "m/2m", huge, 2u << 20), 0);
	harness_assert_object(ops, f->st, "m/2m", huge, 2u << 20);
	assert_int_equal(ops->stat(f->st, "m/big", &(struct imgnode_stat){0}),
	                 -ENOENT);
	clear_prefix(f, "m/");
	free(huge);
	free(data);
}

/* One client used by several threads at once. */
#define THREADS 4
#define THREAD_OPS 15

struct worker {
	struct fx *f;
	int id;
	int failures;
};

static void *thread_main(void *arg)
{
	struct worker *w = arg;
	char key[64];

	for (int i = 0; i < THREAD_OPS; i++) {
		size_t len = 1000 + (size_t)(w->id * 70000 + i * 3001);
		void *data = harness_random(len, (uint64_t)(w->id * 100 + i));
		void *got = NULL;
		size_t got_len = 0;

		snprintf(key, sizeof(key), "thr/%d/%d", w->id, i);
		if (ops->put(w->f->st, key, data, len) ||
		    ops->get(w->f->st, key, SIZE_MAX, &got, &got_len) ||
		    got_len != len || memcmp(got, data, len) != 0 ||
		    ops->del(w->f->st, key))
			w->failures++;
		free(got);
		free(data);
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct fx *f = *state;
	struct worker w[THREADS];
	pthread_t t[THREADS];

	open_ok(f, STD_KEYS);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){f, i, 0};
		assert_int_equal(
		        pthread_create(&t[i], NULL, thread_main, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].failures, 0);
	}
}

/* ---- start-up errors */

static void test_missing_pool(void **state)
{
	struct fx *f = *state;
	int64_t t0 = now_ms();

	harness_capture_start(f->dir);
	assert_int_equal(fx_open(f, "pool = no-such-pool\nmon_op_timeout = 3s\n"
	                            "mount_timeout = 3s\n"),
	                 -ENOENT);
	harness_capture_end();
	assert_true(now_ms() - t0 < 3000 + MARGIN_MS);
	harness_assert_logged(
	        "pool no-such-pool does not exist in the cluster of ");
	harness_assert_logged("(create it: ceph osd pool create no-such-pool)");
	assert_null(f->st);
}

static void test_init_fails(void **state)
{
	struct fx *f = *state;
	char text[512], conf[128], want[256];
	int64_t t0, took;

	/* a ceph.conf that is not there */
	snprintf(text, sizeof(text),
	         "[storage]\nplugin = rados\nconf = %s/nowhere.conf\n", f->dir);
	harness_capture_start(f->dir);
	assert_int_equal(fx_open_ini(f, text), -ENOENT);
	harness_capture_end();
	snprintf(want, sizeof(want),
	         "unable to read %s/nowhere.conf: No such file or directory",
	         f->dir);
	harness_assert_logged(want);
	fx_close(f);

	/* a cluster that does not answer: our ceph.conf with the mon moved
	 * to a port nobody listens on */
	snprintf(conf, sizeof(conf), "%s/dead.conf", f->dir);
	assert_int_equal(sh("sed 's/^mon host = .*/mon host = "
	                    "[v2:127.0.0.1:%d]/' %s >%s",
	                    1 + (int)(now_ms() % 1000), ceph_conf, conf),
	                 0);
	snprintf(text, sizeof(text),
	         "[storage]\nplugin = rados\nconf = %s\nmount_timeout = 2s\n"
	         "mon_op_timeout = 2s\nosd_op_timeout = 2s\n",
	         conf);
	harness_capture_start(f->dir);
	t0 = now_ms();
	assert_int_equal(fx_open_ini(f, text), -ETIMEDOUT);
	took = now_ms() - t0;
	harness_capture_end();
	if (took > 2000 + MARGIN_MS)
		fail_msg("init took %lld ms with mount_timeout = 2s",
		         (long long)took);
	snprintf(
	        want, sizeof(want),
	        "unable to connect to the cluster of %s as client.admin: Connection timed out (no mon answered within mount_timeout)",
	        conf);
	harness_assert_logged(want);
}

/* ---- the cluster in trouble (last: they take the OSD away) */

/* Puts the full ratios back; waits until writes pass again. */
static int full_teardown(void **state)
{
	struct fx *f = *state;

	harness_capture_end();
	ceph_cli("osd set-full-ratio 0.95");
	ceph_cli("osd set-backfillfull-ratio 0.9");
	ceph_cli("osd set-nearfull-ratio 0.85");
	if (f->st) {
		int64_t until = now_ms() + 30000;

		while (ops->put(f->st, "full/after", "x", 1) != 0 &&
		       now_ms() < until)
			usleep(200000);
		ops->del(f->st, "full/after");
	}
	return teardown(state);
}

static void test_full_pool(void **state)
{
	struct fx *f = *state;
	void *data = harness_random(1 << 20, 5), *got = NULL;
	void *big = harness_random(2 << 20, 6);
	struct imgnode_stat st;
	int64_t t0, until;
	size_t len;
	int ret;

	open_ok(f, STD_KEYS);
	assert_int_equal(ops->put(f->st, "full/before", data, 1 << 20), 0);
	/* The OSD is all but empty: full ratios below its usage make it full,
	 * and the mon flags its pools full, without writing a byte. */
	assert_int_equal(ceph_cli("osd set-nearfull-ratio 0.0001"), 0);
	assert_int_equal(ceph_cli("osd set-backfillfull-ratio 0.0002"), 0);
	assert_int_equal(ceph_cli("osd set-full-ratio 0.0003"), 0);
	/* A write that does not grow the pool (an overwrite of the same
	 * size) passes even then: probe with new objects. */
	until = now_ms() + 30000;
	harness_capture_start(f->dir);
	while ((ret = ops->put(f->st, "full/probe", "x", 1)) == 0 &&
	       now_ms() < until) {
		ops->del(f->st, "full/probe");
		usleep(200000);
	}
	harness_capture_end();
	assert_int_equal(ret, -ENOSPC);

	/* full: writes fail at once, with a line naming the pool */
	harness_capture_start(f->dir);
	t0 = now_ms();
	assert_int_equal(ops->put(f->st, "full/x", data, 1 << 20), -ENOSPC);
	assert_int_equal(ops->put_excl(f->st, "full/y", data, 100), -ENOSPC);
	/* growing an object is refused too; shrinking one would pass (the
	 * OSD refuses only what adds bytes or objects) */
	assert_int_equal(ops->put(f->st, "full/before", big, 2 << 20), -ENOSPC);
	harness_capture_end();
	assert_true(now_ms() - t0 < 2000);
	harness_assert_logged(
	        "unable to write full/x: pool imgnode is full (No space left on device)");
	harness_assert_logged("unable to write full/y: pool imgnode is full");
	/* reads, listing and deletes (which free space) still work */
	harness_assert_object(ops, f->st, "full/before", data, 1 << 20);
	assert_int_equal(ops->stat(f->st, "full/before", &st), 0);
	assert_int_equal(ops->get(f->st, "full/x", SIZE_MAX, &got, &len),
	                 -ENOENT);
	assert_int_equal(ops->ping(f->st), 0);
	assert_int_equal(ops->del(f->st, "full/before"), 0);
	assert_int_equal(ops->stat(f->st, "full/before", &st), -ENOENT);

	/* room again: the same client writes again */
	assert_int_equal(ceph_cli("osd set-full-ratio 0.95"), 0);
	assert_int_equal(ceph_cli("osd set-backfillfull-ratio 0.9"), 0);
	assert_int_equal(ceph_cli("osd set-nearfull-ratio 0.85"), 0);
	until = now_ms() + 30000;
	harness_capture_start(f->dir);
	while ((ret = ops->put(f->st, "full/x", data, 1 << 20)) == -ENOSPC &&
	       now_ms() < until)
		usleep(200000);
	harness_capture_end();
	assert_int_equal(ret, 0);
	harness_assert_object(ops, f->st, "full/x", data, 1 << 20);
	assert_int_equal(ops->del(f->st, "full/x"), 0);
	free(big);
	free(data);
}

/* Starts the OSD again if a test left it down. */
static int osd_teardown(void **state)
{
	harness_capture_end();
	cluster("start-osd");
	return teardown(state);
}

/* One operation run on its own thread against a stopped OSD. */
struct timed_op {
	struct fx *f;
	const char *name;
	int ret;
	int64_t took;
};

static int count_key(const char *key, void *arg)
{
	(void)key;
	(*(int *)arg)++;
	return 0;
}

static void *timed_main(void *arg)
{
	struct timed_op *t = arg;
	void *st = t->f->st, *got = NULL;
	struct imgnode_stat sb;
	size_t len;
	int n = 0;
	int64_t t0 = now_ms();

	if (!strcmp(t->name, "put"))
		t->ret = ops->put(st, "osd/new", "x", 1);
	else if (!strcmp(t->name, "put_excl"))
		t->ret = ops->put_excl(st, "osd/new2", "x", 1);
	else if (!strcmp(t->name, "get"))
		t->ret = ops->get(st, "osd/a", SIZE_MAX, &got, &len);
	else if (!strcmp(t->name, "stat"))
		t->ret = ops->stat(st, "osd/a", &sb);
	else if (!strcmp(t->name, "del"))
		t->ret = ops->del(st, "osd/a");
	else if (!strcmp(t->name, "list"))
		t->ret = ops->list(st, "osd/", count_key, &n);
	else if (!strcmp(t->name, "ping"))
		t->ret = ops->ping(st);
	t->took = now_ms() - t0;
	free(got);
	return NULL;
}

static void test_osd_stopped(void **state)
{
	struct fx *f = *state;
	static const char *const names[] = {"put", "put_excl", "get", "stat",
	                                    "del", "list",     "ping"};
	enum { N = sizeof(names) / sizeof(names[0]) };
	struct timed_op t[N];
	pthread_t th[N];
	void *data = harness_random(100000, 6);
	char want[256];

	open_ok(f, "osd_op_timeout = 3s\nmon_op_timeout = 3s\n"
	           "mount_timeout = 3s\n");
	clear_prefix(f, "osd/");
	assert_int_equal(ops->put(f->st, "osd/a", data, 100000), 0);
	assert_int_equal(cluster("stop-osd"), 0);

	/* every operation, all at once, each on its own thread */
	harness_capture_start(f->dir);
	for (int i = 0; i < N; i++) {
		t[i] = (struct timed_op){f, names[i], 0, 0};
		assert_int_equal(
		        pthread_create(&th[i], NULL, timed_main, &t[i]), 0);
	}
	for (int i = 0; i < N; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	harness_capture_end();
	for (int i = 0; i < N; i++) {
		if (t[i].ret != -ETIMEDOUT)
			fail_msg(
			        "%s with the OSD stopped returned %d, not -ETIMEDOUT",
			        t[i].name, t[i].ret);
		if (t[i].took > OP_TIMEOUT_MS + MARGIN_MS)
			fail_msg("%s took %lld ms with osd_op_timeout = 3s",
			         t[i].name, (long long)t[i].took);
		fprintf(stderr, "  %-8s -ETIMEDOUT after %lld ms\n", t[i].name,
		        (long long)t[i].took);
	}
	snprintf(
	        want, sizeof(want),
	        "unable to write osd/new (pool imgnode): %s (no answer within osd_op_timeout, 3s)",
	        strerror(ETIMEDOUT));
	harness_assert_logged(want);
	harness_assert_logged("unable to read osd/a (pool imgnode): ");
	harness_assert_logged(
	        "unable to list keys under \"osd/\" (pool imgnode): ");

	/* back: the same client works again, nothing lost */
	assert_int_equal(cluster("start-osd"), 0);
	assert_int_equal(ops->ping(f->st), 0);
	harness_assert_object(ops, f->st, "osd/a", data, 100000);
	assert_int_equal(ops->put(f->st, "osd/new", "y", 1), 0);
	harness_assert_object(ops, f->st, "osd/new", "y", 1);
	clear_prefix(f, "osd/");
	free(data);
}

/* Acknowledged writes survive an OSD killed outright (bluestore). */
static void test_osd_killed(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *key;
		size_t len;
	} objs[] = {
	        {"kill/30m", 30 << 20},
	        {"kill/4m", 4 << 20},
	        {"kill/64k", 65536},
	        {"kill/1k", 1024},
	};
	const char *rec = "{\"id\":\"k\",\"state\":\"done\"}";
	enum { N = sizeof(objs) / sizeof(objs[0]) };
	void *data[N];

	open_ok(f, "osd_op_timeout = 10s\nmon_op_timeout = 5s\n"
	           "mount_timeout = 5s\n");
	for (int i = 0; i < N; i++) {
		data[i] = harness_random(objs[i].len, 100 + (uint64_t)i);
		assert_int_equal(
		        ops->put(f->st, objs[i].key, data[i], objs[i].len), 0);
	}
	assert_int_equal(ops->put_excl(f->st, "kill/rec", rec, strlen(rec)), 0);
	assert_int_equal(cluster("kill-osd"), 0);
	assert_int_equal(cluster("start-osd"), 0);
	/* the client that wrote, and a new one */
	for (int pass = 0; pass < 2; pass++) {
		for (int i = 0; i < N; i++)
			harness_assert_object(ops, f->st, objs[i].key, data[i],
			                      objs[i].len);
		harness_assert_object(ops, f->st, "kill/rec", rec, strlen(rec));
		assert_int_equal(ops->put_excl(f->st, "kill/rec", "x", 1),
		                 -EEXIST);
		fx_close(f);
		open_ok(f, STD_KEYS);
	}
	clear_prefix(f, "kill/");
	for (int i = 0; i < N; i++)
		free(data[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_round_trip, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_config_keys, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_put_replaces, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_put_excl, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_excl_race, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_records, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_get, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_stat, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_read, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_del, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_invalid_keys, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_max_object, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_missing_pool, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_init_fails, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_full_pool, setup,
	                                        full_teardown),
	        cmocka_unit_test_setup_teardown(test_osd_stopped, setup,
	                                        osd_teardown),
	        cmocka_unit_test_setup_teardown(test_osd_killed, setup,
	                                        osd_teardown),
	};

	/* TEST_FILTER=test_osd_* runs some of them (the cluster is still
	 * started) */
	if (getenv("TEST_FILTER"))
		cmocka_set_test_filter(getenv("TEST_FILTER"));
	return cmocka_run_group_tests_name("rados", tests, group_setup,
	                                   group_teardown);
}
