/*
 * The ingress's health routes: GET /healthz and /livez (the process
 * answers), /readyz (a worker can take a job, the transport and the
 * storage are up by their breakers, and the node is neither stopping nor
 * draining) and /metrics (the node's counters, this ingress's connections and uploads, and the transport's
 * queue depths). /readyz and /metrics are on [ingress] admin_port instead
 * when it is set; none of them takes a job or an API key.
 */
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base.h"
#include "image.h"
#include "ingress.h"
#include "metrics.h"
#include "startup.h"

#define DEPTH_WAIT_MS 1000 /* /metrics waits this long for queue depths */

static enum MHD_Result get_text(struct request *r, unsigned status, char *text,
                                enum MHD_ResponseMemoryMode mode,
                                const char *type)
{
	size_t len = text ? strlen(text) : 0;
	struct MHD_Response *resp =
	        text ? MHD_create_response_from_buffer(len, text, mode) : NULL;

	if (!resp && mode == MHD_RESPMEM_MUST_FREE)
		free(text);
	if (resp)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		                        type);
	return ingress_respond(r, status, resp, len);
}

/*
 * text (to free, or NULL) with the queue depths op read appended (op may
 * be NULL: none); a queue it failed to count is left out.
 */
static char *queue_depths(struct exec_op *op, char *text)
{
	static const char *const names[] = {"jobs", "dead"};
	uint64_t depth[2];
	int ret[2];
	size_t n;
	char *more;

	if (!text || !op)
		return text;
	ingress_io_depth_take(op, depth, ret);
	n = strlen(text);
	more = realloc(text, n + 512);
	if (!more)
		return text;
	snprintf(
	        more + n, 512,
	        "# HELP imgnode_queue_depth Messages waiting in the transport's queue (held ones not counted).\n"
	        "# TYPE imgnode_queue_depth gauge\n");
	for (int q = 0; q < 2; q++) {
		size_t at = strlen(more);

		if (!ret[q])
			snprintf(more + at, n + 512 - at,
			         "imgnode_queue_depth{queue=\"%s\"} %llu\n",
			         names[q], (unsigned long long)depth[q]);
	}
	return more;
}

/*
 * /metrics: the node's counters, then this ingress's connections and
 * uploads. Returns text to free, or NULL.
 */
static char *render_metrics(struct ingress *in, struct exec_op *depths)
{
	char *base = metrics_render(in->metrics), *text;
	uint64_t open, cut;
	size_t n;
	int len;

	if (!base)
		return NULL;
	pthread_mutex_lock(&in->conns);
	open = in->nconns;
	cut = in->cut_total;
	pthread_mutex_unlock(&in->conns);
	n = strlen(base);
	text = realloc(base, n + 2048);
	if (!text) {
		free(base);
		return NULL;
	}
	len = snprintf(
	        text + n, 2048,
	        "# HELP imgnode_build_info The node's version and libvips's.\n"
	        "# TYPE imgnode_build_info gauge\n"
	        "imgnode_build_info{version=\"%s\",libvips=\"%s\"} 1\n"
	        "# HELP imgnode_http_connections Connections open on this ingress.\n"
	        "# TYPE imgnode_http_connections gauge\n"
	        "imgnode_http_connections %llu\n"
	        "# HELP imgnode_http_deadline_closed_total Connections closed because their request had not arrived within request_deadline.\n"
	        "# TYPE imgnode_http_deadline_closed_total counter\n"
	        "imgnode_http_deadline_closed_total %llu\n"
	        "# HELP imgnode_uploads Uploads in progress holding memory.\n"
	        "# TYPE imgnode_uploads gauge\n"
	        "imgnode_uploads %d\n"
	        "# HELP imgnode_upload_memory_bytes Memory reserved by uploads in progress (at most upload_memory).\n"
	        "# TYPE imgnode_upload_memory_bytes gauge\n"
	        "imgnode_upload_memory_bytes %lld\n"
	        "# HELP imgnode_dependency_up 1 while the dependency answers, 0 while it is down (its breaker open: requests needing it get 503 at once).\n"
	        "# TYPE imgnode_dependency_up gauge\n"
	        "imgnode_dependency_up{dependency=\"storage\"} %d\n"
	        "imgnode_dependency_up{dependency=\"transport\"} %d\n",
	        IMGNODE_VERSION, image_vips_version(), (unsigned long long)open,
	        (unsigned long long)cut, atomic_load(&in->uploads),
	        (long long)atomic_load(&in->upload_bytes),
	        executor_up(&in->storage_ex, NULL, 0, NULL),
	        executor_up(&in->transport_ex, NULL, 0, NULL));
	if (len < 0 || len >= 2048)
		text[n] = '\0';
	return queue_depths(depths, text);
}

/*
 * True when no worker can take a job: none ready in a pool that should
 * have some (the supervisor publishes the pool in the metrics as it
 * changes). detail says why.
 */
static bool workers_unready(struct metrics *m, char *detail, size_t len)
{
	int64_t wanted = atomic_load(&m->workers.wanted);
	int64_t alive = atomic_load(&m->workers.alive);
	int64_t starting = atomic_load(&m->workers.starting);
	int64_t wait = atomic_load(&m->workers.next_start) - now_ms();
	size_t at;

	if (wanted <= 0 || atomic_load(&m->workers.ready) > 0)
		return false;
	at = (size_t)snprintf(detail, len,
	                      "no worker ready: %lld of %lld alive",
	                      (long long)alive, (long long)wanted);
	if (starting > 0 && at < len)
		at += (size_t)snprintf(detail + at, len - at, ", %lld starting",
		                       (long long)starting);
	if (wait > 0 && at < len)
		snprintf(detail + at, len - at, ", next restart in %.1f s",
		         (double)wait / 1000);
	return true;
}

enum MHD_Result ingress_health_readyz(struct request *r)
{
	struct ingress *in = r->in;
	char t[BREAKER_WHY_MAX], s[BREAKER_WHY_MAX],
	        detail[2 * BREAKER_WHY_MAX + 64];
	struct MHD_Response *resp;
	bool t_up, s_up;
	size_t len = 0;
	json_t *j;

	if (atomic_load(&in->quiescing))
		return ingress_fail_now(r, MHD_HTTP_SERVICE_UNAVAILABLE,
		                        "not ready", "stopping");
	if (atomic_load(&in->metrics->draining))
		return ingress_fail_now(r, MHD_HTTP_SERVICE_UNAVAILABLE,
		                        "not ready", "draining");
	if (workers_unready(in->metrics, detail, sizeof(detail)))
		return ingress_fail_now(r, MHD_HTTP_SERVICE_UNAVAILABLE,
		                        "not ready", "%s", detail);
	/* the breakers' word, never a call: /readyz answers at once */
	t_up = executor_up(&in->transport_ex, t, sizeof(t), NULL);
	s_up = executor_up(&in->storage_ex, s, sizeof(s), NULL);
	if (t_up && s_up) {
		j = json_pack("{s:s, s:s}", "transport", "ok", "storage", "ok");
		resp = ingress_json_response(j, &len);
		return ingress_respond(r, MHD_HTTP_OK, resp, len);
	}
	snprintf(detail, sizeof(detail), "%s%s%s%s%s",
	         s_up ? "" : "storage: ", s_up ? "" : s,
	         !s_up && !t_up ? "; " : "",
	         t_up ? "" : "transport: ", t_up ? "" : t);
	j = ingress_error_json("not ready", detail);
	json_object_set_new(j, "transport", json_string(t_up ? "ok" : t));
	json_object_set_new(j, "storage", json_string(s_up ? "ok" : s));
	resp = ingress_json_response(j, &len);
	return ingress_respond(r, MHD_HTTP_SERVICE_UNAVAILABLE, resp, len);
}

enum MHD_Result ingress_health_live(struct request *r)
{
	return get_text(r, MHD_HTTP_OK, "ok\n", MHD_RESPMEM_PERSISTENT,
	                "text/plain");
}

/* The queue depths read (or not, in time): the answer. */
static enum MHD_Result metrics_answer(struct request *r)
{
	char *text = render_metrics(r->in, r->io_ret ? NULL : r->io_op);

	ingress_io_free(r->io_op);
	r->io_op = NULL;
	return get_text(r, MHD_HTTP_OK, text, MHD_RESPMEM_MUST_FREE,
	                "text/plain; version=0.0.4; charset=utf-8");
}

enum MHD_Result ingress_health_metrics(struct request *r)
{
	struct ingress *in = r->in;

	/* the queue depths, if the transport counts them (ABI 1.3), within
	 * DEPTH_WAIT_MS, and not at all while it is down */
	if (!plugin_transport_has_depth(in->set.transport)) {
		r->io_ret = -ENOTSUP;
		return metrics_answer(r);
	}
	return ingress_io_begin_until(r, &in->transport_ex,
	                              ingress_io_depth_op(in),
	                              now_ms() + DEPTH_WAIT_MS, metrics_answer);
}
