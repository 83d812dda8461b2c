/*
 * The keys of images kept as a resource and of their variants
 * (core/node/job.c): a variant's job id from its result key, and where a
 * job's original is, which the worker and the stuck sweep read from
 * records that come from storage and may hold anything.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "node/job.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_variant_id_is_the_result_key_prefix(void **state)
{
	char id[JOB_ID_LEN + 1];

	(void)state;
	assert_int_equal(job_variant_id("out/" HEX64, id), 0);
	assert_string_equal(id, "0123456789abcdef0123456789abcdef");
	assert_true(job_id_valid(id));
	assert_int_equal(job_variant_id("orig/" HEX64, id), -EINVAL);
	assert_int_equal(job_variant_id("out/" HEX64 "0", id), -EINVAL);
	assert_int_equal(job_variant_id("out/0123", id), -EINVAL);
	assert_int_equal(job_variant_id("out/" HEX64 ".meta", id), -EINVAL);
	/* upper case is no key the node makes */
	assert_int_equal(job_variant_id("out/ABCDEF6789abcdef0123456789abcdef"
	                                "0123456789abcdef0123456789abcdef",
	                                id),
	                 -EINVAL);
}

static void test_input_key_of_variants_and_jobs(void **state)
{
	const char *job = "ffffffffffffffffffffffffffffffff";
	char key[JOB_KEY_MAX];
	json_t *rec;

	(void)state;
	rec = json_pack("{s:s}", "image", "0123456789abcdef0123456789abcdef");
	job_input_key(rec, job, key, sizeof(key));
	assert_string_equal(key, "img/0123456789abcdef0123456789abcdef");
	json_decref(rec);
	/* no image, or one that is no id (a key could climb out): orig/ID */
	job_input_key(NULL, job, key, sizeof(key));
	assert_string_equal(key, "orig/ffffffffffffffffffffffffffffffff");
	rec = json_pack("{s:s}", "image", "../../etc/passwd");
	job_input_key(rec, job, key, sizeof(key));
	assert_string_equal(key, "orig/ffffffffffffffffffffffffffffffff");
	json_decref(rec);
	rec = json_pack("{s:i}", "image", 7);
	job_input_key(rec, job, key, sizeof(key));
	assert_string_equal(key, "orig/ffffffffffffffffffffffffffffffff");
	json_decref(rec);
}

static void test_image_keys(void **state)
{
	char key[JOB_KEY_MAX];

	(void)state;
	job_image_meta_key("0123456789abcdef0123456789abcdef", key,
	                   sizeof(key));
	assert_string_equal(key, "imgs/0123456789abcdef0123456789abcdef");
	job_variant_mark_key("0123456789abcdef0123456789abcdef",
	                     "ffffffffffffffffffffffffffffffff", key,
	                     sizeof(key));
	assert_string_equal(key, "imgv/0123456789abcdef0123456789abcdef/"
	                         "ffffffffffffffffffffffffffffffff");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_variant_id_is_the_result_key_prefix),
	        cmocka_unit_test(test_input_key_of_variants_and_jobs),
	        cmocka_unit_test(test_image_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
