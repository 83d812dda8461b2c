/*
 * The ingress's answers: JSON bodies, errors as {"error": "...", "detail":
 * "..."} (the detail in ASCII; "limit", the config key, on a 429;
 * Retry-After on a 503, a 507 and a 429), a job's answer from its record, and a
 * result, sent from storage a piece at a time as the client takes it,
 * never read whole. Every answer goes through ingress_respond, which
 * counts it.
 *
 * Calls no other file of the ingress but the connections'
 * (ingress_conn.c) and the storage calls (ingress_io.c).
 */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../log.h"
#include "ingress.h"
#include "metrics.h"
#include "renditions.h"
#include "startup.h"

#define COMPONENT "ingress"
#define RETRY_AFTER "5" /* seconds, on 503, 507 and 429 */
#define RESULT_MAX ((size_t)1 << 32)
#define JSON_TYPE "application/json"
#define STREAM_BLOCK (128 * 1024) /* a result is sent in pieces of this */

void ingress_ascii_only(char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			*s = '?';
}

/* The answer when no other could be made (out of memory, or a JSON
 * value jansson refused): still an answer, never a dropped connection. */
static struct MHD_Response *fallback_response(unsigned *status, size_t *len)
{
	static const char body[] =
	        "{\"error\":\"internal error\",\"detail\":\"unable to make the answer\"}\n";
	struct MHD_Response *resp = MHD_create_response_from_buffer(
	        sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);

	if (resp)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		                        JSON_TYPE);
	*status = MHD_HTTP_INTERNAL_SERVER_ERROR;
	*len = sizeof(body) - 1;
	return resp;
}

enum MHD_Result ingress_respond(struct request *r, unsigned status,
                                struct MHD_Response *resp, size_t len)
{
	enum MHD_Result ret;

	if (!resp) {
		log_error(
		        COMPONENT,
		        "unable to make the answer method=%s path=%s status=%u",
		        r->method, r->path, status);
		resp = fallback_response(&status, &len);
	}
	if (!resp)
		return MHD_NO;
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE ||
	    status == MHD_HTTP_TOO_MANY_REQUESTS ||
	    status == MHD_HTTP_INSUFFICIENT_STORAGE)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER,
		                        RETRY_AFTER);
	if (atomic_load(&r->in->quiescing))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
		                        "close");
	MHD_add_response_header(resp, "X-Request-ID", r->request_id);
	if (status >= 400) /* an error is of its moment: never cached */
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
		                        "no-store");
	if (r->idem_replayed) /* the job of an earlier request, same key */
		MHD_add_response_header(resp, "Idempotent-Replayed", "true");
	if (r->vary_accept) /* the pipeline had auto: the format followed Accept */
		MHD_add_response_header(resp, "Vary", "Accept");
	ingress_conn_answering(r);
	ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	r->status = status;
	r->out_bytes = len;
	r->phase = PHASE_ANSWERED;
	atomic_fetch_add(&r->in->metrics->http[status / 100 % 6], 1);
	return ret;
}

struct MHD_Response *ingress_json_response(json_t *j, size_t *len)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	struct MHD_Response *resp;
	char *grown;
	size_t n;

	json_decref(j);
	if (!text)
		return NULL;
	n = strlen(text);
	grown = realloc(text, n + 2);
	if (!grown) {
		free(text);
		return NULL;
	}
	memcpy(grown + n, "\n", 2);
	*len = n + 1;
	resp = MHD_create_response_from_buffer(n + 1, grown,
	                                       MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(grown);
		return NULL;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, JSON_TYPE);
	return resp;
}

json_t *ingress_error_json(const char *error, const char *detail)
{
	return json_pack("{s:s, s:s}", "error", error, "detail", detail);
}

enum MHD_Result ingress_answer_json(struct request *r, unsigned status,
                                    json_t *j)
{
	size_t len = 0;
	struct MHD_Response *resp = ingress_json_response(j, &len);

	return ingress_respond(r, status, resp, len);
}

int ingress_fail(struct request *r, unsigned status, const char *error,
                 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->fail_detail, sizeof(r->fail_detail), fmt, ap);
	va_end(ap);
	ingress_ascii_only(r->fail_detail);
	r->fail_status = status;
	r->fail_error = error;
	return -1;
}

enum MHD_Result ingress_answer_fail_with(struct request *r, const char *header,
                                         const char *value)
{
	json_t *j = ingress_error_json(r->fail_error, r->fail_detail);
	struct MHD_Response *resp;
	size_t len = 0;

	if (j && r->fail_limit)
		json_object_set_new(j, "limit", json_string(r->fail_limit));
	resp = ingress_json_response(j, &len);
	if (resp && header)
		MHD_add_response_header(resp, header, value);
	return ingress_respond(r, r->fail_status, resp, len);
}

enum MHD_Result ingress_answer_fail(struct request *r)
{
	return ingress_answer_fail_with(r, NULL, NULL);
}

void ingress_job_headers(struct MHD_Response *resp, const char *id,
                         bool location)
{
	char where[64];

	MHD_add_response_header(resp, "X-Imgnode-Job", id);
	if (location) {
		snprintf(where, sizeof(where), "/v1/jobs/%s", id);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, where);
	}
}

enum MHD_Result ingress_answer_accepted(struct request *r, const char *status)
{
	size_t len = 0;
	struct MHD_Response *resp;

	if (r->route == ROUTE_VARIANT) { /* an image is not a job: no 202 */
		resp = ingress_json_response(
		        json_pack(
		                "{s:s, s:s, s:s, s:s}", "error", "not ready",
		                "detail",
		                "the variant is being made; ask again after Retry-After ([ingress] variant_wait passed)",
		                "id", r->id, "status", status),
		        &len);
		if (resp)
			ingress_job_headers(resp, r->id, false);
		return ingress_respond(r, MHD_HTTP_SERVICE_UNAVAILABLE, resp,
		                       len);
	}
	resp = ingress_json_response(
	        json_pack("{s:s, s:s}", "id", r->id, "status", status), &len);

	if (resp)
		ingress_job_headers(resp, r->id, true);
	return ingress_respond(r, MHD_HTTP_ACCEPTED, resp, len);
}

/* A result sent a piece at a time, straight from storage. */
struct result_stream {
	struct ingress *in;
	uint64_t size;
	char key[IMGNODE_KEY_MAX + 1];
};

/*
 * libmicrohttpd asks for the next piece (on the connection's thread, when
 * the client has taken the last one): at most max bytes at pos, read by
 * the storage's executor within dependency_wait. A store that fails, is
 * down or too slow, or an object that shrank ends the answer early: the
 * client sees a connection closed short of Content-Length.
 */
static ssize_t read_result(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct result_stream *rs = cls;
	struct ingress *in = rs->in;
	size_t got = 0;
	int ret;

	if (pos >= rs->size)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (max > rs->size - pos)
		max = (size_t)(rs->size - pos);
	ret = ingress_io_read(in, rs->key, pos, buf, max, &got);
	if (ret || !got) {
		/* an outage is logged once, by the breaker */
		log_msg(ret == -ECANCELED || ret == -ETIME ? LOG_DEBUG
		                                           : LOG_WARN,
		        COMPONENT,
		        "result %s cut short at byte %llu of %llu: %s", rs->key,
		        (unsigned long long)pos, (unsigned long long)rs->size,
		        ret ? strerror(-ret) : "it shrank");
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	return (ssize_t)got;
}

/*
 * A response for the result res describes (taken: its buffer is the
 * response's now), which reads it as the client takes it, never whole
 * (STREAM_BLOCK bytes at a time), or, from a storage plugin older than
 * ABI 1.2, the one read whole. NULL if out of memory.
 */
static struct MHD_Response *
object_response(struct ingress *in, struct ingress_result *res, size_t *len)
{
	struct MHD_Response *resp;
	struct result_stream *rs;

	if (res->buf) {
		resp = MHD_create_response_from_buffer(res->len, res->buf,
		                                       MHD_RESPMEM_MUST_FREE);
		if (resp) {
			res->buf = NULL;
			*len = res->len;
		}
		return resp;
	}
	rs = calloc(1, sizeof(*rs));
	if (!rs)
		return NULL;
	rs->in = in;
	rs->size = res->size;
	snprintf(rs->key, sizeof(rs->key), "%s", res->key);
	resp = MHD_create_response_from_callback(res->size, STREAM_BLOCK,
	                                         read_result, rs, free);
	if (!resp) {
		free(rs);
		return NULL;
	}
	*len = (size_t)res->size;
	return resp;
}

/* The result of a done job rec as a 200 response, or NULL with
 * *ret = -errno. */
static struct MHD_Response *result_response(struct request *r, json_t *rec,
                                            struct ingress_result *res,
                                            size_t *len, int *ret)
{
	json_t *output = json_object_get(rec, "output");
	const char *mime = json_string_value(json_object_get(output, "mime"));
	struct MHD_Response *resp;

	*ret = res->ret;
	if (*ret)
		return NULL;
	resp = object_response(r->in, res, len);
	if (!resp) {
		*ret = -ENOMEM;
		return NULL;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        mime ? mime : "application/octet-stream");
	ingress_job_headers(resp, r->id, false);
	ingress_cache_headers(r, resp, res, false);
	return resp;
}

/* A waited-for job is accepted, so a storage failure then is a 202,
 * never a 503. */
static enum MHD_Result answer_job(struct request *r, json_t *rec,
                                  struct ingress_result *res, bool waited)
{
	const char *status = json_string_value(json_object_get(rec, "status"));
	enum job_status st = job_status_parse(status);
	struct MHD_Response *resp;
	size_t len = 0;
	json_t *j;
	int ret;

	if (!status)
		return ingress_fail_now(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
		                        "bad record", "job %s has no status",
		                        r->id);
	/* several outputs: the record lists them (renditions.h) */
	if (st == JOB_DONE && r->route != ROUTE_RESULT &&
	    renditions_count(rec)) {
		resp = ingress_json_response(json_incref(rec), &len);
		if (resp)
			ingress_job_headers(resp, r->id, false);
		return ingress_respond(r, MHD_HTTP_OK, resp, len);
	}
	if (st == JOB_DONE) {
		if (ingress_cache_not_modified(r, res))
			return ingress_cache_answer_not_modified(r, res);
		resp = result_response(r, rec, res, &len, &ret);
		if (resp)
			return ingress_respond(r, MHD_HTTP_OK, resp, len);
		if (waited)
			return ingress_answer_accepted(r, status);
		if (ret == -ENOENT || ret == -EBADMSG)
			return ingress_fail_now(
			        r, MHD_HTTP_INTERNAL_SERVER_ERROR,
			        "result missing",
			        "job %s is done but its result is gone", r->id);
		return ingress_unavailable(r, &r->in->storage_ex, ret,
		                           "unable to read the result");
	}
	if (st == JOB_FAILED) {
		const char *why =
		        json_string_value(json_object_get(rec, "error"));
		j = ingress_error_json("job failed", why ? why : "unknown");
		json_object_set_new(j, "id", json_string(r->id));
		resp = ingress_json_response(j, &len);
		if (resp)
			ingress_job_headers(resp, r->id, false);
		return ingress_respond(r, MHD_HTTP_UNPROCESSABLE_CONTENT, resp,
		                       len);
	}
	if (waited)
		return ingress_answer_accepted(r, status);
	j = json_pack("{s:s, s:s, s:s, s:s}", "error", "not done", "detail",
	              st == JOB_RUNNING ? "the job is running"
	                                : "the job is queued",
	              "id", r->id, "status", status);
	resp = ingress_json_response(j, &len);
	if (resp)
		ingress_job_headers(resp, r->id, true);
	return ingress_respond(r, MHD_HTTP_CONFLICT, resp, len);
}

/* After a wait, the record read: answers from it (a job accepted, so a
 * storage failure is a 202, never a 503). */
static enum MHD_Result answer_from_record(struct request *r)
{
	struct ingress_result res = {.ret = -ENOENT};
	enum MHD_Result answer;
	json_t *rec = NULL;
	int ret;

	if (r->io_op)
		rec = ingress_io_record_take(r->io_op, &ret, &res);
	ingress_io_free(r->io_op);
	r->io_op = NULL;
	if (!rec)
		return ingress_answer_accepted(r, job_status_name(JOB_QUEUED));
	answer = answer_job(r, rec, &res, true);
	ingress_result_free(&res);
	json_decref(rec);
	return answer;
}

enum MHD_Result ingress_answer_job(struct request *r, json_t *rec,
                                   struct ingress_result *res, bool waited)
{
	enum MHD_Result answer = answer_job(r, rec, res, waited);

	ingress_result_free(res);
	return answer;
}

enum MHD_Result ingress_answer_from_record(struct request *r)
{
	return ingress_io_begin(r, &r->in->storage_ex,
	                        ingress_io_record_op(r->in, r->id, true),
	                        answer_from_record);
}

int ingress_fail_unavailable(struct request *r, struct executor *ex, int ret,
                             const char *what)
{
	char why[BREAKER_WHY_MAX];
	const char *error = ex == &r->in->storage_ex ? "storage unavailable"
	                                             : "transport unavailable";

	/* a full cluster answers at once (writes are FULL_TRY): no outage,
	 * but no use retrying before space is freed */
	if (ex == &r->in->storage_ex && ret == -ENOSPC)
		return ingress_fail(r, MHD_HTTP_INSUFFICIENT_STORAGE,
		                    "storage full", "%s: %s", what,
		                    strerror(ENOSPC));
	if (!executor_up(ex, why, sizeof(why), NULL))
		return ingress_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, error,
		                    "%s", why);
	return ingress_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, error, "%s: %s",
	                    what,
	                    ret == -ETIME       ? "no answer in time"
	                    : ret == -ECANCELED ? "unavailable"
	                                        : strerror(-ret));
}

enum MHD_Result ingress_unavailable(struct request *r, struct executor *ex,
                                    int ret, const char *what)
{
	ingress_fail_unavailable(r, ex, ret, what);
	return ingress_answer_fail(r);
}
