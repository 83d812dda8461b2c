/*
 * The plugin loader: what it accepts, and each refusal, one line naming the
 * file. The fixtures are small plugins built from fixture_plugin.c, one per
 * way of being wrong; each test copies the ones it needs into a fresh
 * directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "node/node_conf.h"
#include "plugin.h"

static char fixtures[512];

struct env {
	char dir[64]; /* temp dir holding plugins/ and imgnode.ini */
	char plugins[96]; /* the plugin dir */
	char ini[96];
	char err[CONF_ERR_MAX];
	struct plugin_set set;
};

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in = open(from, O_RDONLY), out;

	assert_true(in >= 0);
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	assert_int_equal(fchmod(out, 0644), 0);
	close(out);
}

/* Copies fixture NAME.so into the env's plugin dir as AS (or NAME.so). */
static void add(struct env *e, const char *name, const char *as)
{
	char from[640], to[256];

	snprintf(from, sizeof(from), "%s/%s.so", fixtures, name);
	if (as)
		snprintf(to, sizeof(to), "%s/%s", e->plugins, as);
	else
		snprintf(to, sizeof(to), "%s/%s.so", e->plugins, name);
	copy_file(from, to);
}

static void write_ini(struct env *e, const char *text)
{
	FILE *f = fopen(e->ini, "w");

	assert_non_null(f);
	fprintf(f, "[node]\nplugin_dir = %s\n%s", e->plugins, text);
	fclose(f);
}

static int setup(void **state)
{
	struct env *e = calloc(1, sizeof(*e));

	if (!e)
		return -1;
	*state = e;
	snprintf(e->dir, sizeof(e->dir), "/tmp/imgnode-test-plugin.XXXXXX");
	if (!mkdtemp(e->dir))
		return -1;
	snprintf(e->plugins, sizeof(e->plugins), "%s/plugins", e->dir);
	snprintf(e->ini, sizeof(e->ini), "%s/imgnode.ini", e->dir);
	if (mkdir(e->plugins, 0755) < 0 || chmod(e->dir, 0755) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	struct env *e = *state;
	char cmd[128];

	plugin_set_free(&e->set);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
	if (system(cmd) != 0)
		return -1;
	free(e);
	return 0;
}

/* Loading fails, and err is "PLUGINS/file: ...what...". */
static void assert_refused(struct env *e, const char *file, const char *what)
{
	char prefix[256];

	assert_int_not_equal(
	        plugin_set_load(&e->set, e->plugins, e->err, sizeof(e->err)),
	        0);
	snprintf(prefix, sizeof(prefix), "%s/%s: ", e->plugins, file);
	if (strncmp(e->err, prefix, strlen(prefix)) != 0 ||
	    !strstr(e->err, what))
		fail_msg("error \"%s\" is not \"%s...%s...\"", e->err, prefix,
		         what);
	assert_null(strchr(e->err, '\n'));
}

static void test_loads_good_plugins(void **state)
{
	struct env *e = *state;
	struct plugin *p;

	add(e, "ok", NULL);
	add(e, "transport", NULL);
	add(e, "storage", NULL);
	assert_int_equal(
	        plugin_set_load(&e->set, e->plugins, e->err, sizeof(e->err)),
	        0);
	assert_int_equal(e->set.n, 3);
	p = plugin_find(&e->set, IMGNODE_KIND_FILTER, "fixture");
	assert_non_null(p);
	assert_string_equal(p->desc->version, "1.0");
	assert_non_null(
	        plugin_find(&e->set, IMGNODE_KIND_TRANSPORT, "fixture_t"));
	p = plugin_find(&e->set, IMGNODE_KIND_STORAGE, "fixture_s");
	assert_non_null(p);
	assert_true(plugin_storage_reads_ranges(p));
	/* a name of one kind is not found under another */
	assert_null(plugin_find(&e->set, IMGNODE_KIND_STORAGE, "fixture"));
}

/* The ranged read (ABI 1.2) is used from a 1.2 plugin, never from one
 * built for 1.1, whose ops table ends before it. */
static void test_storage_read_needs_abi_1_2(void **state)
{
	struct env *e = *state;
	struct plugin *p;

	add(e, "old_storage", NULL);
	assert_int_equal(
	        plugin_set_load(&e->set, e->plugins, e->err, sizeof(e->err)),
	        0);
	p = plugin_find(&e->set, IMGNODE_KIND_STORAGE, "fixture_s");
	assert_non_null(p);
	assert_int_equal(p->desc->abi_minor, 1);
	assert_false(plugin_storage_reads_ranges(p));
}

static void test_refuses_each_bad_descriptor(void **state)
{
	static const struct {
		const char *fixture, *what;
	} cases[] = {
	        {"no_symbol",
	         "not an imgnode plugin (no symbol imgnode_plugin)"},
	        {"bad_magic", "not an imgnode plugin (bad magic 0x464c457f"},
	        {"bad_major",
	         "built for plugin ABI 2.0; this imgnode speaks ABI 1.5"},
	        {"new_minor",
	         "needs plugin ABI 1.6 but this imgnode speaks only 1.5"},
	        {"bad_kind", "unknown plugin kind 7"},
	        {"no_name", "plugin name missing is not"},
	        {"bad_name", "plugin name \"Bad-Name\" is not 1-32 characters"},
	        {"no_ops", "filter plugin \"fixture\" has no operations"},
	        {"missing_op",
	         "storage plugin \"fixture_s\" lacks the get operation"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct env *e;
		char file[64];

		assert_int_equal(setup((void **)&e), 0);
		snprintf(file, sizeof(file), "%s.so", cases[i].fixture);
		add(e, "ok", "a_ok.so"); /* loads first, then the bad one */
		add(e, cases[i].fixture, NULL);
		assert_refused(e, file, cases[i].what);
		assert_int_equal(teardown((void **)&e), 0);
	}
	(void)state;
}

static void test_refuses_non_elf(void **state)
{
	struct env *e = *state;
	char path[160];
	FILE *f;

	snprintf(path, sizeof(path), "%s/text.so", e->plugins);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("this is not a shared object\n", f);
	fclose(f);
	assert_refused(e, "text.so", "cannot load: ");
}

static void test_refuses_duplicate(void **state)
{
	struct env *e = *state;
	char what[256];

	add(e, "dup_a", NULL);
	add(e, "dup_b", NULL);
	snprintf(
	        what, sizeof(what),
	        "duplicate filter plugin \"dup\" (already loaded from %s/dup_a.so)",
	        e->plugins);
	assert_refused(e, "dup_b.so", what);
}

static void test_refuses_writable_file_and_dir(void **state)
{
	struct env *e = *state;
	char path[160], what[256];

	add(e, "ok", NULL);
	snprintf(path, sizeof(path), "%s/ok.so", e->plugins);
	assert_int_equal(chmod(path, 0664), 0);
	assert_refused(e, "ok.so", "writable by group or others (mode 0664)");
	plugin_set_free(&e->set);

	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(chmod(e->plugins, 0757), 0);
	assert_int_not_equal(
	        plugin_set_load(&e->set, e->plugins, e->err, sizeof(e->err)),
	        0);
	snprintf(what, sizeof(what),
	         "%s: writable by group or others (mode 0757)", e->plugins);
	assert_string_equal(e->err, what);
}

static void test_refuses_foreign_owner(void **state)
{
	struct env *e = *state;
	char path[160];

	if (geteuid() != 0)
		fail_msg("this test changes file owners: run it as root");
	add(e, "ok", NULL);
	snprintf(path, sizeof(path), "%s/ok.so", e->plugins);
	assert_int_equal(chown(path, 65534, 65534), 0);
	assert_refused(e, "ok.so",
	               "owned by uid 65534, not by root or the running user");
}

static void test_refuses_missing_dir(void **state)
{
	struct env *e = *state;
	char dir[128];

	snprintf(dir, sizeof(dir), "%s/nope", e->dir);
	assert_int_equal(plugin_set_load(&e->set, dir, e->err, sizeof(e->err)),
	                 -ENOENT);
	assert_non_null(strstr(e->err, "nope: plugin directory: No such file"));
}

/* Loads the good plugins, reads the ini, configures; returns the result. */
static int configure(struct env *e, const char *ini, struct conf **confp)
{
	add(e, "ok", NULL);
	add(e, "transport", NULL);
	add(e, "storage", NULL);
	write_ini(e, ini);
	*confp = conf_load(e->ini, e->err, sizeof(e->err));
	assert_non_null(*confp);
	assert_int_equal(
	        plugin_set_load(&e->set, e->plugins, e->err, sizeof(e->err)),
	        0);
	return plugin_set_configure(&e->set, *confp, e->err, sizeof(e->err));
}

static const char *const good_refs =
        "[transport]\nplugin = fixture_t\nlevel = 9\n"
        "[storage]\nplugin = fixture_s\n";

static void test_configures_sections(void **state)
{
	struct env *e = *state;
	struct conf *conf;
	char ini[512];
	const struct {
		int64_t level;
		char *label;
	} * fc;
	struct plugin *p;

	snprintf(ini, sizeof(ini), "%s[filter.fixture]\nlabel = hello\n",
	         good_refs);
	assert_int_equal(configure(e, ini, &conf), 0);
	assert_string_equal(e->set.transport->desc->name, "fixture_t");
	assert_string_equal(e->set.storage->desc->name, "fixture_s");
	fc = e->set.transport->conf;
	assert_int_equal(fc->level, 9);
	p = plugin_find(&e->set, IMGNODE_KIND_FILTER, "fixture");
	fc = p->conf;
	assert_int_equal(fc->level, 3); /* the default */
	assert_string_equal(fc->label, "hello");
	plugin_set_free(&e->set);
	conf_free(conf);
}

static void test_configure_errors(void **state)
{
	static const struct {
		const char *ini, *what;
	} cases[] = {
	        {"[filter.fixture]\nlevel = 11\n",
	         "imgnode.ini:9: [filter.fixture] level: 11 is out of range (0 to 10)"},
	        {"[filter.nope]\nx = 1\n",
	         "imgnode.ini:9: [filter.nope]: no filter plugin \"nope\" in "},
	        {"[filter.fixture]\nbogus = 1\n",
	         "imgnode.ini:9: [filter.fixture] bogus: unknown key"},
	        {"[storage]\nsize = 1\n",
	         "imgnode.ini:9: [storage] size: unknown key"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct env *e;
		struct conf *conf;
		char ini[512];

		assert_int_equal(setup((void **)&e), 0);
		snprintf(ini, sizeof(ini), "%s%s", good_refs, cases[i].ini);
		add(e, "ok", NULL);
		add(e, "transport", NULL);
		add(e, "storage", NULL);
		write_ini(e, ini);
		conf = conf_load(e->ini, e->err, sizeof(e->err));
		if (conf) {
			assert_int_equal(plugin_set_load(&e->set, e->plugins,
			                                 e->err,
			                                 sizeof(e->err)),
			                 0);
			assert_int_equal(plugin_set_configure(&e->set, conf,
			                                      e->err,
			                                      sizeof(e->err)),
			                 -EINVAL);
		}
		if (!strstr(e->err, cases[i].what))
			fail_msg("case %zu: error \"%s\" lacks \"%s\"", i,
			         e->err, cases[i].what);
		plugin_set_free(&e->set);
		conf_free(conf);
		assert_int_equal(teardown((void **)&e), 0);
	}
	(void)state;
}

static void test_unknown_transport_lists_what_exists(void **state)
{
	struct env *e = *state;
	struct conf *conf;

	assert_int_equal(configure(e,
	                           "[transport]\nplugin = amqp\n"
	                           "[storage]\nplugin = fixture_s\n",
	                           &conf),
	                 -EINVAL);
	assert_non_null(strstr(e->err, "imgnode.ini:4: [transport] plugin: "
	                               "no transport plugin \"amqp\" in "));
	assert_non_null(strstr(e->err, "(found: fixture_t)"));
	plugin_set_free(&e->set);
	conf_free(conf);
}

static void test_validates_in_child(void **state)
{
	struct env *e = *state;
	struct conf *conf;

	add(e, "ok", NULL);
	add(e, "transport", NULL);
	add(e, "storage", NULL);
	write_ini(e, good_refs);
	conf = conf_load(e->ini, e->err, sizeof(e->err));
	assert_non_null(conf);
	assert_int_equal(plugin_validate_in_child(conf, NULL, NULL, e->err,
	                                          sizeof(e->err)),
	                 0);
	/* the check never maps plugin code into the caller */
	assert_null(e->set.head);

	add(e, "bad_major", NULL);
	assert_int_equal(plugin_validate_in_child(conf, NULL, NULL, e->err,
	                                          sizeof(e->err)),
	                 -EINVAL);
	assert_non_null(
	        strstr(e->err, "bad_major.so: built for plugin ABI 2.0"));

	add(e, "crash", "0crash.so");
	assert_int_equal(plugin_validate_in_child(conf, NULL, NULL, e->err,
	                                          sizeof(e->err)),
	                 -EINVAL);
	assert_non_null(
	        strstr(e->err, "plugin check crashed (Segmentation fault)"));
	conf_free(conf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_loads_good_plugins, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_storage_read_needs_abi_1_2,
	                                        setup, teardown),
	        cmocka_unit_test(test_refuses_each_bad_descriptor),
	        cmocka_unit_test_setup_teardown(test_refuses_non_elf, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_refuses_duplicate, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(
	                test_refuses_writable_file_and_dir, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_refuses_foreign_owner,
	                                        setup, teardown),
	        cmocka_unit_test_setup_teardown(test_refuses_missing_dir, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_configures_sections, setup,
	                                        teardown),
	        cmocka_unit_test(test_configure_errors),
	        cmocka_unit_test_setup_teardown(
	                test_unknown_transport_lists_what_exists, setup,
	                teardown),
	        cmocka_unit_test_setup_teardown(test_validates_in_child, setup,
	                                        teardown),
	};
	const char *build = getenv("BUILD");

	node_conf_register();
	snprintf(fixtures, sizeof(fixtures), "%s/test/fixtures",
	         build ? build : "build");
	return cmocka_run_group_tests(tests, NULL, NULL);
}
