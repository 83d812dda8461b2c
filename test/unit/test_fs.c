/*
 * Unit tests for the fs storage plugin, loaded from $BUILD/plugins/fs.so as
 * the daemon loads it, configured from an INI file through the real config
 * loader, against the real host table. Each test has its own temporary
 * directory as [node] state_dir and removes it afterwards.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "harness.h"
#include "host.h"
#include "node/node_conf.h"
#include "node/storer.h"
#include "plugin.h"

static void *dl;
static const struct imgnode_plugin *plugin;
static const struct imgnode_storage_ops *ops;

/* One test's world: its directory, config and plugin state. */
struct fx {
	char dir[64]; /* the test's temporary directory (state_dir) */
	char store[128]; /* the default store: dir/store */
	struct conf *conf;
	void *cbuf; /* the plugin's config struct */
	void *st; /* the plugin's state, NULL when not open */
};

static int group_setup(void **state)
{
	(void)state;
	plugin = harness_load("fs", IMGNODE_KIND_STORAGE, &dl);
	if (!plugin)
		return -1;
	ops = plugin->ops;
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (dl)
		dlclose(dl);
	return 0;
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/imgnode-fs-XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	snprintf(f->store, sizeof(f->store), "%s/store", f->dir);
	*state = f;
	return 0;
}

/*
 * Writes an INI with state_dir = the test's directory and extra lines in
 * [storage], loads it, fills the plugin's config and calls init. Returns
 * what init returned; the config is kept either way (fx_close frees it).
 */
static int fx_open(struct fx *f, const char *extra)
{
	char ini[128], err[CONF_ERR_MAX] = "";
	FILE *fp;
	int ret;

	snprintf(ini, sizeof(ini), "%s/imgnode.ini", f->dir);
	fp = fopen(ini, "w");
	assert_non_null(fp);
	fprintf(fp, "[node]\nstate_dir = %s\n[storage]\nplugin = fs\n%s\n",
	        f->dir, extra ? extra : "");
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

static int open_ok(void **state, const char *extra)
{
	struct fx *f = *state;

	assert_int_equal(fx_open(f, extra), 0);
	return 0;
}

/* Counting what lies in a tree, for "nothing left behind". */
static int counted, counted_tmp;

static int count_entry(const char *path, const struct stat *sb, int type,
                       struct FTW *ftw)
{
	(void)sb;
	(void)type;
	if (ftw->level == 0)
		return 0;
	counted++;
	counted_tmp += strchr(path + ftw->base, '~') != NULL;
	return 0;
}

/* Entries under path (itself not counted); temporary files in *tmp. */
static int count_tree(const char *path, int *tmp)
{
	counted = counted_tmp = 0;
	if (nftw(path, count_entry, 16, FTW_PHYS))
		return -1;
	if (tmp)
		*tmp = counted_tmp;
	return counted;
}

static int tmp_files(const char *path)
{
	int tmp = -1;

	assert_true(count_tree(path, &tmp) >= 0);
	return tmp;
}

static bool exists(const char *dir, const char *rel)
{
	char path[4096];
	struct stat sb;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return lstat(path, &sb) == 0;
}

static void test_round_trip(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *key;
		size_t len;
	} cases[] = {
	        {"empty", 0},
	        {"one", 1},
	        {"orig/1k", 1024},
	        {"out/ab/cd/5m", 5 << 20},
	        {"a.b/c-d/E_F.jpg", 4097},
	};

	open_ok(state, NULL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		void *data = harness_random(cases[i].len, i);

		assert_int_equal(
		        ops->put(f->st, cases[i].key, data, cases[i].len), 0);
		assert_true(exists(f->store, cases[i].key));
		free(data);
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		void *data = harness_random(cases[i].len, i);

		harness_assert_object(ops, f->st, cases[i].key, data,
		                      cases[i].len);
		free(data);
	}
	assert_int_equal(tmp_files(f->store), 0);
}

static void test_no_fsync(void **state)
{
	struct fx *f = *state;
	void *data = harness_random(70000, 7);

	open_ok(state, "fsync = no");
	assert_int_equal(ops->put(f->st, "x/y", data, 70000), 0);
	assert_int_equal(ops->put_excl(f->st, "x/z", data, 70000), 0);
	harness_assert_object(ops, f->st, "x/y", data, 70000);
	harness_assert_object(ops, f->st, "x/z", data, 70000);
	free(data);
}

static void test_put_replaces(void **state)
{
	struct fx *f = *state;

	open_ok(state, NULL);
	assert_int_equal(ops->put(f->st, "jobs/1", "queued-and-long", 15), 0);
	assert_int_equal(ops->put(f->st, "jobs/1", "done", 4), 0);
	harness_assert_object(ops, f->st, "jobs/1", "done", 4);
	assert_int_equal(ops->put(f->st, "jobs/1", "", 0), 0);
	harness_assert_object(ops, f->st, "jobs/1", "", 0);
	assert_int_equal(count_tree(f->store, NULL), 2); /* jobs/, jobs/1 */
}

static void test_put_excl(void **state)
{
	struct fx *f = *state;

	open_ok(state, NULL);
	assert_int_equal(ops->put_excl(f->st, "out/k", "first", 5), 0);
	assert_int_equal(ops->put_excl(f->st, "out/k", "second", 6), -EEXIST);
	harness_assert_object(ops, f->st, "out/k", "first", 5);
	/* put still replaces what put_excl made */
	assert_int_equal(ops->put(f->st, "out/k", "third", 5), 0);
	harness_assert_object(ops, f->st, "out/k", "third", 5);
	assert_int_equal(count_tree(f->store, NULL), 2);
}

/* Processes racing to put_excl one key: one wins, whole, and no temporary
 * file is left behind. */
static void test_excl_race(void **state)
{
	struct fx *f = *state;

	open_ok(state, NULL);
	harness_check_excl_race(plugin, f->cbuf, "race/key", NULL);
	assert_int_equal(tmp_files(f->store), 0);
	assert_int_equal(count_tree(f->store, NULL), 2);
}

/* Two processes put and delete keys in one directory, which del removes
 * whenever it empties: puts must make it again and never fail. */
static void test_put_del_race(void **state)
{
	struct fx *f = *state;
	pid_t pids[2];

	open_ok(state, "fsync = no");
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			const char *key = i ? "d/e/b" : "d/e/a";

			for (int n = 0; n < 300; n++)
				if (ops->put(f->st, key, "x", 1) ||
				    ops->del(f->st, key))
					_exit(1);
			_exit(0);
		}
	}
	for (int i = 0; i < 2; i++) {
		int status;

		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(count_tree(f->store, NULL), 0);
}

static void test_get(void **state)
{
	struct fx *f = *state;
	void *data = harness_random(100, 1), *got = NULL;
	size_t len = 0;

	open_ok(state, NULL);
	assert_int_equal(ops->put(f->st, "dir/file", data, 100), 0);
	assert_int_equal(ops->get(f->st, "missing", 10, &got, &len), -ENOENT);
	assert_int_equal(ops->get(f->st, "dir/missing", 10, &got, &len),
	                 -ENOENT);
	/* a directory is not an object, nor is a path through a file */
	assert_int_equal(ops->get(f->st, "dir", 10, &got, &len), -ENOENT);
	assert_int_equal(ops->get(f->st, "dir/file/x", 10, &got, &len),
	                 -ENOENT);
	harness_capture_start(f->dir);
	assert_int_equal(ops->get(f->st, "dir/file", 99, &got, &len), -EFBIG);
	harness_capture_end();
	harness_assert_logged("unable to read dir/file: 100 bytes");
	assert_null(got);
	assert_int_equal(ops->get(f->st, "dir/file", 100, &got, &len), 0);
	assert_int_equal(len, 100);
	assert_memory_equal(got, data, 100);
	free(got);
	free(data);
}

static void test_stat(void **state)
{
	struct fx *f = *state;

	open_ok(state, NULL);
	harness_check_stat(ops, f->st);
}

static void test_read(void **state)
{
	struct fx *f = *state;

	open_ok(state, NULL);
	harness_check_read(ops, f->st);
}

static void test_del(void **state)
{
	struct fx *f = *state;
	struct imgnode_stat st;
	void *got;
	size_t len;

	open_ok(state, NULL);
	assert_int_equal(ops->put(f->st, "a/b/c", "1", 1), 0);
	assert_int_equal(ops->put(f->st, "a/x", "2", 1), 0);
	assert_int_equal(ops->del(f->st, "a/b/c"), 0);
	assert_int_equal(ops->get(f->st, "a/b/c", 10, &got, &len), -ENOENT);
	assert_int_equal(ops->stat(f->st, "a/b/c", &st), -ENOENT);
	assert_int_equal(ops->del(f->st, "a/b/c"), -ENOENT);
	/* the emptied directory went, the one still in use stayed */
	assert_false(exists(f->store, "a/b"));
	assert_true(exists(f->store, "a/x"));
	assert_int_equal(ops->del(f->st, "a"), -ENOENT); /* a directory */
	assert_int_equal(ops->del(f->st, "a/x"), 0);
	assert_false(exists(f->store, "a"));
	assert_int_equal(count_tree(f->store, NULL), 0);
	assert_true(exists(f->dir, "store"));
	assert_int_equal(ops->del(f->st, "never"), -ENOENT);
}

static void test_list(void **state)
{
	struct fx *f = *state;
	char path[256];
	int fd;

	open_ok(state, NULL);
	harness_list_put(ops, f->st);
	/* a crashed put's temporary file and a stray name are not objects */
	snprintf(path, sizeof(path), "%s/jobs/.tmp~1.2", f->store);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/not a key", f->store);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640);
	assert_true(fd >= 0);
	close(fd);

	harness_list_check(ops, f->st);
}

static void test_invalid_keys(void **state)
{
	struct fx *f = *state;
	char long_key[IMGNODE_KEY_MAX + 1];

	open_ok(state, NULL);
	harness_check_invalid_keys(ops, f->st, f->dir);
	/* nothing written anywhere: the test dir holds the ini and the
	 * empty store */
	assert_int_equal(count_tree(f->dir, NULL), 2);
	assert_int_equal(count_tree(f->store, NULL), 0);
	/* the longest valid key is fine (in components a filesystem takes) */
	memset(long_key, 'k', IMGNODE_KEY_MAX);
	long_key[IMGNODE_KEY_MAX] = '\0';
	for (int i = 200; i < IMGNODE_KEY_MAX; i += 200)
		long_key[i] = '/';
	assert_int_equal(ops->put(f->st, long_key, "ok", 2), 0);
	harness_assert_object(ops, f->st, long_key, "ok", 2);
}

static void test_max_object(void **state)
{
	struct fx *f = *state;
	void *data = harness_random(1025, 3);

	open_ok(state, "max_object = 1K");
	assert_int_equal(ops->put(f->st, "m/ok", data, 1024), 0);
	harness_capture_start(f->dir);
	assert_int_equal(ops->put(f->st, "m/big", data, 1025), -EFBIG);
	assert_int_equal(ops->put_excl(f->st, "m/big2", data, 1025), -EFBIG);
	harness_capture_end();
	harness_assert_logged(
	        "unable to write m/big: 1025 bytes is more than max_object (1024 bytes)");
	assert_false(exists(f->store, "m/big"));
	assert_false(exists(f->store, "m/big2"));
	assert_int_equal(count_tree(f->store, NULL), 2);
	free(data);
}

/* A put that fails after making its temporary file takes it away. */
static void test_failed_put_cleans_up(void **state)
{
	struct fx *f = *state;
	pid_t pid;
	int status;

	open_ok(state, NULL);
	assert_int_equal(ops->put(f->st, "a/b", "x", 1), 0);
	harness_capture_start(f->dir);
	/* "a" is a directory: the rename over it fails */
	assert_int_equal(ops->put(f->st, "a", "y", 1), -EISDIR);
	/* "a/b" is a file: it cannot hold "a/b/c" */
	assert_int_equal(ops->put(f->st, "a/b/c", "z", 1), -ENOTDIR);
	harness_capture_end();
	harness_assert_logged("unable to write a: Is a directory");
	harness_assert_logged("unable to write a/b/c: Not a directory");
	assert_int_equal(tmp_files(f->store), 0);

	/* a write that fails half way (file size limit: EFBIG) */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = {64 * 1024, 64 * 1024};
		void *data = malloc(1 << 20);

		signal(SIGXFSZ, SIG_IGN);
		if (!data || setrlimit(RLIMIT_FSIZE, &rl))
			_exit(3);
		memset(data, 'q', 1 << 20);
		harness_capture_start(f->dir);
		status = ops->put(f->st, "big/one", data, 1 << 20);
		harness_capture_end();
		if (status != -EFBIG)
			_exit(1);
		if (!strstr(harness_captured,
		            "unable to write big/one: File too large"))
			_exit(2);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_false(exists(f->store, "big/one"));
	assert_int_equal(tmp_files(f->store), 0);
}

static void test_default_dir(void **state)
{
	struct fx *f = *state;
	mode_t mask = umask(0);
	struct stat sb;
	char path[256];

	umask(mask);
	assert_false(exists(f->dir, "store"));
	open_ok(state, NULL);
	assert_int_equal(stat(f->store, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0750 & ~mask);
	assert_int_equal(ops->put(f->st, "k/v", "x", 1), 0);
	snprintf(path, sizeof(path), "%s/k/v", f->store);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0640 & ~mask);
	assert_int_equal(ops->ping(f->st), 0);
}

static void test_explicit_dir(void **state)
{
	struct fx *f = *state;
	char line[256], where[192];

	snprintf(where, sizeof(where), "%s/deep/er/objects", f->dir);
	snprintf(line, sizeof(line), "dir = %s", where);
	open_ok(state, line);
	assert_int_equal(ops->put(f->st, "k", "x", 1), 0);
	assert_true(exists(where, "k"));
	assert_false(exists(f->dir, "store"));
}

static void test_init_fails(void **state)
{
	struct fx *f = *state;
	char line[256], path[192];
	int fd;

	snprintf(path, sizeof(path), "%s/file", f->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640);
	assert_true(fd >= 0);
	close(fd);
	snprintf(line, sizeof(line), "dir = %s/store", path);
	harness_capture_start(f->dir);
	assert_int_equal(fx_open(f, line), -ENOTDIR);
	fx_close(f);
	harness_capture_end();
	snprintf(line, sizeof(line),
	         "unable to create store directory %s/store: Not a directory",
	         path);
	harness_assert_logged(line);
}

/* dir is a PATH key: the config layer refuses a relative one, naming the
 * line, before the plugin ever sees it. */
static void test_relative_dir_refused(void **state)
{
	struct fx *f = *state;
	char ini[128], err[CONF_ERR_MAX] = "", want[256];
	struct conf *conf;
	void *buf = calloc(1, plugin->conf_size);
	FILE *fp;

	snprintf(ini, sizeof(ini), "%s/imgnode.ini", f->dir);
	fp = fopen(ini, "w");
	assert_non_null(fp);
	fprintf(fp, "[storage]\nplugin = fs\ndir = relative/path\n");
	assert_int_equal(fclose(fp), 0);
	conf = conf_load(ini, err, sizeof(err));
	assert_non_null(conf);
	assert_int_equal(conf_fill(conf, "storage", plugin->conf_keys, buf,
	                           false, err, sizeof(err)),
	                 -EINVAL);
	snprintf(
	        want, sizeof(want),
	        "%s:3: [storage] dir: \"relative/path\" is not an absolute path",
	        ini);
	assert_string_equal(err, want);
	free(buf);
	conf_free(conf);
}

static void test_ping(void **state)
{
	struct fx *f = *state;
	char moved[192];

	open_ok(state, NULL);
	assert_int_equal(ops->ping(f->st), 0);
	snprintf(moved, sizeof(moved), "%s/moved", f->dir);
	assert_int_equal(rename(f->store, moved), 0);
	harness_capture_start(f->dir);
	assert_int_equal(ops->ping(f->st), -ENOENT);
	/* writes must fail, not land in the directory that went away */
	assert_int_equal(mkdir(f->store, 0750), 0);
	assert_int_equal(ops->ping(f->st), -ESTALE);
	harness_capture_end();
	harness_assert_logged("unable to reach store");
}

/*
 * The ingress's storer: a second instance of the plugin, on a thread of
 * its own, writing while the first instance writes too.
 */
static void test_second_instance_on_a_thread(void **state)
{
	struct fx *f = *state;
	struct plugin p = {.desc = plugin, .conf = NULL};
	char err[256] = "", key[32], body[64];
	struct storer *s;
	void *buf;
	size_t len;

	assert_int_equal(fx_open(f, ""), 0);
	p.conf = f->cbuf;
	assert_int_equal(storer_start(&s, &p, err, sizeof(err)), 0);
	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "orig/k%d", i);
		snprintf(body, sizeof(body), "original %d", i);
		storer_put(s, key, body, strlen(body));
		assert_int_equal(ops->put(f->st, "jobs/k", "record", 6), 0);
		assert_int_equal(storer_wait(s), 0);
		assert_int_equal(ops->get(f->st, key, 100, &buf, &len), 0);
		assert_memory_equal(buf, body, strlen(body));
		assert_int_equal(len, strlen(body));
		free(buf);
	}
	/* a failed put comes back as its -errno; the next one works */
	assert_int_equal(ops->put(f->st, "file", "x", 1), 0);
	storer_put(s, "file/below", "x", 1);
	assert_true(storer_wait(s) < 0);
	storer_put(s, "orig/after", "y", 1);
	assert_int_equal(storer_wait(s), 0);
	storer_stop(s);
	storer_stop(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_round_trip, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_no_fsync, setup, teardown),
	        cmocka_unit_test_setup_teardown(
	                test_second_instance_on_a_thread, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_put_replaces, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_put_excl, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_excl_race, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_put_del_race, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_get, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_stat, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_read, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_del, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_list, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_invalid_keys, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_max_object, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_failed_put_cleans_up,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_default_dir, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_explicit_dir, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_relative_dir_refused,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_init_fails, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_ping, setup, teardown),
	};

	node_conf_register();
	return cmocka_run_group_tests_name("fs", tests, group_setup,
	                                   group_teardown);
}
