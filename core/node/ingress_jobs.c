/*
 * GET /v1/jobs/ID (the job's record) and GET /v1/jobs/ID/result (the
 * result image, or why there is none yet; .../result/K: output K of a
 * renditions job, renditions.h), for a request that may read
 * the job (auth.c); a job it may not read is answered as if there were
 * no such job.
 */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <string.h>

#include "ingress.h"
#include "renditions.h"

/* The record read (and the result's, for .../result): the answer. */
static enum MHD_Result answer(struct request *r)
{
	struct ingress_result res = {.ret = -ENOENT};
	struct MHD_Response *resp;
	size_t len = 0;
	json_t *rec = NULL;
	int ret = r->io_ret;

	if (r->io_op)
		rec = ingress_io_record_take(r->io_op, &ret, &res);
	ingress_io_free(r->io_op);
	r->io_op = NULL;
	if (!rec && ret == -ENOENT)
		return ingress_fail_now(r, MHD_HTTP_NOT_FOUND, "unknown job",
		                        "no job %s", r->id);
	if (!rec && ret == -EBADMSG)
		return ingress_fail_now(
		        r, MHD_HTTP_INTERNAL_SERVER_ERROR, "bad record",
		        "the record of job %s is not a JSON object", r->id);
	if (!rec)
		return ingress_unavailable(r, &r->in->storage_ex, ret,
		                           "unable to read the record");
	if (!auth_may_read(r, rec)) { /* as if there were no such job */
		ingress_result_free(&res);
		json_decref(rec);
		return ingress_fail_now(r, MHD_HTTP_NOT_FOUND, "unknown job",
		                        "no job %s", r->id);
	}
	if (r->route == ROUTE_RESULT &&
	    (size_t)r->result_index >=
	            (renditions_count(rec) ? renditions_count(rec) : 1)) {
		ingress_result_free(&res);
		json_decref(rec);
		return ingress_fail_now(r, MHD_HTTP_NOT_FOUND, "unknown result",
		                        "job %s has no output %ld", r->id,
		                        r->result_index);
	}
	if (r->route == ROUTE_RESULT) {
		enum MHD_Result answer =
		        ingress_answer_job(r, rec, &res, false);
		json_decref(rec);
		return answer;
	}
	ingress_result_free(&res);
	resp = ingress_json_response(rec, &len);
	if (resp)
		ingress_job_headers(resp, r->id, false);
	return ingress_respond(r, MHD_HTTP_OK, resp, len);
}

enum MHD_Result ingress_jobs_get(struct request *r)
{
	if (!r->id[0])
		return ingress_fail_now(r, MHD_HTTP_NOT_FOUND, "unknown job",
		                        "a job id is 32 hex digits");
	return ingress_io_begin(
	        r, &r->in->storage_ex,
	        r->route == ROUTE_RESULT
	                ? ingress_io_result_op(r->in, r->id, r->result_index)
	                : ingress_io_record_op(r->in, r->id, false),
	        answer);
}
