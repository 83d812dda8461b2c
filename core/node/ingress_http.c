/*
 * The HTTP API of the ingress (docs/design.md §3, §4), on libmicrohttpd with
 * a pool of [ingress] threads polling the connections:
 *
 *   POST /v1/jobs?pipeline=P | ?preset=NAME | ?renditions=P1;P2;...
 *        | ?presets=A;B;... [&wait=SECONDS]  (renditions.h)
 *        [&keyid=ID&expires=UNIX[&sha256=HEX]&sig=HEX]  (auth.c)
 *   GET  /v1/jobs/ID          the job's record
 *   GET  /v1/jobs/ID/result   the result image
 *   GET  /v1/jobs/ID/result/K the output K of a renditions job
 *   POST /v1/images, GET|HEAD|DELETE /v1/images/ID, GET|HEAD
 *        /v1/images/ID/PIPELINE_OR_PRESET  (ingress_images.c)
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
 *
 * This file is the daemons, the routing and each request's life, from its
 * first call to its completion. The routes' handlers are in
 * ingress_submit.c (POST /v1/jobs), ingress_jobs.c (GET /v1/jobs/...),
 * ingress_health.c and ingress_page.c; what they answer with in
 * ingress_answer.c; suspended requests in ingress_wait.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "../base.h"
#include "../log.h"
#include "ingress.h"
#include "metrics.h"
#include "node_conf.h"
#include "pipeline.h"
#include "request_check.h"

#define COMPONENT "ingress"
#define FD_SPARE 128 /* descriptors beside connections: plugins, logs */

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
	ingress_fail(r, MHD_HTTP_BAD_REQUEST, "bad request", "%s", problem);
	return ingress_answer_fail_with(r, MHD_HTTP_HEADER_CONNECTION, "close");
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
	        "%s %s status=%u bytes=%zu in=%llu ms=%lld client=%s request_id=%s%s%s%s%s%s%s%s%s",
	        r->method, r->path, r->status, r->out_bytes,
	        (unsigned long long)r->received,
	        (long long)(now_ms() - r->start_ms), peer, r->request_id,
	        q.len ? " query=\"" : "", q.buf, q.len ? "\"" : "",
	        r->id[0] ? " id=" : "", r->id, r->image[0] ? " image=" : "",
	        r->image, aborted ? " aborted=yes" : "");
}

/* /v1/images[/ID[/VARIANT]] (ingress_images.c): the route, r->image (""
 * if not an id) and r->variant (the rest, decoded). */
static bool route_images(struct request *r, const char *url)
{
	const char *id = url + 11, *slash;

	r->route = ROUTE_IMAGES;
	if (strcmp(url, "/v1/images") == 0)
		return true;
	slash = strchr(id, '/');
	if (slash == id || !*id)
		return false;
	r->route = slash && slash[1] ? ROUTE_VARIANT : ROUTE_IMAGE;
	if ((slash ? (size_t)(slash - id) : strlen(id)) == JOB_ID_LEN) {
		memcpy(r->image, id, JOB_ID_LEN);
		r->image[JOB_ID_LEN] = '\0';
		if (!job_id_valid(r->image))
			r->image[0] = '\0';
	}
	if (r->route == ROUTE_VARIANT && !(r->variant = strdup(slash + 1)))
		r->image[0] = '\0'; /* out of memory: answered as a bad id */
	return true;
}

/* The methods route takes, for 405's Allow. */
static const char *methods_of(enum ingress_route route)
{
	switch (route) {
	case ROUTE_SUBMIT:
	case ROUTE_IMAGES: return "POST";
	case ROUTE_IMAGE: return "GET, HEAD, DELETE";
	default: return "GET, HEAD";
	}
}

/* True if method is one of allow's ("GET, HEAD"). */
static bool method_allowed(const char *allow, const char *method)
{
	size_t n = strlen(method);

	for (const char *p = allow; *p; p += strspn(p, ", ")) {
		size_t len = strcspn(p, ", ");

		if (len == n && strncmp(p, method, n) == 0)
			return true;
		p += len;
	}
	return false;
}

/* Finds the route of url; false for an unknown path. */
/* "/result" or "/result/K" (K up to 3 digits: a renditions job's
 * output K, renditions.h) after a job's id, K into r. */
static bool result_path(struct request *r, const char *slash)
{
	const char *k = slash + 8;
	size_t n = 0;

	if (strncmp(slash, "/result", 7) != 0)
		return false;
	r->result_index = 0;
	if (!slash[7])
		return true;
	if (slash[7] != '/')
		return false;
	while (k[n] >= '0' && k[n] <= '9' && n < 4)
		n++;
	if (!n || n > 3 || k[n])
		return false;
	r->result_index = strtol(k, NULL, 10);
	return true;
}

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
	if (strcmp(url, "/v1/images") == 0 ||
	    strncmp(url, "/v1/images/", 11) == 0)
		return route_images(r, url);
	if (strncmp(url, "/v1/jobs/", 9) != 0)
		return false;
	id = url + 9;
	slash = strchr(id, '/');
	if (slash && !result_path(r, slash))
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
	const char *allow;
	bool post, image;

	if (!route(r, url) || !route_here(r))
		return ingress_fail_now(r, MHD_HTTP_NOT_FOUND, "not found",
		                        "no such path: %s", r->path);
	post = r->route == ROUTE_SUBMIT;
	image = r->route == ROUTE_IMAGES;
	allow = methods_of(r->route);
	if (!method_allowed(allow, method)) {
		ingress_fail(r, MHD_HTTP_METHOD_NOT_ALLOWED,
		             "method not allowed", "%s %s: use %s", r->method,
		             r->path, allow);
		return ingress_answer_fail_with(r, MHD_HTTP_HEADER_ALLOW,
		                                allow);
	}
	if ((post || image || r->route == ROUTE_PRESETS ||
	     r->route == ROUTE_CHECK) &&
	    !auth_api_key(r))
		return ingress_fail_now(r, MHD_HTTP_UNAUTHORIZED,
		                        "unauthorized",
		                        "missing or unknown X-Api-Key");
	if (post && atomic_load(&r->in->metrics->draining))
		return ingress_fail_now(
		        r, MHD_HTTP_SERVICE_UNAVAILABLE, "draining",
		        "this node is draining (imgnodectl drain): no new jobs; try another");
	if (post) { /* counted until completed: a drain waits for it */
		r->submitting = true;
		atomic_fetch_add(&r->in->metrics->submitting, 1);
	}
	if ((r->route == ROUTE_JOB || r->route == ROUTE_RESULT ||
	     r->route == ROUTE_IMAGE || r->route == ROUTE_VARIANT) &&
	    auth_read(r, url))
		return ingress_answer_fail(r);
	switch (r->route) {
	case ROUTE_SUBMIT:
	case ROUTE_IMAGES: client_of(r); return ingress_submit_begin(r);
	case ROUTE_IMAGE:
	case ROUTE_VARIANT: client_of(r); return ingress_images_get(r);
	case ROUTE_JOB:
	case ROUTE_RESULT: return ingress_jobs_get(r);
	case ROUTE_HEALTHZ: return ingress_health_live(r);
	case ROUTE_READYZ: return ingress_health_readyz(r);
	case ROUTE_PRESETS: return ingress_page_presets(r);
	case ROUTE_CHECK: return ingress_page_check(r);
	case ROUTE_PAGE: return ingress_page_file(r, url);
	case ROUTE_METRICS: return ingress_health_metrics(r);
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
		ingress_ascii_only(r->method);
		ingress_ascii_only(r->path);
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
	case PHASE_RESUMED: return ingress_answer_from_record(r);
	case PHASE_IO_DONE: r->phase = PHASE_ANSWERED; return r->io_next(r);
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
	ingress_waiter_cancel(in, r); /* closed while suspended */
	access_line(r, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK);
	if (r->pp)
		MHD_destroy_post_processor(r->pp);
	/* a kept-alive connection: the next request begins */
	ingress_conn_next_request(r);
	if (r->submitting)
		atomic_fetch_sub(&in->metrics->submitting, 1);
	ingress_upload_release(r);
	ingress_io_free(r->io_op); /* closed before it went on */
	ingress_io_free(r->job_op);
	ingress_submit_free(r);
	pipeline_free(r->pl);
	EVP_MD_CTX_free(r->sha);
	free(r->form_pipeline);
	free(r->variant);
	free(r);
	*ctx = NULL;
	atomic_fetch_sub(&in->active, 1);
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
	        MHD_OPTION_EXTERNAL_LOGGER, ingress_conn_mhd_log, NULL,
	        MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_LISTENING_ADDRESS_REUSE,
	        (unsigned)1, MHD_OPTION_CONNECTION_TIMEOUT, timeout,
	        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024),
	        MHD_OPTION_CONNECTION_LIMIT, connection_limit(ic),
	        MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	        (unsigned)ic->max_connections_per_ip,
	        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)ic->threads,
	        MHD_OPTION_NOTIFY_CONNECTION, ingress_conn_notify, in,
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
	/* suspend/resume: /metrics waits for the queue depths suspended */
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG |
	                 MHD_USE_ITC | MHD_ALLOW_SUSPEND_RESUME;
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
	        in, MHD_OPTION_EXTERNAL_LOGGER, ingress_conn_mhd_log, NULL,
	        MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_LISTENING_ADDRESS_REUSE,
	        (unsigned)1, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
	        MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
	        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024),
	        MHD_OPTION_NOTIFY_CONNECTION, ingress_conn_notify, in,
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
