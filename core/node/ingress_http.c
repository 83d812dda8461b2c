/*
 * The HTTP API of the ingress (docs/design.md §3, §4), on libmicrohttpd with
 * a pool of [ingress] threads polling the connections:
 *
 *   POST /v1/jobs?pipeline=P | ?preset=NAME [&wait=SECONDS]
 *        [&keyid=ID&expires=UNIX[&sha256=HEX]&sig=HEX]  (auth.c)
 *   GET  /v1/jobs/ID          the job's record
 *   GET  /v1/jobs/ID/result   the result image
 *   GET  /healthz, /livez, /readyz, /metrics  (the last two on [ingress]
 *                                      admin_port instead, when it is set)
 *   GET  /v1/presets, /v1/pipeline/check, and the page's files at any
 *        other path outside /v1/ (ingress_page.c)
 *
 * A submission is answered 202 only after the original and the record are
 * stored and the publish is confirmed; a storage or transport failure
 * before that is a 503 with Retry-After, and no promise. A result already
 * in storage for the same original, pipeline and filter versions is a
 * cache hit: the job is done at once. With ?wait= the request is suspended
 * (the thread goes on serving others) until the job's reply comes or the
 * wait ends, and then answers from the record, which is the truth.
 *
 * A result is sent from storage a piece at a time as the client takes it,
 * never read whole. Connections are bounded in number (in all and per
 * client address) and each request must have arrived whole within
 * [ingress] request_deadline, which the main thread enforces (libmicrohttpd
 * has only an idle timeout).
 *
 * Errors are {"error": "...", "detail": "..."}, with the detail in ASCII
 * (and "limit", the config key, on a 429). Framing that could smuggle a
 * request (request_check.h) is refused before routing, and the connection
 * closed.
 * This file is the daemon, the routing, the answers and reading jobs;
 * ingress_submit.c takes uploads.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "../base.h"
#include "../log.h"
#include "child.h"
#include "image.h"
#include "ingress.h"
#include "metrics.h"
#include "node_conf.h"
#include "pipeline.h"
#include "request_check.h"

#define COMPONENT "ingress"
#define RETRY_AFTER "5" /* seconds, on 503 and 429 */
#define RESULT_MAX ((size_t)1 << 32)
#define JSON_TYPE "application/json"
#define LOG_INTERVAL_MS 10000 /* lines about refused connections: */
#define LOG_BURST 5 /* ... at most this many per interval */
#define STREAM_BLOCK (128 * 1024) /* a result is sent in pieces of this */
#define FD_SPARE 128 /* descriptors beside connections: plugins, logs */

/* Replaces what is not printable ASCII (JSON strings must be UTF-8). */
static void ascii_only(char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			*s = '?';
}

/* ---- connections and their deadline ---- */

static bool mhd_quota_take(int64_t now, bool take);

/* The request is read: the deadline no longer applies to its connection
 * (a wait has wait_max, an answer the idle timeout). */
static void conn_answering(struct request *r)
{
	if (!r->cn)
		return;
	pthread_mutex_lock(&r->in->conns);
	r->cn->since_ms = -1;
	pthread_mutex_unlock(&r->in->conns);
}

/* libmicrohttpd's notice of a connection accepted or closed (it calls
 * CLOSED before it closes the socket, so fd stays ours to shut down). */
static void on_connection(void *cls, struct MHD_Connection *conn,
                          void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
	struct ingress *in = cls;
	struct ingress_conn *cn = *socket_ctx;
	const union MHD_ConnectionInfo *info;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		info = MHD_get_connection_info(
		        conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		cn = info ? calloc(1, sizeof(*cn)) : NULL;
		if (!cn)
			return; /* not swept; the idle timeout still applies */
		cn->fd = info->connect_fd;
		cn->since_ms = now_ms();
		pthread_mutex_lock(&in->conns);
		cn->next = in->conn_list;
		if (in->conn_list)
			in->conn_list->prev = cn;
		in->conn_list = cn;
		in->nconns++;
		pthread_mutex_unlock(&in->conns);
		*socket_ctx = cn;
		return;
	}
	if (!cn)
		return;
	pthread_mutex_lock(&in->conns);
	if (cn->prev)
		cn->prev->next = cn->next;
	else
		in->conn_list = cn->next;
	if (cn->next)
		cn->next->prev = cn->prev;
	in->nconns--;
	pthread_mutex_unlock(&in->conns);
	free(cn);
	*socket_ctx = NULL;
}

void ingress_http_sweep(struct ingress *in, int64_t now)
{
	int64_t deadline = in->conf->app->ingress.request_deadline;
	uint64_t n;

	pthread_mutex_lock(&in->conns);
	for (struct ingress_conn *cn = in->conn_list; cn; cn = cn->next) {
		if (cn->cut || cn->since_ms < 0 ||
		    now - cn->since_ms <= deadline)
			continue;
		/* the connection's thread sees the end of its input and
		 * closes it */
		shutdown(cn->fd, SHUT_RDWR);
		cn->cut = true;
		in->cut_since_log++;
		in->cut_total++;
	}
	n = in->cut_since_log;
	if (n && now - in->cut_logged_ms >= LOG_INTERVAL_MS) {
		in->cut_since_log = 0;
		in->cut_logged_ms = now;
	} else {
		n = 0;
	}
	pthread_mutex_unlock(&in->conns);
	mhd_quota_take(now, false);
	if (n)
		log_warn(
		        COMPONENT,
		        "closed connections=%llu whose request had not arrived within request_deadline (%llds); at most one such line every %ds",
		        (unsigned long long)n, (long long)(deadline / 1000),
		        LOG_INTERVAL_MS / 1000);
}

/* ---- answers ---- */

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

/* Queues resp (len body bytes) and counts it; destroys resp. A NULL resp
 * (it could not be made) is answered 500. */
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
	    status == MHD_HTTP_TOO_MANY_REQUESTS)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER,
		                        RETRY_AFTER);
	if (atomic_load(&r->in->quiescing))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
		                        "close");
	MHD_add_response_header(resp, "X-Request-ID", r->request_id);
	conn_answering(r);
	ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	r->status = status;
	r->out_bytes = len;
	r->phase = PHASE_ANSWERED;
	atomic_fetch_add(&r->in->metrics->http[status / 100 % 6], 1);
	return ret;
}

/* A response for j (stolen), with a newline after it for terminals. */
static struct MHD_Response *json_response(json_t *j, size_t *len)
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

static json_t *error_json(const char *error, const char *detail)
{
	return json_pack("{s:s, s:s}", "error", error, "detail", detail);
}

enum MHD_Result ingress_answer_json(struct request *r, unsigned status,
                                    json_t *j)
{
	size_t len = 0;
	struct MHD_Response *resp = json_response(j, &len);

	return ingress_respond(r, status, resp, len);
}

/* Notes a failure to answer (see ingress.h). */
int ingress_fail(struct request *r, unsigned status, const char *error,
                 const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->fail_detail, sizeof(r->fail_detail), fmt, ap);
	va_end(ap);
	ascii_only(r->fail_detail);
	r->fail_status = status;
	r->fail_error = error;
	return -1;
}

enum MHD_Result ingress_answer_fail(struct request *r)
{
	json_t *j = error_json(r->fail_error, r->fail_detail);
	struct MHD_Response *resp;
	size_t len = 0;

	if (j && r->fail_limit)
		json_object_set_new(j, "limit", json_string(r->fail_limit));
	resp = json_response(j, &len);
	return ingress_respond(r, r->fail_status, resp, len);
}

static void job_headers(struct MHD_Response *resp, const char *id,
                        bool location)
{
	char where[64];

	MHD_add_response_header(resp, "X-Imgnode-Job", id);
	if (location) {
		snprintf(where, sizeof(where), "/v1/jobs/%s", id);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, where);
	}
}

/* 202 {"id", "status"} with Location: the job is accepted. */
enum MHD_Result ingress_answer_accepted(struct request *r, const char *status)
{
	size_t len = 0;
	struct MHD_Response *resp = json_response(
	        json_pack("{s:s, s:s}", "id", r->id, "status", status), &len);

	if (resp)
		job_headers(resp, r->id, true);
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
 * the client has taken the last one): at most max bytes at pos, read under
 * io. A store that fails or an object that shrank ends the answer early:
 * the client sees a connection closed short of Content-Length.
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
	pthread_mutex_lock(&in->io);
	ret = storage_ops(&in->set)->read(in->set.storage->state, rs->key, pos,
	                                  buf, max, &got);
	pthread_mutex_unlock(&in->io);
	if (ret || !got) {
		log_warn(COMPONENT,
		         "result %s cut short at byte %llu of %llu: %s",
		         rs->key, (unsigned long long)pos,
		         (unsigned long long)rs->size,
		         ret ? strerror(-ret) : "it shrank");
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	return (ssize_t)got;
}

/*
 * A response that reads the object at key as the client takes it, never
 * whole (STREAM_BLOCK bytes at a time), or, from a storage plugin older
 * than ABI 1.2, one read whole. NULL with *ret = -errno.
 */
static struct MHD_Response *object_response(struct ingress *in, const char *key,
                                            size_t *len, int *ret)
{
	const struct imgnode_storage_ops *st = storage_ops(&in->set);
	struct MHD_Response *resp;
	struct imgnode_stat sb;
	struct result_stream *rs;
	void *buf = NULL;

	if (!storage_reads_ranges(&in->set)) {
		pthread_mutex_lock(&in->io);
		*ret = st->get(in->set.storage->state, key, RESULT_MAX, &buf,
		               len);
		pthread_mutex_unlock(&in->io);
		if (*ret)
			return NULL;
		resp = MHD_create_response_from_buffer(*len, buf,
		                                       MHD_RESPMEM_MUST_FREE);
		if (!resp) {
			free(buf);
			*ret = -ENOMEM;
		}
		return resp;
	}
	pthread_mutex_lock(&in->io);
	*ret = st->stat(in->set.storage->state, key, &sb);
	pthread_mutex_unlock(&in->io);
	if (*ret)
		return NULL;
	rs = calloc(1, sizeof(*rs));
	if (!rs) {
		*ret = -ENOMEM;
		return NULL;
	}
	rs->in = in;
	rs->size = sb.size;
	snprintf(rs->key, sizeof(rs->key), "%s", key);
	resp = MHD_create_response_from_callback(sb.size, STREAM_BLOCK,
	                                         read_result, rs, free);
	if (!resp) {
		free(rs);
		*ret = -ENOMEM;
		return NULL;
	}
	*len = (size_t)sb.size;
	return resp;
}

/* The result of a done job rec as a 200 response, or NULL with
 * *ret = -errno. */
static struct MHD_Response *result_response(struct request *r, json_t *rec,
                                            size_t *len, int *ret)
{
	json_t *output = json_object_get(rec, "output");
	const char *key = json_string_value(json_object_get(rec, "result"));
	const char *mime = json_string_value(json_object_get(output, "mime"));
	struct MHD_Response *resp;

	if (!key)
		key = json_string_value(json_object_get(output, "key"));
	if (!key || !imgnode_key_valid(key)) {
		*ret = -EBADMSG;
		return NULL;
	}
	resp = object_response(r->in, key, len, ret);
	if (!resp)
		return NULL;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
	                        mime ? mime : "application/octet-stream");
	job_headers(resp, r->id, false);
	return resp;
}

/*
 * Answers from the record rec: 200 with the result when done, 422 when
 * failed; otherwise 202 after a wait, 409 for GET .../result. A waited-for
 * job is accepted, so a storage failure then is a 202, never a 503.
 */
enum MHD_Result ingress_answer_job(struct request *r, json_t *rec, bool waited)
{
	const char *status = json_string_value(json_object_get(rec, "status"));
	struct MHD_Response *resp;
	size_t len = 0;
	json_t *j;
	int ret;

	if (!status)
		return ingress_fail_now(r, 500, "bad record",
		                        "job %s has no status", r->id);
	if (strcmp(status, "done") == 0) {
		resp = result_response(r, rec, &len, &ret);
		if (resp)
			return ingress_respond(r, MHD_HTTP_OK, resp, len);
		if (waited)
			return ingress_answer_accepted(r, status);
		if (ret == -ENOENT || ret == -EBADMSG)
			return ingress_fail_now(
			        r, 500, "result missing",
			        "job %s is done but its result is gone", r->id);
		return ingress_fail_now(r, 503, "storage unavailable",
		                        "unable to read the result: %s",
		                        strerror(-ret));
	}
	if (strcmp(status, "failed") == 0) {
		const char *why =
		        json_string_value(json_object_get(rec, "error"));
		j = error_json("job failed", why ? why : "unknown");
		json_object_set_new(j, "id", json_string(r->id));
		resp = json_response(j, &len);
		if (resp)
			job_headers(resp, r->id, false);
		return ingress_respond(r, MHD_HTTP_UNPROCESSABLE_CONTENT, resp,
		                       len);
	}
	if (waited)
		return ingress_answer_accepted(r, status);
	j = json_pack("{s:s, s:s, s:s, s:s}", "error", "not done", "detail",
	              strcmp(status, "running") == 0 ? "the job is running"
	                                             : "the job is queued",
	              "id", r->id, "status", status);
	resp = json_response(j, &len);
	if (resp)
		job_headers(resp, r->id, true);
	return ingress_respond(r, MHD_HTTP_CONFLICT, resp, len);
}

/* After a wait: whatever the record says now. */
static enum MHD_Result answer_from_record(struct request *r)
{
	enum MHD_Result res;
	json_t *rec;
	int ret;

	pthread_mutex_lock(&r->in->io);
	rec = job_record_get(r->in->set.storage, r->id, &ret);
	pthread_mutex_unlock(&r->in->io);
	if (!rec)
		return ingress_answer_accepted(r, "queued");
	res = ingress_answer_job(r, rec, true);
	json_decref(rec);
	return res;
}

/* ---- GET ---- */

static enum MHD_Result get_job(struct request *r)
{
	struct MHD_Response *resp;
	enum MHD_Result res;
	size_t len = 0;
	json_t *rec;
	int ret;

	if (!r->id[0])
		return ingress_fail_now(r, 404, "unknown job",
		                        "a job id is 32 hex digits");
	pthread_mutex_lock(&r->in->io);
	rec = job_record_get(r->in->set.storage, r->id, &ret);
	pthread_mutex_unlock(&r->in->io);
	if (!rec && ret == -ENOENT)
		return ingress_fail_now(r, 404, "unknown job", "no job %s",
		                        r->id);
	if (!rec && ret == -EBADMSG)
		return ingress_fail_now(
		        r, 500, "bad record",
		        "the record of job %s is not a JSON object", r->id);
	if (!rec)
		return ingress_fail_now(r, 503, "storage unavailable",
		                        "unable to read the record: %s",
		                        strerror(-ret));
	if (!auth_may_read(r, rec)) { /* as if there were no such job */
		json_decref(rec);
		return ingress_fail_now(r, 404, "unknown job", "no job %s",
		                        r->id);
	}
	if (r->route == ROUTE_RESULT) {
		res = ingress_answer_job(r, rec, false);
		json_decref(rec);
		return res;
	}
	resp = json_response(rec, &len);
	if (resp)
		job_headers(resp, r->id, false);
	return ingress_respond(r, MHD_HTTP_OK, resp, len);
}

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
 * text (to free, or NULL) with the transport's queue depths appended, if
 * it can count them (ABI 1.3); a queue it fails to count is left out.
 */
static char *queue_depths(struct ingress *in, char *text)
{
	static const char *const names[] = {"jobs", "dead"};
	const struct imgnode_transport_ops *ops = transport_ops(&in->set);
	uint64_t depth[2];
	int ret[2];
	size_t n;
	char *more;

	if (!text || !plugin_transport_has_depth(in->set.transport))
		return text;
	pthread_mutex_lock(&in->io);
	for (int q = 0; q < 2; q++)
		ret[q] = ops->depth(in->set.transport->state,
		                    q ? IMGNODE_QUEUE_DEAD : IMGNODE_QUEUE_JOBS,
		                    &depth[q]);
	pthread_mutex_unlock(&in->io);
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
static char *render_metrics(struct ingress *in)
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
	text = realloc(base, n + 1536);
	if (!text) {
		free(base);
		return NULL;
	}
	len = snprintf(
	        text + n, 1536,
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
	        "imgnode_upload_memory_bytes %lld\n",
	        IMGNODE_VERSION, image_vips_version(), (unsigned long long)open,
	        (unsigned long long)cut, atomic_load(&in->uploads),
	        (long long)atomic_load(&in->upload_bytes));
	if (len < 0 || len >= 1536)
		text[n] = '\0';
	return queue_depths(in, text);
}

static enum MHD_Result get_readyz(struct request *r)
{
	struct ingress *in = r->in;
	struct MHD_Response *resp;
	char detail[256];
	size_t len = 0;
	json_t *j;
	int t, s;

	if (atomic_load(&in->quiescing))
		return ingress_fail_now(r, 503, "not ready", "stopping");
	if (atomic_load(&in->metrics->draining))
		return ingress_fail_now(r, 503, "not ready", "draining");
	pthread_mutex_lock(&in->io);
	t = transport_ops(&in->set)->ping(in->set.transport->state);
	s = storage_ops(&in->set)->ping(in->set.storage->state);
	pthread_mutex_unlock(&in->io);
	ingress_kick(in);
	if (!t && !s) {
		j = json_pack("{s:s, s:s}", "transport", "ok", "storage", "ok");
		resp = json_response(j, &len);
		return ingress_respond(r, MHD_HTTP_OK, resp, len);
	}
	snprintf(detail, sizeof(detail), "%s%s%s%s%s", t ? "transport: " : "",
	         t ? strerror(-t) : "", t && s ? "; " : "",
	         s ? "storage: " : "", s ? strerror(-s) : "");
	j = error_json("not ready", detail);
	json_object_set_new(j, "transport",
	                    json_string(t ? strerror(-t) : "ok"));
	json_object_set_new(j, "storage", json_string(s ? strerror(-s) : "ok"));
	resp = json_response(j, &len);
	return ingress_respond(r, MHD_HTTP_SERVICE_UNAVAILABLE, resp, len);
}

/* ---- framing and who the client is ---- */

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind,
                                     const char *key, const char *value)
{
	struct request_framing *f = cls;

	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0)
		f->host++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		f->content_length++;
	else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0 &&
	         !f->transfer_encoding++)
		f->te = value;
	return MHD_YES;
}

/* What is wrong with r's framing headers (request_check.h), or NULL. */
static const char *framing_problem(struct request *r, const char *version)
{
	struct request_framing f = {
	        .http11 = strcmp(version, MHD_HTTP_VERSION_1_0) != 0};

	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_framing, &f);
	return request_framing_problem(&f);
}

/*
 * Framing libmicrohttpd would read one way and a proxy in front another
 * (RFC 9112 §6.3): answered 400 at once, and the connection closed, as
 * what follows on it cannot be trusted. libmicrohttpd refuses a
 * Content-Length that is not a number itself, before this.
 */
static enum MHD_Result refuse_framing(struct request *r, const char *problem)
{
	struct MHD_Response *resp;
	size_t len = 0;

	ingress_fail(r, 400, "bad request", "%s", problem);
	resp = json_response(error_json(r->fail_error, r->fail_detail), &len);
	if (resp)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
		                        "close");
	return ingress_respond(r, 400, resp, len);
}

/* Keeps the last X-Forwarded-For header: each proxy on the way may add
 * its own, after the client's. */
static enum MHD_Result last_forwarded(void *cls, enum MHD_ValueKind kind,
                                      const char *key, const char *value)
{
	const char **last = cls;

	(void)kind;
	if (strcasecmp(key, "X-Forwarded-For") == 0)
		*last = value;
	return MHD_YES;
}

/*
 * Names who r counts against for [ingress] max_inflight_per_client, in
 * r->client: its API key's ID when keys are set ("key:ID"), else its
 * address (request_client_name). Called once the API key is known good.
 */
static void client_of(struct request *r)
{
	const struct ingress_conf *ic = &r->in->conf->app->ingress;
	const union MHD_ConnectionInfo *ci;
	const char *xff = NULL;
	const struct sockaddr *sa;
	struct in6_addr peer;

	if (r->key_id[0]) {
		snprintf(r->client, sizeof(r->client), "key:%s", r->key_id);
		return;
	}
	ci = MHD_get_connection_info(r->conn,
	                             MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	sa = ci ? ci->client_addr : NULL;
	memset(&peer, 0, sizeof(peer));
	if (sa && sa->sa_family == AF_INET6) {
		peer = ((const struct sockaddr_in6 *)sa)->sin6_addr;
	} else if (sa && sa->sa_family == AF_INET) {
		peer.s6_addr[10] = peer.s6_addr[11] = 0xff;
		memcpy(&peer.s6_addr[12],
		       &((const struct sockaddr_in *)sa)->sin_addr, 4);
	}
	MHD_get_connection_values(r->conn, MHD_HEADER_KIND, last_forwarded,
	                          &xff);
	request_client_name(&peer, xff, &ic->trusted_proxies, r->client,
	                    sizeof(r->client));
}

/* ---- routing and the request's life ---- */

/*
 * r->request_id: the client's X-Request-ID if it is 1 to REQUEST_ID_MAX
 * printable ASCII characters without spaces, quotes or backslashes (it
 * goes into logs and records as it is), else a new random one.
 */
static void request_id_of(struct request *r)
{
	const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
	                                            "X-Request-ID");

	if (job_request_id_valid(v)) {
		snprintf(r->request_id, sizeof(r->request_id), "%s", v);
		return;
	}
	if (job_new_id(r->request_id))
		snprintf(r->request_id, sizeof(r->request_id), "-");
}

/* Query parameters whose values are secrets: masked in the access log. */
static bool secret_arg(const char *key)
{
	static const char *const secret[] = {
	        "sig",   "signature", "key",      "api_key", "apikey",
	        "token", "secret",    "password", "auth",    NULL};

	for (int i = 0; secret[i]; i++)
		if (strcasecmp(key, secret[i]) == 0)
			return true;
	return strcasestr(key, "token") || strcasestr(key, "secret") ||
	       strcasestr(key, "passw");
}

struct query_text {
	char buf[512];
	size_t len;
};

/* Appends s to q, %-escaping what would break a log line or look odd. */
static void query_put(struct query_text *q, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (; s && *s && q->len + 4 < sizeof(q->buf); s++) {
		unsigned char c = (unsigned char)*s;

		if (c > 0x20 && c < 0x7f && c != '"' && c != '\\' && c != '%' &&
		    c != '&' && c != '=') {
			q->buf[q->len++] = (char)c;
		} else {
			q->buf[q->len++] = '%';
			q->buf[q->len++] = hex[c >> 4];
			q->buf[q->len++] = hex[c & 15];
		}
	}
	q->buf[q->len] = '\0';
}

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind,
                                 const char *key, const char *value)
{
	struct query_text *q = cls;

	(void)kind;
	if (q->len && q->len + 1 < sizeof(q->buf))
		q->buf[q->len++] = '&';
	query_put(q, key);
	if (value && q->len + 1 < sizeof(q->buf)) {
		q->buf[q->len++] = '=';
		query_put(q, secret_arg(key) ? "***" : value);
	}
	return MHD_YES;
}

/* The client's address as text (the connection's peer, not a proxy's
 * X-Forwarded-For, which r->client weighs for quotas). */
static void peer_text(struct request *r, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
	        r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(buf, len, "-");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		          buf, (socklen_t)len);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		          &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
		          (socklen_t)len);
}

/* The access log's line for r ([ingress] access_log; else at debug). */
static void access_line(struct request *r, bool aborted)
{
	struct query_text q = {.len = 0};
	char peer[INET6_ADDRSTRLEN] = "-";
	int level = r->in->conf->app->ingress.access_log ? LOG_INFO : LOG_DEBUG;

	if (level > log_get_level())
		return;
	q.buf[0] = '\0';
	MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, query_arg,
	                          &q);
	peer_text(r, peer, sizeof(peer));
	log_msg(level, "access",
	        "%s %s status=%u bytes=%zu in=%llu ms=%lld client=%s request_id=%s%s%s%s%s%s%s",
	        r->method, r->path, r->status, r->out_bytes,
	        (unsigned long long)r->received,
	        (long long)(now_ms() - r->start_ms), peer, r->request_id,
	        q.len ? " query=\"" : "", q.buf, q.len ? "\"" : "",
	        r->id[0] ? " id=" : "", r->id, aborted ? " aborted=yes" : "");
}

static void unlink_waiter(struct ingress *in, struct request *r);

/* Finds the route of url; false for an unknown path. */
static bool route(struct request *r, const char *url)
{
	static const struct {
		const char *path;
		enum ingress_route route;
	} fixed[] = {{"/v1/jobs", ROUTE_SUBMIT},
	             {"/healthz", ROUTE_HEALTHZ},
	             {"/livez", ROUTE_HEALTHZ},
	             {"/readyz", ROUTE_READYZ},
	             {"/metrics", ROUTE_METRICS},
	             {"/v1/presets", ROUTE_PRESETS},
	             {"/v1/pipeline/check", ROUTE_CHECK}};
	const char *id, *slash;
	size_t idlen;

	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(url, fixed[i].path) == 0) {
			r->route = fixed[i].route;
			return true;
		}
	if (strncmp(url, "/v1/", 4) != 0 && strcmp(url, "/v1") != 0) {
		r->route = ROUTE_PAGE;
		return true;
	}
	if (strncmp(url, "/v1/jobs/", 9) != 0)
		return false;
	id = url + 9;
	slash = strchr(id, '/');
	if (slash && strcmp(slash, "/result") != 0)
		return false;
	idlen = slash ? (size_t)(slash - id) : strlen(id);
	if (!idlen)
		return false;
	r->route = slash ? ROUTE_RESULT : ROUTE_JOB;
	if (idlen == JOB_ID_LEN) {
		memcpy(r->id, id, JOB_ID_LEN);
		r->id[JOB_ID_LEN] = '\0';
		if (!job_id_valid(r->id))
			r->id[0] = '\0';
	}
	return true;
}

/*
 * The admin listener serves health, readiness and metrics only; when there
 * is one, the public port no longer serves readiness and metrics.
 */
static bool route_here(const struct request *r)
{
	bool admin_only = r->route == ROUTE_READYZ || r->route == ROUTE_METRICS;

	if (r->admin) /* the page and its calls: the public port only */
		return admin_only || r->route == ROUTE_HEALTHZ;
	return !admin_only || !r->in->conf->app->ingress.admin_port;
}

static enum MHD_Result first_call(struct request *r, const char *url,
                                  const char *method)
{
	struct MHD_Response *resp;
	size_t len = 0;
	bool post;

	if (!route(r, url) || !route_here(r))
		return ingress_fail_now(r, 404, "not found", "no such path: %s",
		                        r->path);
	post = r->route == ROUTE_SUBMIT;
	if (post ? strcmp(method, MHD_HTTP_METHOD_POST) != 0
	         : strcmp(method, MHD_HTTP_METHOD_GET) != 0 &&
	                    strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		ingress_fail(r, 405, "method not allowed", "%s %s: use %s",
		             r->method, r->path, post ? "POST" : "GET");
		resp = json_response(error_json(r->fail_error, r->fail_detail),
		                     &len);
		if (resp)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
			                        post ? "POST" : "GET, HEAD");
		return ingress_respond(r, 405, resp, len);
	}
	if ((post || r->route == ROUTE_PRESETS || r->route == ROUTE_CHECK) &&
	    !auth_api_key(r))
		return ingress_fail_now(r, 401, "unauthorized",
		                        "missing or unknown X-Api-Key");
	if (post && atomic_load(&r->in->metrics->draining))
		return ingress_fail_now(
		        r, 503, "draining",
		        "this node is draining (imgnodectl drain): no new jobs; try another");
	if (post) { /* counted until completed: a drain waits for it */
		r->submitting = true;
		atomic_fetch_add(&r->in->metrics->submitting, 1);
	}
	if ((r->route == ROUTE_JOB || r->route == ROUTE_RESULT) &&
	    auth_read(r, url))
		return ingress_answer_fail(r);
	switch (r->route) {
	case ROUTE_SUBMIT: client_of(r); return ingress_submit_begin(r);
	case ROUTE_JOB:
	case ROUTE_RESULT: return get_job(r);
	case ROUTE_HEALTHZ:
		return get_text(r, MHD_HTTP_OK, "ok\n", MHD_RESPMEM_PERSISTENT,
		                "text/plain");
	case ROUTE_READYZ: return get_readyz(r);
	case ROUTE_PRESETS: return ingress_page_presets(r);
	case ROUTE_CHECK: return ingress_page_check(r);
	case ROUTE_PAGE: return ingress_page_file(r, url);
	case ROUTE_METRICS:
		return get_text(r, MHD_HTTP_OK, render_metrics(r->in),
		                MHD_RESPMEM_MUST_FREE,
		                "text/plain; version=0.0.4; charset=utf-8");
	}
	return MHD_NO;
}

static enum MHD_Result serve(struct ingress *in, bool admin,
                             struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version,
                             const char *data, size_t *size, void **ctx)
{
	struct request *r = *ctx;
	const char *problem;

	if (!r) {
		const union MHD_ConnectionInfo *info = MHD_get_connection_info(
		        conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

		r = calloc(1, sizeof(*r));
		if (!r)
			return MHD_NO;
		r->in = in;
		r->conn = conn;
		r->admin = admin;
		r->cn = info ? info->socket_context : NULL;
		r->start_ms = now_ms();
		r->phase = PHASE_ANSWERED;
		snprintf(r->method, sizeof(r->method), "%s", method);
		snprintf(r->path, sizeof(r->path), "%s", url);
		ascii_only(r->method);
		ascii_only(r->path);
		request_id_of(r);
		atomic_fetch_add(&in->active, 1);
		*ctx = r;
		problem = framing_problem(r, version);
		if (problem)
			return refuse_framing(r, problem);
		/* an answer queued in this first call closes the connection:
		 * only for uploads refused before their body is read */
		if (strcmp(method, MHD_HTTP_METHOD_POST) == 0)
			return first_call(r, url, method);
		r->phase = PHASE_HEADERS;
		return MHD_YES;
	}
	switch (r->phase) {
	case PHASE_HEADERS:
		if (*size) {
			*size = 0; /* a body nobody asked for */
			return MHD_YES;
		}
		return first_call(r, url, method);
	case PHASE_BODY:
		if (*size)
			return ingress_submit_body(r, data, size);
		return ingress_submit_finish(r);
	case PHASE_RESUMED: return answer_from_record(r);
	default: *size = 0; return MHD_YES;
	}
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *data,
                                  size_t *size, void **ctx)
{
	return serve(cls, false, conn, url, method, version, data, size, ctx);
}

static enum MHD_Result on_admin_request(void *cls, struct MHD_Connection *conn,
                                        const char *url, const char *method,
                                        const char *version, const char *data,
                                        size_t *size, void **ctx)
{
	return serve(cls, true, conn, url, method, version, data, size, ctx);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **ctx,
                         enum MHD_RequestTerminationCode toe)
{
	struct ingress *in = cls;
	struct request *r = *ctx;

	(void)conn;
	if (!r)
		return;
	if (r->phase == PHASE_WAITING) { /* closed while suspended */
		pthread_mutex_lock(&in->jobs);
		unlink_waiter(in, r);
		pthread_mutex_unlock(&in->jobs);
	}
	access_line(r, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK);
	if (r->pp)
		MHD_destroy_post_processor(r->pp);
	if (r->cn) { /* a kept-alive connection: the next request begins */
		pthread_mutex_lock(&in->conns);
		r->cn->since_ms = now_ms();
		pthread_mutex_unlock(&in->conns);
	}
	if (r->submitting)
		atomic_fetch_sub(&in->metrics->submitting, 1);
	ingress_upload_release(r);
	pipeline_free(r->pl);
	EVP_MD_CTX_free(r->sha);
	free(r->form_pipeline);
	free(r);
	*ctx = NULL;
	atomic_fetch_sub(&in->active, 1);
}

/* Takes r off the waiters and its job. The caller holds jobs. */
static void unlink_waiter(struct ingress *in, struct request *r)
{
	if (r->wprev)
		r->wprev->wnext = r->wnext;
	else
		in->waiters = r->wnext;
	if (r->wnext)
		r->wnext->wprev = r->wprev;
	r->wprev = r->wnext = NULL;
	if (r->pend)
		r->pend->waiter = NULL;
	r->pend = NULL;
	r->phase = PHASE_ANSWERED;
}

void ingress_http_wake(struct ingress *in, struct request *r)
{
	if (r->phase != PHASE_WAITING)
		return;
	unlink_waiter(in, r);
	r->phase = PHASE_RESUMED;
	MHD_resume_connection(r->conn);
}

void ingress_http_expire(struct ingress *in, int64_t now, bool all)
{
	struct request *r, *next;

	pthread_mutex_lock(&in->jobs);
	if (all)
		in->stopping = true;
	for (r = in->waiters; r; r = next) {
		next = r->wnext;
		if (all || now >= r->deadline_ms)
			ingress_http_wake(in, r);
	}
	pthread_mutex_unlock(&in->jobs);
}

/* Suspends r until its job's reply or the end of its wait. */
enum MHD_Result ingress_wait(struct request *r)
{
	struct ingress *in = r->in;
	struct pending *p;

	pthread_mutex_lock(&in->jobs);
	p = in->stopping ? NULL : ingress_pending_find(in, r->id);
	if (p) {
		p->waiter = r;
		r->pend = p;
		r->deadline_ms = now_ms() + r->wait_ms;
		r->wnext = in->waiters;
		if (in->waiters)
			in->waiters->wprev = r;
		in->waiters = r;
		r->phase = PHASE_WAITING;
		conn_answering(r);
		MHD_suspend_connection(r->conn);
	}
	pthread_mutex_unlock(&in->jobs);
	return p ? MHD_YES : answer_from_record(r);
}

/*
 * libmicrohttpd's lines: at most LOG_BURST per LOG_INTERVAL_MS, so that a
 * flood of connections refused at the limits is not a flood of lines; one
 * line counts those left out once their interval is over.
 */
static struct {
	pthread_mutex_t lock;
	int64_t window_ms; /* the interval began */
	unsigned long shown, dropped; /* in it */
} mhd_quota = {PTHREAD_MUTEX_INITIALIZER, -LOG_INTERVAL_MS, 0, 0};

/*
 * Counts a line at now when take is set, and logs how many the last
 * interval left out, if it is over. True if the line may be shown.
 */
static bool mhd_quota_take(int64_t now, bool take)
{
	unsigned long left_out = 0;
	bool show = false;

	pthread_mutex_lock(&mhd_quota.lock);
	if (now - mhd_quota.window_ms >= LOG_INTERVAL_MS) {
		left_out = mhd_quota.dropped;
		mhd_quota.window_ms = now;
		mhd_quota.shown = mhd_quota.dropped = 0;
	}
	if (take) {
		show = mhd_quota.shown < LOG_BURST;
		if (show)
			mhd_quota.shown++;
		else
			mhd_quota.dropped++;
	}
	pthread_mutex_unlock(&mhd_quota.lock);
	if (left_out)
		log_warn(
		        COMPONENT,
		        "libmicrohttpd: messages=%lu not shown (at most %d every %ds)",
		        left_out, LOG_BURST, LOG_INTERVAL_MS / 1000);
	return show;
}

/* libmicrohttpd's own messages, one log line each, within mhd_quota. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	if (!mhd_quota_take(now_ms(), true))
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	log_warn(COMPONENT, "libmicrohttpd: %s", line);
}

/*
 * The most connections this process can hold: [ingress] max_connections,
 * after raising the soft open-file limit towards it, or less (logged) if
 * the hard limit is lower.
 */
static unsigned connection_limit(const struct ingress_conf *ic)
{
	rlim_t want = (rlim_t)ic->max_connections + FD_SPARE;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= want)
		return (unsigned)ic->max_connections;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
	                      ? want
	                      : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) || getrlimit(RLIMIT_NOFILE, &rl))
		return (unsigned)ic->max_connections;
	if (rl.rlim_cur >= want)
		return (unsigned)ic->max_connections;
	want = rl.rlim_cur > 2 * FD_SPARE ? rl.rlim_cur - FD_SPARE
	                                  : rl.rlim_cur / 2;
	log_warn(
	        COMPONENT,
	        "taking connections=%llu, not max_connections=%lld: the open-file limit is %llu",
	        (unsigned long long)want, (long long)ic->max_connections,
	        (unsigned long long)rl.rlim_cur);
	return (unsigned)want;
}

int ingress_http_start(struct ingress *in, char *err, size_t errlen)
{
	const struct ingress_conf *ic = &in->conf->app->ingress;
	unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
	                 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	struct sockaddr_in a4 = {.sin_family = AF_INET};
	const struct sockaddr *sa = (const struct sockaddr *)&a4;
	unsigned timeout = (unsigned)((ic->request_timeout + 999) / 1000);

	a4.sin_port = a6.sin6_port = htons((uint16_t)ic->port);
	if (inet_pton(AF_INET6, ic->listen, &a6.sin6_addr) == 1) {
		sa = (const struct sockaddr *)&a6;
		flags |= MHD_USE_DUAL_STACK;
	} else if (inet_pton(AF_INET, ic->listen, &a4.sin_addr) != 1) {
		snprintf(
		        err, errlen,
		        "[ingress] listen: \"%s\" is not an IPv4 or IPv6 address",
		        ic->listen);
		return -EINVAL;
	}
	for (size_t i = 0; i < ic->trusted_proxies.n; i++) {
		struct in6_addr a;

		if (request_addr_parse(ic->trusted_proxies.items[i], &a))
			continue;
		snprintf(
		        err, errlen,
		        "[ingress] trusted_proxies: \"%s\" is not an IPv4 or IPv6 address",
		        ic->trusted_proxies.items[i]);
		return -EINVAL;
	}
	in->daemon = MHD_start_daemon(
	        flags, (uint16_t)ic->port, NULL, NULL, on_request, in,
	        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
	        sa, MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
	        MHD_OPTION_CONNECTION_TIMEOUT, timeout,
	        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
	        MHD_OPTION_CONNECTION_LIMIT, connection_limit(ic),
	        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	        (unsigned)ic->max_connections_per_ip,
	        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)ic->threads,
	        MHD_OPTION_NOTIFY_CONNECTION, on_connection, in,
	        MHD_OPTION_NOTIFY_COMPLETED, on_completed, in, MHD_OPTION_END);
	if (!in->daemon) {
		snprintf(
		        err, errlen,
		        "unable to listen on %s port %lld (the reason is logged above)",
		        ic->listen, (long long)ic->port);
		return -EADDRINUSE;
	}
	log_info(COMPONENT,
	         "listening on %s port %lld threads=%lld reply_to=%s",
	         ic->listen, (long long)ic->port, (long long)ic->threads,
	         in->reply_to);
	return 0;
}

int ingress_http_start_admin(struct ingress *in, char *err, size_t errlen)
{
	const struct ingress_conf *ic = &in->conf->app->ingress;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
	                 MHD_USE_ITC;
	struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
	struct sockaddr_in a4 = {.sin_family = AF_INET};
	const struct sockaddr *sa = (const struct sockaddr *)&a4;

	if (!ic->admin_port)
		return 0;
	a4.sin_port = a6.sin6_port = htons((uint16_t)ic->admin_port);
	if (inet_pton(AF_INET6, ic->admin_listen, &a6.sin6_addr) == 1) {
		sa = (const struct sockaddr *)&a6;
		flags |= MHD_USE_DUAL_STACK;
	} else if (inet_pton(AF_INET, ic->admin_listen, &a4.sin_addr) != 1) {
		snprintf(
		        err, errlen,
		        "[ingress] admin_listen: \"%s\" is not an IPv4 or IPv6 address",
		        ic->admin_listen);
		return -EINVAL;
	}
	/* a few operators' scrapes: small and bounded */
	in->admin = MHD_start_daemon(
	        flags, (uint16_t)ic->admin_port, NULL, NULL, on_admin_request,
	        in, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
	        MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_LISTENING_ADDRESS_REUSE,
	        (unsigned)1, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
	        MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
	        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
	        MHD_OPTION_NOTIFY_CONNECTION, on_connection, in,
	        MHD_OPTION_NOTIFY_COMPLETED, on_completed, in, MHD_OPTION_END);
	if (!in->admin) {
		snprintf(
		        err, errlen,
		        "unable to listen on %s port %lld for [ingress] admin_port (the reason is logged above)",
		        ic->admin_listen, (long long)ic->admin_port);
		return -EADDRINUSE;
	}
	log_info(COMPONENT, "admin listener on %s port %lld", ic->admin_listen,
	         (long long)ic->admin_port);
	return 0;
}
