/* Unit tests for typed config values and file:line errors of the loader. */
#include <errno.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf_keys.h"
#include "config.h"
#include "node/node_conf.h"

static const char *const colours[] = {"red", "green", NULL};
static const struct imgnode_conf_key k_size = {
        "s", IMGNODE_CONF_SIZE, "1K", 0, 0, NULL, "", 0};
static const struct imgnode_conf_key k_dur = {
        "d", IMGNODE_CONF_DURATION, "1s", 0, 0, NULL, "", 0};
static const struct imgnode_conf_key k_int = {
        "i", IMGNODE_CONF_INT, "1", 1, 10, NULL, "", 0};
static const char *const auto_word[] = {"auto", NULL};
static const struct imgnode_conf_key k_auto = {
        "a", IMGNODE_CONF_INT, "auto", 0, 8, auto_word, "", 0};
static const struct imgnode_conf_key k_enum = {
        "e", IMGNODE_CONF_ENUM, "red", 0, 0, colours, "", 0};

static void test_values(void **state)
{
	char err[256];
	int64_t v;
	int e;

	(void)state;
	assert_int_equal(conf_value_parse(&k_size, "50M", &v, err, sizeof(err)),
	                 0);
	assert_int_equal(v, 50 * 1024 * 1024);
	assert_int_equal(
	        conf_value_parse(&k_size, "2GiB", &v, err, sizeof(err)), 0);
	assert_int_equal(v, INT64_C(2) << 30);
	assert_int_not_equal(
	        conf_value_parse(&k_size, "5X", &v, err, sizeof(err)), 0);
	assert_int_equal(
	        conf_value_parse(&k_dur, "1m30s", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 90000);
	assert_int_equal(
	        conf_value_parse(&k_dur, "500ms", &v, err, sizeof(err)), 0);
	assert_int_equal(v, 500);
	assert_int_not_equal(
	        conf_value_parse(&k_int, "11", &v, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "out of range (1 to 10)"));
	assert_int_equal(
	        conf_value_parse(&k_enum, "green", &e, err, sizeof(err)), 0);
	assert_int_equal(e, 1);
	assert_int_not_equal(
	        conf_value_parse(&k_enum, "blue", &e, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "red, green"));
}

static char *write_file(const char *text)
{
	char *p = strdup("/tmp/imgnode-test-XXXXXX");
	int fd = mkstemp(p);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return p;
}

static void expect_error(const char *text, const char *want)
{
	char err[CONF_ERR_MAX] = "";
	char *path = write_file(text);
	struct conf *c = conf_load(path, err, sizeof(err));

	assert_null(c);
	if (!strstr(err, want))
		fail_msg("error \"%s\" lacks \"%s\"", err, want);
	unlink(path);
	free(path);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("[node]\nlog_level = loud\n",
	             ":2: [node] log_level: \"loud\" is not one of");
	expect_error("[node]\nbogus = 1\n", ":2: [node] bogus: unknown key");
	expect_error("[nope]\nx = 1\n", ":2: [nope] x: unknown section");
	expect_error(
	        "[supervisor]\nperiod = 1s\nperiod = 2s\n",
	        ":3: [supervisor] period: duplicate key (first set at line 2)");
	expect_error("[node]\nthis is not ini\n", ":2: syntax error");
	expect_error("[supervisor]\nintensity = -1\n", "out of range");
}

/* An INT with a word: "auto" is -1, numbers keep their bounds. */
static void test_int_words(void **state)
{
	char err[256], text[32];
	int64_t v = 0;

	(void)state;
	assert_int_equal(
	        conf_value_parse(&k_auto, "auto", &v, err, sizeof(err)), 0);
	assert_int_equal(v, -1);
	conf_value_format(&k_auto, &v, text, sizeof(text));
	assert_string_equal(text, "auto");
	assert_int_equal(conf_value_parse(&k_auto, "3", &v, err, sizeof(err)),
	                 0);
	assert_int_equal(v, 3);
	conf_value_format(&k_auto, &v, text, sizeof(text));
	assert_string_equal(text, "3");
	assert_int_not_equal(
	        conf_value_parse(&k_auto, "-1", &v, err, sizeof(err)), 0);
	assert_string_equal(err, "-1 is out of range (0 to 8)");
	assert_int_not_equal(
	        conf_value_parse(&k_auto, "many", &v, err, sizeof(err)), 0);
	assert_string_equal(err, "\"many\" is not an integer or auto");
}

/* [workers] count = auto (the default): one worker per CPU the node may
 * run on. */
static void test_workers_auto(void **state)
{
	char err[CONF_ERR_MAX] = "";
	char *path = write_file("[node]\nlog_level = warn\n");
	cpu_set_t all, one;
	struct conf *c;

	(void)state;
	assert_int_equal(sched_getaffinity(0, sizeof(all), &all), 0);
	c = conf_load(path, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->app->workers.count, CPU_COUNT(&all));
	conf_free(c);
	/* as under taskset -c N or a cpuset of one CPU */
	CPU_ZERO(&one);
	for (int i = 0; i < CPU_SETSIZE; i++)
		if (CPU_ISSET(i, &all)) {
			CPU_SET(i, &one);
			break;
		}
	assert_int_equal(sched_setaffinity(0, sizeof(one), &one), 0);
	c = conf_load(path, err, sizeof(err));
	assert_int_equal(sched_setaffinity(0, sizeof(all), &all), 0);
	assert_non_null(c);
	assert_int_equal(c->app->workers.count, 1);
	conf_free(c);
	unlink(path);
	free(path);
	path = write_file("[workers]\ncount = 0\n");
	c = conf_load(path, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->app->workers.count, 0);
	conf_free(c);
	unlink(path);
	free(path);
}

/* The engine knows only the sections it is handed: a program's own, in a
 * block of its own, and its fill hook after the tables. */
struct app_block {
	int64_t x;
};

static int app_fill(struct conf *conf, char *err, size_t errlen)
{
	const struct app_block *b = (const struct app_block *)conf->app;

	if (b->x != 7)
		return 0;
	conf_set_err(err, errlen, "[app] x: not 7");
	return -EINVAL;
}

static void test_engine_schemas(void **state)
{
	static const struct imgnode_conf_key app_keys[] = {
	        {"x", IMGNODE_CONF_INT, "1", 0, 10, NULL, "x.",
	         offsetof(struct app_block, x)},
	        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
	};
	static const struct conf_section app_sections[] = {
	        {"app", app_keys, 0, 0},
	        {NULL, NULL, 0, 0},
	};
	static const struct conf_schema app = {
	        .sections = app_sections,
	        .size = sizeof(struct app_block),
	        .fill = app_fill,
	};
	char err[CONF_ERR_MAX] = "", *path = write_file("[app]\nx = 5\n");
	struct conf *c;

	(void)state;
	c = conf_read(path, NULL, &app, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(((struct app_block *)c->app)->x, 5);
	conf_free(c);
	/* without the schema, [app] is no section at all */
	assert_null(conf_read(path, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, ":2: [app] x: unknown section"));
	unlink(path);
	free(path);
	/* the runtime's sections alone know nothing of the node's */
	path = write_file("[ingress]\nport = 8081\n");
	c = conf_load(path, err, sizeof(err));
	assert_non_null(c);
	conf_free(c);
	conf_register_app(NULL);
	assert_null(conf_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, ":2: [ingress] port: unknown section"));
	node_conf_register();
	unlink(path);
	free(path);
	/* the fill hook runs after the tables, its error is the load's */
	path = write_file("[app]\nx = 7\n");
	assert_null(conf_read(path, NULL, &app, err, sizeof(err)));
	assert_string_equal(err, "[app] x: not 7");
	unlink(path);
	free(path);
}

static void test_defaults(void **state)
{
	char err[CONF_ERR_MAX] = "";
	char *path = write_file("[supervisor]\nperiod = 1m\n");
	struct conf *c = conf_load(path, err, sizeof(err));

	(void)state;
	assert_non_null(c);
	assert_int_equal(c->supervisor.period, 60000);
	assert_int_equal(c->supervisor.shutdown_timeout, 10000);
	assert_string_equal(c->transport.plugin, "spool");
	conf_free(c);
	unlink(path);
	free(path);
}

/* A config that others may write is refused, naming the file. */
static void test_writable_refused(void **state)
{
	static const struct {
		mode_t mode;
		const char *why;
	} cases[] = {{0664, "writable by its group (mode 0664)"},
	             {0606, "writable by others (mode 0606)"},
	             {0622, "writable by others (mode 0622)"}};
	char err[CONF_ERR_MAX] = "";
	char *path = write_file("[node]\nlog_level = warn\n");
	struct conf *c;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(chmod(path, cases[i].mode), 0);
		assert_null(conf_load(path, err, sizeof(err)));
		if (!strstr(err, cases[i].why) ||
		    strncmp(err, path, strlen(path)))
			fail_msg("error \"%s\" lacks %s: %s", err, path,
			         cases[i].why);
	}
	assert_int_equal(chmod(path, 0644), 0);
	c = conf_load(path, err, sizeof(err));
	assert_non_null(c);
	conf_free(c);
	unlink(path);
	free(path);
}

/* imgnode -T prints a secret key's value as <redacted>, an empty one as
 * it is. */
static void test_secrets_redacted(void **state)
{
	char err[CONF_ERR_MAX] = "";
	char *path = write_file(
	        "[ingress]\napi_keys = alice:alice-key, bare-key\n"
	        "hmac_keys = k1:0123456789abcdef-secret\nport = 8081\n");
	struct conf *c = conf_load(path, err, sizeof(err));
	char *text = NULL;
	size_t len = 0;
	FILE *out;

	(void)state;
	assert_non_null(c);
	out = open_memstream(&text, &len);
	assert_non_null(out);
	conf_print_keys(out, c, "ingress", ingress_conf_keys, &c->app->ingress,
	                CONF_PRINT_EFFECTIVE);
	fclose(out);
	assert_null(strstr(text, "alice-key"));
	assert_null(strstr(text, "bare-key"));
	assert_null(strstr(text, "0123456789abcdef-secret"));
	assert_non_null(strstr(text, "\napi_keys = <redacted>  ; "));
	assert_non_null(strstr(text, "\nhmac_keys = <redacted>  ; "));
	assert_non_null(strstr(text, "\nhmac_key =\n"));
	assert_non_null(strstr(text, "\nport = 8081  ; "));
	free(text);
	/* the parsed values are the secrets themselves */
	assert_int_equal(c->app->ingress.api_keys.n, 2);
	assert_string_equal(c->app->ingress.api_keys.items[1], "bare-key");
	conf_free(c);
	unlink(path);
	free(path);
}

/* The secret flag is or'ed into a type; other high bits are refused. */
static void test_secret_flag(void **state)
{
	static const struct imgnode_conf_key k_secret = {
	        "p", IMGNODE_CONF_STRING | IMGNODE_CONF_SECRET,
	        "",  0,
	        0,   NULL,
	        "",  0};
	static const struct imgnode_conf_key k_bad = {
	        "b", IMGNODE_CONF_STRING | 0x400, "", 0, 0, NULL, "", 0};
	char err[256], *v = NULL;

	(void)state;
	assert_int_equal(
	        conf_value_parse(&k_secret, "pw", &v, err, sizeof(err)), 0);
	assert_string_equal(v, "pw");
	conf_value_free(&k_secret, &v);
	assert_null(v);
	assert_int_not_equal(
	        conf_value_parse(&k_bad, "pw", &v, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "unknown type"));
}

/* Keys of signed requests and API keys: well formed, IDs distinct, v1
 * only when asked for. */
static void test_auth_keys(void **state)
{
	(void)state;
	expect_error("[ingress]\nhmac_key = old\n",
	             ":2: [ingress] hmac_key: v1 signatures");
	expect_error("[ingress]\nhmac_v1 = yes\n", "hmac_key is empty");
	expect_error("[ingress]\nhmac_keys = 0123456789abcdef\n",
	             ":2: [ingress] hmac_keys: item 1 is not ID:SECRET");
	expect_error("[ingress]\nhmac_keys = k:0123456789abcdef, k:short\n",
	             "item 2: the secret is shorter than 16");
	expect_error("[ingress]\nhmac_keys = a:0123456789abcdef, "
	             "a:0123456789abcdefg\n",
	             "ID \"a\" is given twice");
	expect_error("[ingress]\napi_keys = x y:key\n", "an ID is 1-64");
	expect_error("[ingress]\napi_keys = :key\n", "an ID is 1-64");
	expect_error("[ingress]\nport = 9000\nadmin_port = 9000\n",
	             "admin_port: the same address and port");
}

/* Loads len bytes of text (NULs included); returns the config or NULL
 * with the reason in err. */
static struct conf *load_bytes(const char *text, size_t len, char *err,
                               size_t errlen)
{
	char path[] = "/tmp/imgnode-test-XXXXXX";
	int fd = mkstemp(path);
	struct conf *c;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	c = conf_load(path, err, errlen);
	unlink(path);
	return c;
}

/* A NUL byte cut its line short without a word (or dropped it whole):
 * seen while writing test/fuzz/fuzz_config. A line of exactly 199
 * characters fits (it was taken for a longer one). */
static void test_nul_bytes_and_line_lengths(void **state)
{
	static const char mid[] = "[ingress]\nport = 80\0 81\n";
	static const char first[] = "[ingress]\n\0port = 81\nmax_body = 1K\n";
	static const char last[] = "[ingress]\nport = 80\0";
	char err[CONF_ERR_MAX] = "", text[512], key[190];
	struct conf *c;
	int n;

	(void)state;
	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	assert_null(load_bytes(mid, sizeof(mid) - 1, err, sizeof(err)));
	assert_non_null(strstr(err, ":2: NUL byte in the line"));
	assert_null(load_bytes(first, sizeof(first) - 1, err, sizeof(err)));
	assert_non_null(strstr(err, ":2: NUL byte in the line"));
	assert_null(load_bytes(last, sizeof(last) - 1, err, sizeof(err)));
	assert_non_null(strstr(err, ":2: NUL byte in the line"));

	/* "state_dir = /" and 186 more: 199 characters */
	n = snprintf(text, sizeof(text), "[node]\nstate_dir = /%.186s\n", key);
	n += snprintf(text + n, sizeof(text) - (size_t)n,
	              "[ingress]\nport = 81\nport = 82\n");
	assert_null(load_bytes(text, (size_t)n, err, sizeof(err)));
	assert_non_null(strstr(
	        err,
	        ":5: [ingress] port: duplicate key (first set at line 4)"));
	n = snprintf(text, sizeof(text), "[node]\nstate_dir = /%.186s\n", key);
	c = load_bytes(text, (size_t)n, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(strlen(c->node.state_dir), 187);
	conf_free(c);
	n = snprintf(text, sizeof(text), "[node]\nstate_dir = /%.187s\n", key);
	assert_null(load_bytes(text, (size_t)n, err, sizeof(err)));
	assert_non_null(strstr(err, ":2: line is longer than 199 characters"));
}

/* A list goes on over indented lines after a trailing comma (a cluster's
 * broker URLs do not fit one line); an indented line after anything else
 * is still a duplicate key, and a list never goes on into another file's
 * or key's lines. */
static void test_list_lines(void **state)
{
	static const char ok[] = "[ingress]\n"
	                         "trusted_proxies = 10.0.0.1,\n"
	                         "   10.0.0.2 ,\n"
	                         "\t10.0.0.3\n"
	                         "port = 81\n";
	char err[CONF_ERR_MAX] = "";
	struct conf *c;

	(void)state;
	c = load_bytes(ok, sizeof(ok) - 1, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->app->ingress.trusted_proxies.n, 3);
	assert_string_equal(c->app->ingress.trusted_proxies.items[1],
	                    "10.0.0.2");
	assert_string_equal(c->app->ingress.trusted_proxies.items[2],
	                    "10.0.0.3");
	assert_int_equal(c->app->ingress.port, 81);
	conf_free(c);
	expect_error("[ingress]\ntrusted_proxies = 10.0.0.1\n  10.0.0.2\n",
	             ":3: [ingress] trusted_proxies: duplicate key");
	expect_error("[ingress]\nport = 81\n  port = 82\n",
	             ":3: [ingress] port: duplicate key");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_values),
	        cmocka_unit_test(test_errors),
	        cmocka_unit_test(test_defaults),
	        cmocka_unit_test(test_engine_schemas),
	        cmocka_unit_test(test_int_words),
	        cmocka_unit_test(test_workers_auto),
	        cmocka_unit_test(test_writable_refused),
	        cmocka_unit_test(test_secrets_redacted),
	        cmocka_unit_test(test_secret_flag),
	        cmocka_unit_test(test_auth_keys),
	        cmocka_unit_test(test_nul_bytes_and_line_lengths),
	        cmocka_unit_test(test_list_lines),
	};

	node_conf_register();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
