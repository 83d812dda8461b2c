/*
 * libFuzzer harness: what core/node/job.c reads from outside the process,
 * a job message off the queue (job_msg_decode) and a record from storage
 * (job_stamp_us, job_result_key_hex, job_record_set_status), plus the
 * storage key check every key from a message goes through.
 *
 * Beyond not crashing: a decoded message has a valid id and an out/ key,
 * and encodes to a message that decodes to the same fields; a key that
 * imgnode_key_valid accepts has no empty, "." or ".." component and only
 * the allowed bytes; a result key made from a record is out/ and 64 hex
 * digits, and valid.
 */
#include <errno.h>
#include <imgnode/plugin.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "node/job.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The rule of imgnode_key_valid written out another way. */
static bool key_safe(const char *key)
{
	size_t n = strlen(key), start = 0;

	if (!n || n > IMGNODE_KEY_MAX) /* 1..1024 bytes */
		return false;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && key[i] != '/') {
			if (!strchr("abcdefghijklmnopqrstuvwxyz"
			            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
			            key[i]))
				return false;
			continue;
		}
		if (i == start || strspn(key + start, ".") >= i - start)
			return false; /* empty, or only dots */
		start = i + 1;
	}
	return true;
}

static void check_message(const uint8_t *data, size_t size)
{
	struct job_msg m, back;
	char err[256] = "";
	size_t len = 0;
	char *body;
	int ret;

	ret = job_msg_decode(data, size, &m, err, sizeof(err));
	if (ret) {
		FUZZ_CHECK(ret == -EINVAL || ret == -ENOMEM, "returned %d",
		           ret);
		FUZZ_CHECK(err[0], "refused without a reason");
		FUZZ_CHECK(!m.pipeline && !m.result, "refused but filled");
		return;
	}
	FUZZ_CHECK(job_id_valid(m.id), "id %s", m.id);
	FUZZ_CHECK(strncmp(m.result, "out/", 4) == 0, "result %s", m.result);
	FUZZ_CHECK(imgnode_key_valid(m.result) == key_safe(m.result),
	           "imgnode_key_valid(\"%s\") is %d", m.result,
	           imgnode_key_valid(m.result));
	body = job_msg_encode(&m, &len);
	FUZZ_CHECK(body, "encode failed");
	ret = job_msg_decode(body, len, &back, err, sizeof(err));
	FUZZ_CHECK(ret == 0, "re-decoding \"%s\": %s", body, err);
	FUZZ_CHECK(strcmp(m.id, back.id) == 0 &&
	                   strcmp(m.pipeline, back.pipeline) == 0 &&
	                   strcmp(m.result, back.result) == 0,
	           "\"%s\" decodes to other fields", body);
	free(body);
	job_msg_clear(&back);
	job_msg_clear(&m);
}

static void check_record(const uint8_t *data, size_t size)
{
	json_t *rec = json_loadb((const char *)data, size, 0, NULL);
	const char *sha, *pipeline;
	char key[JOB_KEY_MAX];

	if (!json_is_object(rec)) {
		json_decref(rec);
		return;
	}
	(void)job_stamp_us(rec, "created");
	(void)job_stamp_us(rec, "started");
	sha = json_string_value(
	        json_object_get(json_object_get(rec, "input"), "sha256"));
	pipeline = json_string_value(json_object_get(rec, "pipeline"));
	if (job_result_key_hex(sha, pipeline ? pipeline : "", "thumbnail=1.0",
	                       key, sizeof(key)) == 0) {
		FUZZ_CHECK(strlen(key) == 68 && strncmp(key, "out/", 4) == 0 &&
		                   strspn(key + 4, "0123456789abcdef") == 64,
		           "result key %s", key);
		FUZZ_CHECK(imgnode_key_valid(key), "result key %s", key);
	}
	job_record_set_status(rec, JOB_FAILED, "fuzz");
	FUZZ_CHECK(job_stamp_us(rec, "finished") > 0,
	           "a fresh finished stamp reads as 0");
	json_decref(rec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text;

	if (size > JOB_RECORD_MAX)
		return 0;
	check_message(data, size);
	check_record(data, size);
	text = malloc(size + 1);
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (job_id_valid(text))
		FUZZ_CHECK(strlen(text) == JOB_ID_LEN &&
		                   strspn(text, "0123456789abcdef") ==
		                           JOB_ID_LEN,
		           "id \"%s\"", text);
	FUZZ_CHECK(imgnode_key_valid(text) == key_safe(text),
	           "imgnode_key_valid(\"%s\") is %d", text,
	           imgnode_key_valid(text));
	free(text);
	return 0;
}
