/*
 * Idempotency keys (idempotency.c): the header's check, the record's key
 * and text, the verdict on a record found, and the claim against a small
 * in-memory store with put_excl's semantics.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/idempotency.h"

#define HOUR_MS (3600 * 1000)

static void test_key_check(void **state)
{
	char key[IDEM_KEY_MAX + 1], why[200], longest[IDEM_KEY_MAX + 3];

	(void)state;
	assert_int_equal(idem_key_check("8e03978e-40d5-43e8-bc93-6894a57f9324",
	                                key, why, sizeof(why)),
	                 0);
	assert_string_equal(key, "8e03978e-40d5-43e8-bc93-6894a57f9324");
	/* a structured field string: quoted, the quotes dropped */
	assert_int_equal(idem_key_check("\"abc\"", key, why, sizeof(why)), 0);
	assert_string_equal(key, "abc");
	memset(longest, 'k', IDEM_KEY_MAX);
	longest[IDEM_KEY_MAX] = '\0';
	assert_int_equal(idem_key_check(longest, key, why, sizeof(why)), 0);
	longest[IDEM_KEY_MAX] = 'k';
	longest[IDEM_KEY_MAX + 1] = '\0';
	assert_int_equal(idem_key_check(longest, key, why, sizeof(why)),
	                 -EINVAL);
	assert_non_null(strstr(why, "256 characters; give 1 to 255"));
	assert_int_equal(idem_key_check("", key, why, sizeof(why)), -EINVAL);
	assert_int_equal(idem_key_check("\"\"", key, why, sizeof(why)),
	                 -EINVAL);
	assert_int_equal(idem_key_check("a b", key, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "character 2 is not allowed"));
	assert_int_equal(idem_key_check("a\"b", key, why, sizeof(why)),
	                 -EINVAL);
	assert_int_equal(idem_key_check("a\\b", key, why, sizeof(why)),
	                 -EINVAL);
	assert_int_equal(idem_key_check("caf\xc3\xa9", key, why, sizeof(why)),
	                 -EINVAL);
	assert_int_equal(idem_key_check("\x7f", key, why, sizeof(why)),
	                 -EINVAL);
}

static void test_storage_key(void **state)
{
	char a[IDEM_STORAGE_KEY_MAX], b[IDEM_STORAGE_KEY_MAX];

	(void)state;
	assert_int_equal(idem_storage_key("alice", "k1", a), 0);
	assert_int_equal(strlen(a), strlen(IDEM_PREFIX) + 64);
	assert_memory_equal(a, IDEM_PREFIX, strlen(IDEM_PREFIX));
	assert_int_equal(idem_storage_key("alice", "k1", b), 0);
	assert_string_equal(a, b);
	/* per API key, and no two splits of one text collide */
	assert_int_equal(idem_storage_key("bob", "k1", b), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(idem_storage_key("alicek", "1", b), 0);
	assert_string_not_equal(a, b);
	assert_int_equal(idem_storage_key("", "k1", b), 0);
	assert_string_not_equal(a, b);
}

static void test_request_hash(void **state)
{
	const char *one[] = {"thumbnail(800)|webp"}, *two[] = {"a", "b"},
	           *joined[] = {"a;b"};
	unsigned char d1[32], d2[32], img[32] = {1}, other[32] = {2};
	char h1[65], h2[65];

	(void)state;
	assert_int_equal(idem_define(one, 1, NULL, d1), 0);
	assert_int_equal(idem_define(one, 1, "http://h/x", d2), 0);
	assert_memory_not_equal(d1, d2, 32);
	assert_int_equal(idem_define(one, 1, "", d2), 0); /* "" is none */
	assert_memory_equal(d1, d2, 32);
	assert_int_equal(idem_define(two, 2, NULL, d1), 0);
	assert_int_equal(idem_define(joined, 1, NULL, d2), 0);
	assert_memory_equal(d1, d2, 32); /* renditions are joined by ';' */
	idem_request_hash(d1, img, h1);
	idem_request_hash(d1, other, h2);
	assert_int_equal(strlen(h1), 64);
	assert_string_not_equal(h1, h2);
	idem_request_hash(d1, img, h2);
	assert_string_equal(h1, h2);
}

static const struct idem_record REC = {
        .job = "0123456789abcdef0123456789abcdef",
        .hash = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        .state = IDEM_ACCEPTED,
        .at_ms = 1000000,
        .stale_ms = 40000};

static void test_record(void **state)
{
	struct idem_record got;
	char *text = idem_record_encode(&REC);

	(void)state;
	assert_non_null(text);
	assert_int_equal(idem_record_decode(text, strlen(text), &got), 0);
	assert_string_equal(got.job, REC.job);
	assert_string_equal(got.hash, REC.hash);
	assert_int_equal(got.state, REC.state);
	assert_int_equal(got.at_ms, REC.at_ms);
	assert_int_equal(got.stale_ms, REC.stale_ms);
	free(text);
	/* an older node's record has no stale_ms: the old bound */
	text = "{\"job\":\"0123456789abcdef0123456789abcdef\",\"hash\":"
	       "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	       "aaaa\",\"state\":\"pending\",\"at_ms\":5}";
	assert_int_equal(idem_record_decode(text, strlen(text), &got), 0);
	assert_int_equal(got.stale_ms, IDEM_PENDING_STALE_MS);
	assert_int_equal(idem_record_decode("{}", 2, &got), -EBADMSG);
	assert_int_equal(idem_record_decode("not json", 8, &got), -EBADMSG);
	text = "{\"job\":\"x\",\"hash\":\"h\",\"state\":\"done\",\"at_ms\":1}";
	assert_int_equal(idem_record_decode(text, strlen(text), &got),
	                 -EBADMSG);
}

static void test_judge(void **state)
{
	struct idem_record r = REC;
	const char *other =
	        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
	int64_t at = REC.at_ms, day = 24 * (int64_t)HOUR_MS;

	(void)state;
	assert_int_equal(idem_judge(&r, REC.hash, at + 10, day), IDEM_REPLAY);
	assert_int_equal(idem_judge(&r, other, at + 10, day), IDEM_MISMATCH);
	assert_int_equal(idem_judge(&r, other, at + day, day), IDEM_FREE);
	assert_int_equal(idem_judge(&r, REC.hash, at + day - 1, day),
	                 IDEM_REPLAY);
	r.state = IDEM_PENDING;
	assert_int_equal(idem_judge(&r, REC.hash, at + 10, day),
	                 IDEM_IN_PROGRESS);
	assert_int_equal(idem_judge(&r, other, at + 10, day), IDEM_MISMATCH);
	/* a claim left pending (its request answered 503 while the storage
	 * stalled, or its node died) is taken over once its own bound is
	 * past, not before */
	assert_int_equal(idem_judge(&r, REC.hash, at + REC.stale_ms - 1, day),
	                 IDEM_IN_PROGRESS);
	assert_int_equal(idem_judge(&r, REC.hash, at + REC.stale_ms, day),
	                 IDEM_FREE);
}

/* ---- a store of one object, with put_excl's semantics ---- */

struct one_object {
	char key[128];
	char *data;
	size_t len;
	int puts, excl, dels;
};

static int mem_put(void *state, const char *key, const void *data, size_t len)
{
	struct one_object *o = state;

	free(o->data);
	o->data = malloc(len);
	memcpy(o->data, data, len);
	o->len = len;
	snprintf(o->key, sizeof(o->key), "%s", key);
	o->puts++;
	return 0;
}

static int mem_put_excl(void *state, const char *key, const void *data,
                        size_t len)
{
	struct one_object *o = state;

	o->excl++;
	if (o->data)
		return -EEXIST;
	return mem_put(state, key, data, len);
}

static int mem_get(void *state, const char *key, size_t max, void **data,
                   size_t *len)
{
	struct one_object *o = state;

	(void)key;
	if (!o->data)
		return -ENOENT;
	if (o->len > max)
		return -EFBIG;
	*data = malloc(o->len);
	memcpy(*data, o->data, o->len);
	*len = o->len;
	return 0;
}

static int mem_del(void *state, const char *key)
{
	struct one_object *o = state;

	(void)key;
	if (!o->data)
		return -ENOENT;
	free(o->data);
	o->data = NULL;
	o->dels++;
	return 0;
}

static const struct imgnode_storage_ops MEM = {
        .put = mem_put,
        .put_excl = mem_put_excl,
        .get = mem_get,
        .del = mem_del,
};

static void test_claim(void **state)
{
	struct one_object store = {0};
	struct idem_record mine = REC, theirs = REC, found;
	enum idem_verdict verdict = IDEM_FREE;
	int64_t day = 24 * (int64_t)HOUR_MS, at = REC.at_ms;
	char *text;

	(void)state;
	mine.state = IDEM_PENDING;
	/* free: claimed */
	assert_int_equal(idem_claim(&MEM, &store, "idem/x", &mine, at, day,
	                            &found, &verdict),
	                 0);
	assert_int_equal(store.puts, 1);
	/* claimed by the same request, pending: in progress */
	assert_int_equal(idem_claim(&MEM, &store, "idem/x", &mine, at + 1, day,
	                            &found, &verdict),
	                 -EEXIST);
	assert_int_equal(verdict, IDEM_IN_PROGRESS);
	assert_string_equal(found.job, REC.job);
	/* accepted: a replay */
	text = idem_record_encode(&theirs);
	mem_put(&store, "idem/x", text, strlen(text));
	free(text);
	assert_int_equal(idem_claim(&MEM, &store, "idem/x", &mine, at + 1, day,
	                            &found, &verdict),
	                 -EEXIST);
	assert_int_equal(verdict, IDEM_REPLAY);
	/* another request: a mismatch, and the record stays */
	memset(mine.hash, 'c', 64);
	assert_int_equal(idem_claim(&MEM, &store, "idem/x", &mine, at + 1, day,
	                            &found, &verdict),
	                 -EEXIST);
	assert_int_equal(verdict, IDEM_MISMATCH);
	assert_int_equal(store.dels, 0);
	/* past the window: deleted and claimed anew */
	mine.at_ms = at + day;
	assert_int_equal(idem_claim(&MEM, &store, "idem/x", &mine, at + day,
	                            day, &found, &verdict),
	                 0);
	assert_int_equal(store.dels, 1);
	assert_int_equal(idem_record_decode(store.data, store.len, &found), 0);
	assert_memory_equal(found.hash, mine.hash, 64);
	/* unreadable: the same */
	mem_put(&store, "idem/x", "junk", 4);
	assert_int_equal(idem_claim(&MEM, &store, "idem/x", &mine, at + day,
	                            day, &found, &verdict),
	                 0);
	assert_int_equal(store.dels, 2);
	free(store.data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_key_check),
	        cmocka_unit_test(test_storage_key),
	        cmocka_unit_test(test_request_hash),
	        cmocka_unit_test(test_record),
	        cmocka_unit_test(test_judge),
	        cmocka_unit_test(test_claim),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
