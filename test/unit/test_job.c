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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/job.h"
#include "node/pipeline.h"

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

/* An image's id is its content's: the same bytes, the same id, a valid one. */
static void test_image_id_is_the_content_hash_prefix(void **state)
{
	unsigned char sha[32];
	char id[JOB_ID_LEN + 1], key[64];

	(void)state;
	for (int i = 0; i < 32; i++)
		sha[i] = (unsigned char)(0xa0 + i);
	job_image_id(sha, id);
	assert_string_equal(id, "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
	assert_true(job_id_valid(id));
	job_image_key(id, key, sizeof(key));
	assert_string_equal(key, "img/a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
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

/* Every status names itself and back; a missing or other one is told. */
static void test_status_names_round_trip(void **state)
{
	(void)state;
	for (int s = JOB_QUEUED; s <= JOB_FAILED; s++)
		assert_int_equal(job_status_parse(job_status_name(s)), s);
	assert_string_equal(job_status_name(JOB_DONE), "done");
	assert_null(job_status_name(JOB_STATUS_UNKNOWN));
	assert_int_equal(job_status_parse(NULL), JOB_STATUS_MISSING);
	assert_int_equal(job_status_parse("Done"), JOB_STATUS_UNKNOWN);
	assert_true(job_status_final(JOB_DONE));
	assert_true(job_status_final(JOB_FAILED));
	assert_false(job_status_final(JOB_RUNNING));
	assert_false(job_status_final(JOB_STATUS_UNKNOWN));
}

/* What a worker or the reaper sends is what the ingress reads. */
static void test_reply_round_trip_and_refusals(void **state)
{
	const char id[] = "0123456789abcdef0123456789abcdef";
	char body[JOB_REPLY_MAX];
	struct job_reply r;
	int n;

	(void)state;
	n = job_reply_encode(id, JOB_FAILED, body, sizeof(body));
	assert_true(n > 0);
	assert_string_equal(body,
	                    "{\"id\":\"0123456789abcdef0123456789abcdef\","
	                    "\"status\":\"failed\"}");
	assert_int_equal(job_reply_decode(body, (size_t)n, &r), 0);
	assert_string_equal(r.id, id);
	assert_int_equal(r.status, JOB_FAILED);
	assert_int_equal(job_reply_encode(id, JOB_DONE, body, 20), -ENOSPC);
	/* the ingress needs only the id; a status it does not know is told */
	snprintf(body, sizeof(body), "{\"id\":\"%s\"}", id);
	assert_int_equal(job_reply_decode(body, strlen(body), &r), 0);
	assert_int_equal(r.status, JOB_STATUS_MISSING);
	assert_int_equal(job_reply_decode("{\"id\":\"xyz\"}", 13, &r), -EINVAL);
	assert_int_equal(job_reply_decode("not json", 8, &r), -EINVAL);
	assert_int_equal(job_reply_decode("{}", 2, &r), -EINVAL);
}

/*
 * A pipeline of the most steps, whose filters have long versions (a
 * versions text well past 1024 bytes), built by hand: versions[i] and
 * names[i] back it.
 */
struct long_pipeline {
	struct pipeline pl;
	struct pipeline_step steps[PIPELINE_MAX_STEPS];
	char names[PIPELINE_MAX_STEPS][16];
	char versions[PIPELINE_MAX_STEPS][48];
	char canonical[PIPELINE_MAX_LEN + 1];
};

static void long_pipeline_init(struct long_pipeline *lp)
{
	size_t off = 0;

	memset(lp, 0, sizeof(*lp));
	for (size_t i = 0; i < PIPELINE_MAX_STEPS; i++) {
		snprintf(lp->names[i], sizeof(lp->names[i]), "filter_%02zu", i);
		snprintf(lp->versions[i], sizeof(lp->versions[i]),
		         "2.14.%zu-hotfix.20261203+build.778%zu", i, i);
		lp->steps[i].name = lp->names[i];
		lp->steps[i].version = lp->versions[i];
		off += (size_t)snprintf(lp->canonical + off,
		                        sizeof(lp->canonical) - off, "%s%s",
		                        i ? "|" : "", lp->names[i]);
	}
	lp->pl.steps = lp->steps;
	lp->pl.n = PIPELINE_MAX_STEPS;
	lp->pl.canonical = lp->canonical;
}

/* The worker's derivation: from the record the ingress wrote. */
static void worker_key(const struct long_pipeline *lp, json_t *rec, char *key,
                       size_t len)
{
	json_t *input = json_object_get(rec, "input");

	assert_int_equal(
	        job_result_key_of(
	                json_string_value(json_object_get(input, "sha256")),
	                &lp->pl, NULL,
	                json_string_value(json_object_get(input, "format")),
	                false, key, len),
	        0);
}

/*
 * The ingress and the worker derive the same result key for a long
 * pipeline (they sized the versions text 4096 and 1024 bytes once, and
 * parted past 1024), and a new version of its last filter, far past 1024
 * bytes in, gives a new key.
 */
static void test_ingress_and_worker_keys_agree_on_long_pipelines(void **state)
{
	static struct long_pipeline lp;
	unsigned char sha[32];
	char hex[65], ingress[JOB_KEY_MAX], worker[JOB_KEY_MAX],
	        swapped[JOB_KEY_MAX], text[JOB_VERSIONS_MAX];
	size_t need;
	json_t *rec;

	(void)state;
	long_pipeline_init(&lp);
	for (size_t i = 0; i < sizeof(sha); i++)
		sha[i] = (unsigned char)(i * 7 + 1);
	need = job_versions(&lp.pl, NULL, NULL, false, text, sizeof(text));
	assert_true(need > 1024);
	assert_int_equal(strlen(text), need);
	assert_non_null(strstr(text, "filter_31=2.14.31-hotfix"));

	/* the ingress: from the upload's digest, as accept_job does */
	job_sha256_hex(sha, hex);
	assert_int_equal(job_result_key_of(hex, &lp.pl, NULL, "jpeg", false,
	                                   ingress, sizeof(ingress)),
	                 0);
	/* the worker: from the record the ingress stored */
	rec = json_pack("{s:{s:s, s:s}}", "input", "sha256", hex, "format",
	                "jpeg");
	assert_non_null(rec);
	worker_key(&lp, rec, worker, sizeof(worker));
	assert_string_equal(ingress, worker);
	assert_int_equal(strncmp(worker, "out/", 4), 0);
	assert_int_equal(strlen(worker), 4 + 64);

	/* a hot swap of the last filter: another key on both sides */
	snprintf(lp.versions[PIPELINE_MAX_STEPS - 1], sizeof(lp.versions[0]),
	         "2.15.0");
	worker_key(&lp, rec, swapped, sizeof(swapped));
	assert_string_not_equal(swapped, worker);
	json_decref(rec);
}

/* A versions text past JOB_VERSIONS_MAX is hashed whole, never cut. */
static void test_versions_past_the_buffer_are_never_cut(void **state)
{
	static struct long_pipeline lp;
	static char big[PIPELINE_MAX_STEPS][JOB_VERSIONS_MAX / 8];
	char hex[65], a[JOB_KEY_MAX], b[JOB_KEY_MAX];
	size_t need;

	(void)state;
	long_pipeline_init(&lp);
	memset(hex, 'a', 64);
	hex[64] = '\0';
	for (size_t i = 0; i < PIPELINE_MAX_STEPS; i++) {
		memset(big[i], 'v', sizeof(big[i]) - 1);
		big[i][sizeof(big[i]) - 1] = '\0';
		lp.steps[i].version = big[i];
	}
	need = job_versions(&lp.pl, NULL, NULL, true, NULL, 0);
	assert_true(need > JOB_VERSIONS_MAX);
	assert_int_equal(
	        job_result_key_of(hex, &lp.pl, NULL, NULL, true, a, sizeof(a)),
	        0);
	big[PIPELINE_MAX_STEPS - 1][0] = 'w';
	assert_int_equal(
	        job_result_key_of(hex, &lp.pl, NULL, NULL, true, b, sizeof(b)),
	        0);
	assert_string_not_equal(a, b);
	assert_int_equal(job_result_key_of("nothex", &lp.pl, NULL, NULL, true,
	                                   a, sizeof(a)),
	                 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_stamp_reads_what_job_timestamp_writes),
	        cmocka_unit_test(test_stamp_refuses_out_of_range_fields),
	        cmocka_unit_test(test_message_round_trip_and_refusals),
	        cmocka_unit_test(test_image_id_is_the_content_hash_prefix),
	        cmocka_unit_test(test_status_names_round_trip),
	        cmocka_unit_test(test_reply_round_trip_and_refusals),
	        cmocka_unit_test(
	                test_ingress_and_worker_keys_agree_on_long_pipelines),
	        cmocka_unit_test(test_versions_past_the_buffer_are_never_cut),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
