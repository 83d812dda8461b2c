/*
 * Webhooks (core/node/callback.c): which callback URLs the allow-list
 * lets through (libcurl's parser decides the host, as it will when the
 * notifier connects), the signature receivers check, the backoff.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/callback.h"
#include "node/metrics.h"
#include "node/node_conf.h"

static int check(const char *url, const char *why_has)
{
	char *items[] = {"127.0.0.1:8080", "hooks.example.com", "[::1]:9000"};
	struct imgnode_list hosts = {.items = items, .n = 3};
	char why[400] = "";
	int ret = callback_url_check(url, &hosts, why, sizeof(why));

	if (why_has)
		assert_non_null(strstr(why, why_has));
	return ret;
}

static void test_allowed_urls(void **state)
{
	(void)state;
	assert_int_equal(check("http://127.0.0.1:8080/hook?x=1", NULL), 0);
	assert_int_equal(check("https://hooks.example.com/a/b", NULL), 0);
	assert_int_equal(check("http://HOOKS.example.com:80/", NULL), 0);
	assert_int_equal(check("http://[::1]:9000/h", NULL), 0);
}

static void test_refused_urls(void **state)
{
	(void)state;
	/* another host, port, or a name the list does not write */
	assert_int_equal(check("http://127.0.0.2:8080/", "callback_hosts"),
	                 -EINVAL);
	assert_int_equal(check("http://127.0.0.1:8081/", "callback_hosts"),
	                 -EINVAL);
	assert_int_equal(check("http://localhost:8080/", "callback_hosts"),
	                 -EINVAL);
	/* a host without a port in the list: its scheme's default only */
	assert_int_equal(
	        check("https://hooks.example.com:8443/", "callback_hosts"),
	        -EINVAL);
	/* a host that only looks allowed */
	assert_int_equal(
	        check("http://hooks.example.com.evil.org/", "callback_hosts"),
	        -EINVAL);
	assert_int_equal(
	        check("http://evil.org#@hooks.example.com/", "callback_hosts"),
	        -EINVAL);
	assert_int_equal(check("http://hooks.example.com@evil.org/", "user"),
	                 -EINVAL);
	assert_int_equal(check("ftp://127.0.0.1:8080/", "http or https"),
	                 -EINVAL);
	assert_int_equal(check("file:///etc/passwd", "http or https"), -EINVAL);
	assert_int_equal(check("127.0.0.1:8080/x", NULL), -EINVAL);
	assert_int_equal(check("/x", "absolute"), -EINVAL);
}

static void test_off_without_hosts(void **state)
{
	struct imgnode_list none = {.items = NULL, .n = 0};
	char why[400];

	(void)state;
	assert_int_equal(callback_url_check("http://127.0.0.1:8080/", &none,
	                                    why, sizeof(why)),
	                 -EINVAL);
	assert_non_null(strstr(why, "[ingress] callback_hosts is empty"));
}

static void test_host_items(void **state)
{
	(void)state;
	assert_true(callback_host_item_ok("example.com"));
	assert_true(callback_host_item_ok("10.0.0.1:443"));
	assert_true(callback_host_item_ok("[fe80::1]:80"));
	assert_false(callback_host_item_ok("http://example.com"));
	assert_false(callback_host_item_ok("example.com:0"));
	assert_false(callback_host_item_ok("example.com:99999"));
	assert_false(callback_host_item_ok("example.com/x"));
	assert_false(callback_host_item_ok(":80"));
	assert_false(callback_host_item_ok("[]:80"));
}

/* The example of docs/webhooks.md, computed there with Python. */
static void test_signature(void **state)
{
	char sig[65];

	(void)state;
	assert_int_equal(callback_sign("0123456789abcdef0123", 1796000000,
	                               "{\"id\":\"x\"}", 10, sig),
	                 0);
	assert_string_equal(
	        sig,
	        "3204f35439405f217449f0cd68be00407b884538dae06362fc91ef2b6a80dc69");
}

static void test_backoff_doubles_up_to_its_cap(void **state)
{
	struct webhooks_conf wc = {.backoff_min = 10000,
	                           .backoff_max = 3600000};

	(void)state;
	assert_int_equal(callback_backoff_ms(&wc, 1), 10000);
	assert_int_equal(callback_backoff_ms(&wc, 2), 20000);
	assert_int_equal(callback_backoff_ms(&wc, 9), 2560000);
	assert_int_equal(callback_backoff_ms(&wc, 10), 3600000);
	assert_int_equal(callback_backoff_ms(&wc, 1000), 3600000);
}

/* Hints reach the notifier in order; too many unread ones say so. */
static void test_hints(void **state)
{
	struct metrics *m = calloc(1, sizeof(*m));
	uint64_t tail = 0;
	char id[33], want[33];

	(void)state;
	assert_non_null(m);
	assert_int_equal(callback_hint_pop(m, &tail, id), 0);
	callback_hint_push(m, "0123456789abcdef0123456789abcdef");
	callback_hint_push(m, "fedcba9876543210fedcba9876543210");
	assert_int_equal(callback_hint_pop(m, &tail, id), 1);
	assert_string_equal(id, "0123456789abcdef0123456789abcdef");
	assert_int_equal(callback_hint_pop(m, &tail, id), 1);
	assert_string_equal(id, "fedcba9876543210fedcba9876543210");
	assert_int_equal(callback_hint_pop(m, &tail, id), 0);
	for (int i = 0; i < METRICS_HINTS + 1; i++) {
		snprintf(want, sizeof(want), "%032d", i);
		callback_hint_push(m, want);
	}
	assert_int_equal(callback_hint_pop(m, &tail, id), -1);
	assert_int_equal(callback_hint_pop(m, &tail, id), 0);
	callback_hint_push(m, "0123456789abcdef0123456789abcdef");
	assert_int_equal(callback_hint_pop(m, &tail, id), 1);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_allowed_urls),
	        cmocka_unit_test(test_refused_urls),
	        cmocka_unit_test(test_off_without_hosts),
	        cmocka_unit_test(test_host_items),
	        cmocka_unit_test(test_signature),
	        cmocka_unit_test(test_backoff_doubles_up_to_its_cap),
	        cmocka_unit_test(test_hints),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
