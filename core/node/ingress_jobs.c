/*
 * GET /v1/jobs/ID (the job's record) and GET /v1/jobs/ID/result (the
 * result image, or why there is none yet), for a request that may read
 * the job (auth.c); a job it may not read is answered as if there were
 * no such job.
 */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <string.h>

#include "ingress.h"

enum MHD_Result ingress_jobs_get(struct request *r)
{
	struct MHD_Response *resp;
	enum MHD_Result res;
	size_t len = 0;
	json_t *rec;
	int ret;

	if (!r->id[0])
		return ingress_fail_now(r, MHD_HTTP_NOT_FOUND, "unknown job",
		                        "a job id is 32 hex digits");
	rec = ingress_io_record(r->in, r->id, &ret);
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
		json_decref(rec);
		return ingress_fail_now(r, MHD_HTTP_NOT_FOUND, "unknown job",
		                        "no job %s", r->id);
	}
	if (r->route == ROUTE_RESULT) {
		res = ingress_answer_job(r, rec, false);
		json_decref(rec);
		return res;
	}
	resp = ingress_json_response(rec, &len);
	if (resp)
		ingress_job_headers(resp, r->id, false);
	return ingress_respond(r, MHD_HTTP_OK, resp, len);
}
