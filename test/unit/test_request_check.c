/*
 * The ingress's checks on a request before it is read (request_check.c):
 * framing that could smuggle a request, and text parameters that must be
 * UTF-8 without control characters; and the per-client count of jobs in
 * flight (quota.c).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "node/quota.h"
#include "node/request_check.h"
#include "plugin.h"

static void test_framing(void **state)
{
	struct request_framing ok11 = {.http11 = true, .host = 1},
	                       ok10 = {.http11 = false},
	                       chunked = {.http11 = true,
	                                  .host = 1,
	                                  .transfer_encoding = 1,
	                                  .te = "Chunked"},
	                       sized = {.http11 = true,
	                                .host = 1,
	                                .content_length = 1};
	struct request_framing f;

	(void)state;
	assert_null(request_framing_problem(&ok11));
	assert_null(request_framing_problem(&ok10));
	assert_null(request_framing_problem(&chunked));
	assert_null(request_framing_problem(&sized));

	f = sized;
	f.transfer_encoding = 1;
	f.te = "chunked";
	assert_string_equal(
	        request_framing_problem(&f),
	        "both Content-Length and Transfer-Encoding: give one");
	f = sized;
	f.content_length = 2;
	assert_string_equal(request_framing_problem(&f),
	                    "Content-Length given more than once");
	f = chunked;
	f.transfer_encoding = 2;
	assert_string_equal(request_framing_problem(&f),
	                    "Transfer-Encoding given more than once");
	for (size_t i = 0; i < 3; i++) {
		static const char *const codings[] = {
		        "gzip", "chunked, chunked", "chunkedx"};

		f = chunked;
		f.te = codings[i];
		assert_non_null(
		        strstr(request_framing_problem(&f), "must be chunked"));
	}
	f = ok11;
	f.host = 0;
	assert_string_equal(request_framing_problem(&f),
	                    "an HTTP/1.1 request needs a Host header");
	f = ok11;
	f.host = 2;
	assert_string_equal(request_framing_problem(&f),
	                    "Host given more than once");
}

static void assert_text(const char *s, size_t len, const char *why)
{
	char got[128] = "";

	if (!why) {
		assert_true(request_text_ok(s, len, got, sizeof(got)));
		return;
	}
	assert_false(request_text_ok(s, len, got, sizeof(got)));
	assert_string_equal(got, why);
}

static void test_text(void **state)
{
	static const char utf8[] =
	        "watermark(text=\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\")";

	(void)state;
	assert_text("", 0, NULL);
	assert_text("thumbnail(800)|webp(q=75)", 25, NULL);
	assert_text(utf8, strlen(utf8), NULL);
	assert_text("a\xff", 2, "byte 0xff at column 2 is not UTF-8");
	assert_text("ab\xc3", 3, "byte 0xc3 at column 3 is not UTF-8");
	assert_text("\xc0\xaf", 2, "byte 0xc0 at column 1 is not UTF-8");
	assert_text("\xe0\x80\xaf", 3, "byte 0xe0 at column 1 is not UTF-8");
	assert_text("x\xed\xa0\x80", 4, "byte 0xed at column 2 is not UTF-8");
	assert_text("\xf4\x90\x80\x80", 4,
	            "byte 0xf4 at column 1 is not UTF-8");
	assert_text("\xc3(", 2, "byte 0xc3 at column 1 is not UTF-8");
	assert_text("png\0x", 5, "control character U+0000 at column 4");
	assert_text("a\nb", 3, "control character U+000A at column 2");
	assert_text("a\x7f", 2, "control character U+007F at column 2");
	assert_text("\xc2\x85", 2, "control character U+0085 at column 1");
	assert_text("\xc2\xa0", 2, NULL);
}

/* The client name of peer (a literal) with X-Forwarded-For xff. */
static void assert_client(const char *peer, const char *xff, const char *want)
{
	static char *proxies[] = {"127.0.0.1", "::1", "2001:db8::10"};
	const struct imgnode_list trusted = {3, proxies};
	struct in6_addr a;
	char got[QUOTA_CLIENT_MAX];

	assert_true(request_addr_parse(peer, &a));
	request_client_name(&a, xff, &trusted, got, sizeof(got));
	assert_string_equal(got, want);
}

static void test_client_name(void **state)
{
	struct in6_addr a;

	(void)state;
	assert_false(request_addr_parse("nginx.local", &a));
	assert_false(request_addr_parse("1.2.3", &a));
	assert_false(request_addr_parse("", &a));
	/* addresses: IPv4 whole, IPv6 by its /64 */
	assert_client("192.0.2.7", NULL, "192.0.2.7");
	assert_client("::ffff:192.0.2.7", NULL, "192.0.2.7");
	assert_client("2001:db8:1:2:3:4:5:6", NULL, "2001:db8:1:2::/64");
	assert_client("2001:db8:1:2::ff", NULL, "2001:db8:1:2::/64");
	/* X-Forwarded-For counts only from a trusted proxy, by its end */
	assert_client("192.0.2.7", "203.0.113.1", "192.0.2.7");
	assert_client("127.0.0.1", "203.0.113.1", "203.0.113.1");
	assert_client("::1", "203.0.113.1", "203.0.113.1");
	assert_client("2001:db8::10", "10.0.0.1, 2001:db8:5:6::7",
	              "2001:db8:5:6::/64");
	assert_client("127.0.0.1", "6.6.6.6, 203.0.113.1", "203.0.113.1");
	assert_client("127.0.0.1", "6.6.6.6,203.0.113.1 ", "203.0.113.1");
	assert_client("127.0.0.1", "\t203.0.113.1\t", "203.0.113.1");
	/* what is not one address is not believed */
	assert_client("127.0.0.1", "203.0.113.1, unknown", "127.0.0.1");
	assert_client("127.0.0.1", "203.0.113.1,", "127.0.0.1");
	assert_client("127.0.0.1", "203.0.113.1 6.6.6.6", "127.0.0.1");
	assert_client("127.0.0.1", "", "127.0.0.1");
	assert_client("127.0.0.1",
	              "2001:0db8:0000:0000:0000:0000:0000:0001000000000000",
	              "127.0.0.1");
}

static void test_quota(void **state)
{
	struct quota *q = quota_new(4);
	int64_t held = -1;

	(void)state;
	assert_non_null(q);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(quota_take(q, "10.0.0.1", 3, &held), 0);
		assert_int_equal(held, i);
	}
	assert_int_equal(quota_take(q, "10.0.0.1", 3, &held), -EDQUOT);
	assert_int_equal(held, 3);
	/* another client is not held back by the first */
	assert_int_equal(quota_take(q, "key:0011223344556677", 3, &held), 0);
	assert_int_equal(quota_held(q, "10.0.0.1"), 3);
	assert_int_equal(quota_clients(q), 2);
	quota_release(q, "10.0.0.1");
	assert_int_equal(quota_take(q, "10.0.0.1", 3, &held), 0);
	for (int i = 0; i < 3; i++)
		quota_release(q, "10.0.0.1");
	quota_release(q, "key:0011223344556677");
	quota_release(q, "nobody"); /* unknown: nothing happens */
	assert_int_equal(quota_held(q, "10.0.0.1"), 0);
	assert_int_equal(quota_clients(q), 0);
	/* many clients in few buckets */
	for (int i = 0; i < 1000; i++) {
		char name[32];

		snprintf(name, sizeof(name), "192.0.2.%d", i);
		assert_int_equal(quota_take(q, name, 1, &held), 0);
		assert_int_equal(quota_take(q, name, 1, &held), -EDQUOT);
	}
	assert_int_equal(quota_clients(q), 1000);
	quota_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_framing),
	        cmocka_unit_test(test_text),
	        cmocka_unit_test(test_client_name),
	        cmocka_unit_test(test_quota),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
