/*
 * Jobs (core/node/job.c): what is read back from records and messages,
 * which come from storage and the queue and may hold anything. The inputs
 * here are ones the fuzzer (test/fuzz/fuzz_job.c) found or aims at.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/job.h"

static int64_t stamp(const char *text)
{
	json_t *rec = json_pack("{s:s}", "t", text);
	int64_t us = job_stamp_us(rec, "t");

	json_decref(rec);
	return us;
}

static void test_stamp_reads_what_job_timestamp_writes(void **state)
{
	char now[40];
	json_t *rec;

	(void)state;
	assert_int_equal(stamp("2026-11-24T20:30:00.123Z"),
	                 INT64_C(1795552200123000));
	assert_int_equal(stamp("1970-01-01T00:00:01.000Z"), INT64_C(1000000));
	job_timestamp(now, sizeof(now));
	rec = json_pack("{s:s}", "t", now);
	assert_true(job_stamp_us(rec, "t") > 0);
	json_decref(rec);
}

static void test_stamp_refuses_out_of_range_fields(void **state)
{
	json_t *rec = json_pack("{s:i, s:n}", "t", 1, "u");

	(void)state;
	/* found by fuzz_job: a year this large overflowed the microseconds
	 * (undefined behaviour; a nonsense latency in the metrics) */
	assert_int_equal(stamp("333053-11-2T10:4:020.862Z"), 0);
	assert_int_equal(stamp("2147483647-01-01T00:00:00.000Z"), 0);
	assert_int_equal(stamp("2026-11-24T20:30:00.2147483647Z"), 0);
	assert_int_equal(stamp("2026-13-24T20:30:00.123Z"), 0);
	assert_int_equal(stamp("2026-11-00T20:30:00.123Z"), 0);
	assert_int_equal(stamp("2026-11-24T24:30:00.123Z"), 0);
	assert_int_equal(stamp("2026-11-24T20:-1:00.123Z"), 0);
	assert_int_equal(stamp("2026-11-24T20:30:00.-12Z"), 0);
	assert_int_equal(stamp("1969-12-31T23:59:59.999Z"), 0);
	assert_int_equal(stamp("2026-11-24T20:30:00.123"), 0);
	assert_int_equal(stamp("2026-11-24T20:30:00.123Zjunk"), 0);
	assert_int_equal(stamp(""), 0);
	assert_int_equal(job_stamp_us(rec, "t"), 0);
	assert_int_equal(job_stamp_us(rec, "u"), 0);
	assert_int_equal(job_stamp_us(rec, "missing"), 0);
	json_decref(rec);
}

static void test_message_round_trip_and_refusals(void **state)
{
	static const char good[] =
	        "{\"id\":\"0123456789abcdef0123456789abcdef\","
	        "\"pipeline\":\"grayscale\",\"result\":\"out/ab\"}";
	static const char *const bad[] = {
	        "",
	        "[]",
	        "{\"id\":\"0123456789abcdef0123456789abcdef\",\"pipeline\":\"g\"}",
	        "{\"id\":\"0123456789ABCDEF0123456789abcdef\","
	        "\"pipeline\":\"g\",\"result\":\"out/ab\"}",
	        "{\"id\":\"0123456789abcdef0123456789abcdef\","
	        "\"pipeline\":\"g\",\"result\":\"orig/ab\"}",
	        "{\"id\":\"0123456789abcdef0123456789abcdef\",\"id\":\"x\","
	        "\"pipeline\":\"g\",\"result\":\"out/ab\"}",
	};
	struct job_msg m, back;
	char err[256];
	size_t len = 0;
	char *body;

	(void)state;
	assert_int_equal(
	        job_msg_decode(good, strlen(good), &m, err, sizeof(err)), 0);
	body = job_msg_encode(&m, &len);
	assert_non_null(body);
	assert_int_equal(job_msg_decode(body, len, &back, err, sizeof(err)), 0);
	assert_string_equal(back.id, m.id);
	assert_string_equal(back.pipeline, "grayscale");
	assert_string_equal(back.result, "out/ab");
	free(body);
	job_msg_clear(&back);
	job_msg_clear(&m);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(job_msg_decode(bad[i], strlen(bad[i]), &m, err,
		                                sizeof(err)),
		                 -EINVAL);
		assert_true(err[0]);
		assert_null(m.pipeline);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_stamp_reads_what_job_timestamp_writes),
	        cmocka_unit_test(test_stamp_refuses_out_of_range_fields),
	        cmocka_unit_test(test_message_round_trip_and_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
