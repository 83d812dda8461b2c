/*
 * The logger (log.c): text and JSON lines, the key=value pairs as JSON
 * fields, the context a worker adds, journald's priority prefixes; and the
 * request id a job message carries (job.c). Each case logs in a child whose
 * stderr is a temporary file, since the logger decides once per process
 * whether stderr is the journal.
 */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "node/job.h"

enum journal { NO_JOURNAL, JOURNAL_IS_STDERR, JOURNAL_ELSEWHERE };

/* What fn logs in a child with format and journal, into buf; lines. */
static size_t logged(int format, enum journal journal, void (*fn)(void),
                     char *buf, size_t len)
{
	char path[] = "/tmp/test_log.XXXXXX";
	int fd = mkstemp(path), status;
	size_t lines = 0;
	ssize_t n;
	pid_t pid;

	assert_true(fd >= 0);
	unlink(path);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct stat st;
		char env[64];

		fstat(fd, &st);
		snprintf(env, sizeof(env), "%llu:%llu",
		         (unsigned long long)st.st_dev,
		         (unsigned long long)st.st_ino +
		                 (journal == JOURNAL_ELSEWHERE));
		if (journal == NO_JOURNAL)
			unsetenv("JOURNAL_STREAM");
		else
			setenv("JOURNAL_STREAM", env, 1);
		dup2(fd, STDERR_FILENO);
		log_set_format(format);
		log_set_level(LOG_DEBUG);
		log_set_process("worker.3");
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	n = pread(fd, buf, len - 1, 0);
	close(fd);
	assert_true(n >= 0);
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		lines += buf[i] == '\n';
	return lines;
}

static void four_lines(void)
{
	log_error("worker", "job failed id=%s reason=\"%s\"", "ab12",
	          "bad \"x\" here");
	log_warn("node", "plain text, no pairs");
	log_set_context("request_id=r-1");
	log_info("worker", "job done id=%s level=%d", "cd34", 3);
	log_set_context(NULL);
	log_debug("ingress", "weird tail x= =y");
}

static void test_text(void **state)
{
	char buf[8192];

	(void)state;
	assert_int_equal(logged(LOG_FORMAT_TEXT, NO_JOURNAL, four_lines, buf,
	                        sizeof(buf)),
	                 4);
	assert_non_null(strstr(buf, " worker.3["));
	assert_non_null(strstr(
	        buf,
	        "] info worker: job done id=cd34 level=3 request_id=r-1\n"));
	assert_non_null(strstr(buf, "] debug ingress: weird tail x= =y\n"));
	assert_true(buf[0] >= '2' && buf[0] <= '9'); /* a timestamp */
	assert_null(strchr(buf, '<'));
}

static void test_journal_prefixes(void **state)
{
	char buf[8192], *line;
	const char *want[] = {"<3>", "<4>", "<6>", "<7>"};
	int i = 0;

	(void)state;
	assert_int_equal(logged(LOG_FORMAT_TEXT, JOURNAL_IS_STDERR, four_lines,
	                        buf, sizeof(buf)),
	                 4);
	for (char *p = buf; *p; p++)
		if (*p == '\n')
			*p = '\0';
	line = buf;
	for (i = 0; i < 4; i++) {
		assert_memory_equal(line, want[i], 3);
		assert_memory_equal(line + 3, "worker.3[",
		                    9); /* no timestamp */
		line += strlen(line) + 1;
	}
	/* a JOURNAL_STREAM of another file: stderr is not the journal */
	assert_int_equal(logged(LOG_FORMAT_TEXT, JOURNAL_ELSEWHERE, four_lines,
	                        buf, sizeof(buf)),
	                 4);
	assert_null(strchr(buf, '<'));
}

static void test_json(void **state)
{
	char buf[8192], *line, *nl;
	json_t *o[4];
	int i;

	(void)state;
	assert_int_equal(logged(LOG_FORMAT_JSON, NO_JOURNAL, four_lines, buf,
	                        sizeof(buf)),
	                 4);
	line = buf;
	for (i = 0; i < 4; i++) {
		json_error_t err;

		nl = strchr(line, '\n');
		assert_non_null(nl);
		*nl = '\0';
		o[i] = json_loads(line, 0, &err);
		if (!o[i])
			fail_msg("not JSON: %s: %s", line, err.text);
		assert_non_null(json_object_get(o[i], "ts"));
		assert_string_equal(
		        json_string_value(json_object_get(o[i], "process")),
		        "worker.3");
		assert_int_equal(
		        json_integer_value(json_object_get(o[i], "pid")) > 0,
		        1);
		line = nl + 1;
	}
	assert_string_equal(json_string_value(json_object_get(o[0], "level")),
	                    "error");
	assert_string_equal(json_string_value(json_object_get(o[0], "msg")),
	                    "job failed id=ab12 reason=\"bad \"x\" here\"");
	assert_string_equal(
	        json_string_value(json_object_get(o[1], "component")), "node");
	assert_string_equal(json_string_value(json_object_get(o[1], "msg")),
	                    "plain text, no pairs");
	assert_string_equal(json_string_value(json_object_get(o[2], "msg")),
	                    "job done");
	assert_string_equal(json_string_value(json_object_get(o[2], "id")),
	                    "cd34");
	assert_string_equal(
	        json_string_value(json_object_get(o[2], "field_level")), "3");
	assert_string_equal(json_string_value(json_object_get(o[2], "level")),
	                    "info");
	assert_string_equal(
	        json_string_value(json_object_get(o[2], "request_id")), "r-1");
	assert_string_equal(json_string_value(json_object_get(o[3], "msg")),
	                    "weird tail x= =y");
	for (i = 0; i < 4; i++)
		json_decref(o[i]);
}

static void test_job_msg_request_id(void **state)
{
	struct job_msg m = {.id = "0123456789abcdef0123456789abcdef",
	                    .pipeline = "png",
	                    .result = "out/x",
	                    .request_id = "abc-1"},
	               back;
	char err[256], *body;
	size_t len = 0;

	(void)state;
	body = job_msg_encode(&m, &len);
	assert_non_null(body);
	assert_int_equal(job_msg_decode(body, len, &back, err, sizeof(err)), 0);
	assert_string_equal(back.request_id, "abc-1");
	job_msg_clear(&back);
	free(body);
	/* an older message has none; one unfit for logs is dropped */
	body = "{\"id\":\"0123456789abcdef0123456789abcdef\",\"pipeline\":\"png\","
	       "\"result\":\"out/x\",\"request_id\":\"a b\"}";
	assert_int_equal(
	        job_msg_decode(body, strlen(body), &back, err, sizeof(err)), 0);
	assert_null(back.request_id);
	job_msg_clear(&back);

	assert_true(job_request_id_valid("x"));
	assert_false(job_request_id_valid(""));
	assert_false(job_request_id_valid(NULL));
	assert_false(job_request_id_valid("a\"b"));
	assert_false(job_request_id_valid("a\\b"));
	assert_false(job_request_id_valid("a\tb"));
	assert_false(job_request_id_valid("\x80"));
	{
		char s[JOB_REQUEST_ID_MAX + 2];

		memset(s, 'y', sizeof(s));
		s[JOB_REQUEST_ID_MAX] = '\0';
		assert_true(job_request_id_valid(s));
		s[JOB_REQUEST_ID_MAX] = 'y';
		s[JOB_REQUEST_ID_MAX + 1] = '\0';
		assert_false(job_request_id_valid(s));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_text),
	        cmocka_unit_test(test_journal_prefixes),
	        cmocka_unit_test(test_json),
	        cmocka_unit_test(test_job_msg_request_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
