/*
 * The ingress child's insides, shared by its files and by nothing else.
 * Top-down, each file calling only those below it:
 *
 *   ingress.c          the process: set-up, the loop that drains replies
 *                      and sweeps, shutdown
 *   ingress_http.c     the HTTP daemons, routing, each request's life
 *   ingress_submit.c   POST /v1/jobs            } the routes' handlers
 *   ingress_jobs.c     GET /v1/jobs/ID[/result] }
 *   ingress_images.c   /v1/images[/ID[/VARIANT]] }
 *   ingress_health.c   /healthz, /readyz, /metrics
 *   ingress_page.c     the upload page's files and calls
 *   auth.c             API keys and signed requests
 *   ingress_wait.c     waiting: the jobs published, the requests
 *                      suspended on them
 *   ingress_answer.c   answers: JSON, errors, a job's record, results
 *   ingress_cache.c    results' HTTP caching: ETag, Cache-Control,
 *                      Last-Modified, 304
 *   ingress_conn.c     connections and their deadline; libmicrohttpd's
 *                      log lines
 *
 *   ingress_io.c       the storage and transport calls, each run on
 *                      its dependency's executor
 *
 * Threads: libmicrohttpd's pool of [ingress] threads runs the requests
 * (each connection stays on one of them), and the main thread waits for
 * signals, heartbeats the supervisor, wakes waiters whose wait is over and
 * closes connections past their deadline. No plugin is called on either:
 * one executor thread per dependency (executor.h) makes every storage
 * call, another every transport call and takes the replies, and a request
 * waits for its call, its connection suspended (its thread serves on), at
 * most [ingress] dependency_wait; a dependency that did not answer is
 * refused at once until it answers a ping again. So an outage delays only
 * the requests that need the missing dependency, by at most one
 * dependency_wait each, and never the heartbeat. jobs guards the
 * table of published jobs, the suspended requests waiting on them and the
 * stopping flag; conns the list of open connections. Lock order: jobs,
 * then conns; an executor's lock is never held across a plugin call nor
 * with these.
 */
#ifndef IMGNODE_INGRESS_H
#define IMGNODE_INGRESS_H

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "../plugin.h"
#include "executor.h"
#include "idempotency.h"
#include "job.h"
#include "quota.h"

struct conf;
struct image_info;
struct preset;
struct metrics;
struct node;
struct pipeline;
struct request;
struct storer;

/*
 * One open connection, from accept to close (libmicrohttpd's socket
 * context), for the deadline sweep. Under conns.
 */
struct ingress_conn {
	int fd;
	int64_t since_ms; /* its request began arriving; -1: being answered */
	bool cut; /* shut down by the sweep */
	struct ingress_conn *prev, *next;
};

/* A job this process published and has seen no reply for. */
struct pending {
	char id[JOB_ID_LEN + 1];
	int64_t since_ms; /* accepted; monotonic */
	int64_t checked_ms; /* last look at its record; monotonic */
	bool watch; /* published elsewhere (a variant): not counted, and
	             * forgotten once nobody waits on it */
	int waiters; /* requests suspended on it */
	char client[QUOTA_CLIENT_MAX]; /* who it counts against */
	struct pending *next;
};

struct ingress {
	struct node *node;
	const struct conf *conf;
	struct metrics *metrics;
	_Atomic int64_t *inflight; /* this process's slot in metrics */
	struct plugin_set set;
	struct storer *storer; /* stores originals beside set's storage */
	struct prober_pool *probers; /* read uploads' headers (prober.h) */
	char reply_to[128]; /* this process's reply queue */
	struct MHD_Daemon *daemon;
	struct MHD_Daemon *admin; /* [ingress] admin_port, or NULL */
	struct executor storage_ex; /* every call of set.storage */
	struct executor transport_ex; /* every call of set.transport */
	pthread_mutex_t jobs;
	struct pending **buckets; /* under jobs */
	size_t nbuckets;
	size_t npending;
	struct quota *quota; /* under jobs: jobs in flight per client */
	struct request *waiters; /* under jobs */
	bool stopping; /* under jobs: waiters answer now, none suspend */
	atomic_bool quiescing; /* SIGTERM seen: responses close connections */
	atomic_int active; /* requests begun and not completed */
	pthread_mutex_t conns;
	struct ingress_conn *conn_list; /* under conns */
	uint64_t nconns; /* under conns: open */
	uint64_t cut_total; /* under conns: closed at request_deadline */
	uint64_t cut_since_log; /* under conns: closed, not yet logged */
	int64_t cut_logged_ms; /* under conns */
	_Atomic int64_t upload_bytes; /* reserved by uploads in progress */
	_Atomic int uploads; /* uploads holding a reservation */
};

/* ---- one request ---- */

enum ingress_route {
	ROUTE_SUBMIT,
	ROUTE_JOB,
	ROUTE_RESULT,
	ROUTE_HEALTHZ,
	ROUTE_READYZ,
	ROUTE_METRICS,
	ROUTE_PRESETS, /* ingress_page.c: GET /v1/presets */
	ROUTE_CHECK, /* GET /v1/pipeline/check */
	ROUTE_PAGE, /* any other path outside /v1/: the page's files */
	ROUTE_IMAGES, /* ingress_images.c: POST /v1/images */
	ROUTE_IMAGE, /* GET, HEAD, DELETE /v1/images/ID */
	ROUTE_VARIANT, /* GET /v1/images/ID/PIPELINE_OR_PRESET */
};

enum ingress_phase {
	PHASE_HEADERS, /* a request without a body to read: answer next call */
	PHASE_BODY, /* reading an upload */
	PHASE_WAITING, /* suspended until the job finishes or the wait ends */
	PHASE_RESUMED, /* woken: answer from the record */
	PHASE_IO, /* suspended until its storage or transport call ends */
	PHASE_IO_DONE, /* woken: go on with io_next */
	PHASE_ANSWERED,
};

/* What a done job's result is, read with its record (ingress_io.c). */
struct ingress_result {
	int ret; /* 0: there, or -errno */
	char key[IMGNODE_KEY_MAX + 1];
	uint64_t size; /* its size, to read a piece at a time */
	int64_t mtime_ms; /* its last write (stat), ms since the epoch; 0:
	                   * unknown */
	void *buf; /* or, from a storage without ranged reads, whole */
	size_t len;
};

/* One request, from its first call to its completion (MHD's con_cls). */
struct request {
	struct ingress *in;
	struct MHD_Connection *conn;
	struct ingress_conn *cn; /* its connection's entry, or NULL */
	enum ingress_route route;
	enum ingress_phase phase;
	char method[12];
	char path[128]; /* printable ASCII, for logs and messages */
	char id[JOB_ID_LEN + 1];
	char image[JOB_ID_LEN + 1]; /* /v1/images/ID: "" if not an id */
	char *variant; /* /v1/images/ID/VARIANT, decoded; ours */
	bool vary_accept; /* its answer varies with Accept (format auto) */
	char request_id[JOB_REQUEST_ID_MAX + 1]; /* X-Request-ID, or made up */
	const char *callback; /* ?callback=URL, checked (libmicrohttpd's) */
	bool admin; /* came to the admin listener */
	bool submitting; /* counted in metrics->submitting */
	char key_id[72]; /* the X-Api-Key's ID; "" without api_keys */
	bool signed_read; /* a signed GET: reads without an API key */
	int64_t signed_expires; /* its expires= (UNIX seconds); 0: none */
	bool want_sha; /* a signed sha256= the upload must match */
	unsigned char signed_sha[32];
	int64_t start_ms;
	unsigned status;
	size_t out_bytes;
	/* a failure found before it can be answered */
	unsigned fail_status;
	const char *fail_error;
	const char *fail_limit; /* the config key of a 429, or NULL */
	char fail_detail[512];
	/* who the request counts against: "key:ID" or an address */
	char client[QUOTA_CLIENT_MAX];
	/* POST /v1/jobs */
	struct MHD_PostProcessor *pp;
	bool multipart, too_big, bad_form, over_budget;
	const char *form_why; /* why bad_form: for the 400's detail */
	char *body;
	size_t len, cap;
	size_t reserved; /* of in->upload_bytes, for body */
	EVP_MD_CTX *sha; /* the image's SHA-256, hashed as it arrives */
	uint64_t received;
	char *form_pipeline;
	size_t form_len;
	struct pipeline *pl;
	/* ?renditions= or ?presets=: nrend pipelines, owned here; pl is
	 * then rend[0], borrowed */
	struct pipeline **rend;
	size_t nrend;
	long result_index; /* GET .../result/K: K (0 for .../result) */
	int64_t wait_ms;
	int64_t deadline_ms;
	struct pending *pend; /* under jobs, while waiting */
	struct request *wprev, *wnext;
	/* a storage or transport call (ingress_io_begin) */
	enum MHD_Result (*io_next)(struct request *r);
	struct exec_op
	        *io_op; /* the ended call's; NULL after -ETIME, -ECANCELED */
	int io_ret;
	struct exec_op
	        *job_op; /* POST: the stored job, until it is published */
	/* POST /v1/jobs with an Idempotency-Key (idempotency.h): the key
	 * ("": none), the hash of what defines its job besides the upload,
	 * and whether the answer is another request's job */
	char idem_key[IDEM_KEY_MAX + 1];
	unsigned char idem_def[32];
	bool idem_replayed;
};

/* ---- the HTTP daemons (ingress_http.c) ---- */

/*
 * Starts the HTTP daemon on [ingress] listen:port. 0 or -errno with a
 * reason in err (-EINVAL: a bad address, which restarting won't fix).
 */
int ingress_http_start(struct ingress *in, char *err, size_t errlen);

/*
 * Starts the admin listener on [ingress] admin_listen:admin_port (if
 * set): /healthz, /readyz and /metrics only. 0 or -errno with a reason in
 * err.
 */
int ingress_http_start_admin(struct ingress *in, char *err, size_t errlen);

/* ---- POST /v1/jobs (ingress_submit.c) ---- */

/* The first call (before the body), each piece of the body, and the last
 * call. */
enum MHD_Result ingress_submit_begin(struct request *r);
enum MHD_Result ingress_submit_body(struct request *r, const char *data,
                                    size_t *size);
enum MHD_Result ingress_submit_finish(struct request *r);

/* Frees r's renditions (ingress_submit.c), and pl with them. */
void ingress_submit_free(struct request *r);

/* Gives back r's share of the upload memory and frees its body
 * (ingress_store.c, with the two below). */
void ingress_upload_release(struct request *r);

/* An upload taken from its request by the op that stores it, with its
 * share of [ingress] upload_memory, so that the op can finish alone if
 * the request stops waiting. */
struct ingress_upload {
	struct ingress *in;
	char *body;
	size_t len, reserved; /* its bytes, and of in->upload_bytes */
};

/* Moves r's body and its reservation to up. */
void ingress_upload_take(struct request *r, struct ingress_upload *up);

/* Gives back up's reservation and frees its body. */
void ingress_upload_free(struct ingress_upload *up);

/* The SHA-256 of r's upload (hashed as it arrived) into sha, checked
 * against a signed sha256=. 0, or -1 with a 500 or 403 noted. */
int ingress_upload_sha(struct request *r, unsigned char sha[32]);

/*
 * The pipeline of r (r->pl) from text, or from the preset named text:
 * parsed and checked against the loaded filters. 0, or -1 with a 400
 * noted. Refuses a pipeline when [ingress] presets_only is set.
 */
int ingress_pipeline_resolve(struct request *r, const char *text, bool preset);

/* The preset called name, or NULL. */
const struct preset *ingress_preset_find(const struct conf *conf,
                                         const char *name);

/*
 * The common check of r->pl against the image whose header is info, for
 * a job of POST /v1/jobs or a variant: a final auto step replaced by the
 * encoder negotiated from the request's Accept and the image
 * (negotiate_pipeline; r->vary_accept set), then every step's size
 * predicted from the header (cost.c) against [limits], nothing decoded.
 * 0, or -1 with a 422 noted.
 */
int ingress_pipeline_admit(struct request *r, const struct image_info *info);

/*
 * A job's record as it starts (queued, nothing done yet), of r's pipeline
 * and id, for an original of SHA-256 hex (64 digits), bytes long, whose
 * header is info, its result to be stored at result. New, or NULL
 * (ingress_store.c).
 */
json_t *ingress_job_record(struct request *r, const char *hex, uint64_t bytes,
                           const char *result, const struct image_info *info);

/* ---- /v1/images (ingress_images.c) ---- */

/* POST /v1/images, its upload read and probed (ingress_submit.c): stores
 * the image, or finds it stored; answers its metadata. */
enum MHD_Result ingress_images_store(struct request *r,
                                     const struct image_info *info);

/* GET, HEAD, DELETE /v1/images/ID, GET /v1/images/ID/VARIANT. */
enum MHD_Result ingress_images_get(struct request *r);

/* ---- GET /v1/jobs/ID[/result] (ingress_jobs.c) ---- */

/* The record of r->id, or with ROUTE_RESULT its result. */
enum MHD_Result ingress_jobs_get(struct request *r);

/* ---- health (ingress_health.c) ---- */

/* GET /healthz, /livez: 200 "ok". */
enum MHD_Result ingress_health_live(struct request *r);

/* GET /readyz: 200 when the transport and the storage are up (their
 * breakers, never a call), else 503 naming what is down. */
enum MHD_Result ingress_health_readyz(struct request *r);

/* GET /metrics: the Prometheus text. */
enum MHD_Result ingress_health_metrics(struct request *r);

/* ---- the upload page (ingress_page.c) ---- */

/* GET of a static file of [ingress] www_dir (url "/": index.html); 404
 * for anything not served. */
enum MHD_Result ingress_page_file(struct request *r, const char *url);

/* GET /v1/presets: the presets' names and canonical pipelines. */
enum MHD_Result ingress_page_presets(struct request *r);

/* GET /v1/pipeline/check?pipeline=P: {"canonical"} or 400 with the
 * parser's reason and its "column". */
enum MHD_Result ingress_page_check(struct request *r);

/* ---- authentication (auth.c, docs/signing.md) ---- */

/*
 * X-Api-Key is one of [ingress] api_keys (or none are set); fills
 * r->key_id with its ID.
 */
bool auth_api_key(struct request *r);

/*
 * The first call of POST /v1/jobs: the query's pipeline or preset signed
 * as [ingress] hmac_keys (v2) or hmac_key (v1) require. 0, or -1 with the
 * failure noted. The API key is checked before, by auth_api_key.
 */
int auth_submit(struct request *r, const char *path, const char *pipeline,
                const char *preset);

/* A pipeline from a form part, after the body (v1 only). 0 or -1. */
int auth_form(struct request *r, const char *pipeline);

/* POST /v1/images: signed (v2, over the method and path, with an
 * optional sha256=) as [ingress] hmac_keys require. 0 or -1. */
int auth_upload(struct request *r);

/* GET /v1/jobs/..., /v1/images/... (DELETE too): a signed URL or an API
 * key. 0 or -1. */
int auth_read(struct request *r, const char *path);

/* True if r may read the job of record rec (its key submitted it, or r
 * is signed); others are answered as if there were no such job. */
bool auth_may_read(const struct request *r, json_t *rec);

/* True unless the request signed a sha256= other than sha. */
bool auth_sha_ok(const struct request *r, const unsigned char sha[32]);

/* ---- waiting (ingress_wait.c) ---- */

/* Sizes and allocates the table of jobs and the quota. 0 or -ENOMEM
 * (then nothing is left allocated). */
int ingress_pending_init(struct ingress *in);

/* Frees what ingress_pending_init allocated (the entries: ..._clear). */
void ingress_pending_free(struct ingress *in);

/*
 * Records a job about to be published and counts it in flight, for the
 * node and for client. 0, -EDQUOT (client has [ingress]
 * max_inflight_per_client jobs in flight already), -EUSERS (the node has
 * max_inflight) or -ENOMEM. Takes jobs.
 */
int ingress_pending_add(struct ingress *in, const char *id, const char *client);

/*
 * Watches a job another request or node published (a variant's), to wake
 * the requests that wait on it when its record says it is over (read
 * every half second by the ingress's sweep); not counted in flight, and
 * forgotten by the sweep once no request waits on it. A job in the table
 * already is left as it is. 0 or -ENOMEM. Takes jobs.
 */
int ingress_pending_watch(struct ingress *in, const char *id);

/* The jobs in flight of client on this process. Takes jobs. */
int64_t ingress_client_inflight(struct ingress *in, const char *client);

/*
 * Forgets a job: its reply came, its record says it finished, or its
 * publish failed. Uncounts it and wakes its waiter. Takes jobs.
 */
void ingress_pending_finish(struct ingress *in, const char *id);

/*
 * Copies into ids at most max ids of jobs accepted and last looked at at
 * least age ms before now (watched ones: half a second), and notes them
 * looked at now; forgets watched jobs nobody waits on. Returns how many.
 * Takes jobs.
 */
size_t ingress_pending_stale(struct ingress *in, int64_t now, int64_t age,
                             char (*ids)[JOB_ID_LEN + 1], size_t max);

/* At exit: nobody will hear about the jobs left, so they no longer
 * count. Takes jobs. */
void ingress_pending_clear(struct ingress *in);

/*
 * Suspends r until its job's reply or the end of its wait (r->wait_ms):
 * true. False if its job is over already or the ingress is stopping: the
 * caller answers from the record. Takes jobs.
 */
bool ingress_wait_suspend(struct request *r);

/* Takes r off the waiters if it is one (its connection closed). Takes
 * jobs. */
void ingress_waiter_cancel(struct ingress *in, struct request *r);

/* Wakes the waiters whose wait is over at now, or all of them (and none
 * suspends after). Takes jobs. */
void ingress_waiters_expire(struct ingress *in, int64_t now, bool all);

/* ---- answers (ingress_answer.c) ---- */

/* Queues resp (len body bytes) and counts it; destroys resp. A NULL resp
 * (it could not be made) is answered 500. */
enum MHD_Result ingress_respond(struct request *r, unsigned status,
                                struct MHD_Response *resp, size_t len);

/* Notes a failure to answer later with ingress_answer_fail; -1. */
int ingress_fail(struct request *r, unsigned status, const char *error,
                 const char *fmt, ...) IMGNODE_PRINTF(4, 5);
enum MHD_Result ingress_answer_fail(struct request *r);
#define ingress_fail_now(r, ...)                                               \
	(ingress_fail((r), __VA_ARGS__), ingress_answer_fail(r))

/* ingress_answer_fail with one more header (NULL: none). */
enum MHD_Result ingress_answer_fail_with(struct request *r, const char *header,
                                         const char *value);

/* Answers j (stolen; NULL: a 500) as JSON with status. */
enum MHD_Result ingress_answer_json(struct request *r, unsigned status,
                                    json_t *j);

/* 202 {"id", "status"} with Location: the job is accepted. */
enum MHD_Result ingress_answer_accepted(struct request *r, const char *status);

/*
 * Answers from the record rec and its result res (read with it, taken:
 * freed here): 200 with the result when done, 422 when failed; otherwise
 * 202 after a wait (waited), 409 for GET .../result.
 */
enum MHD_Result ingress_answer_job(struct request *r, json_t *rec,
                                   struct ingress_result *res, bool waited);

/* After a wait: whatever the record of r->id says now (read first). */
enum MHD_Result ingress_answer_from_record(struct request *r);

/*
 * 503 for r, which needed ex's dependency and got ret from a call (what:
 * the step, for the detail): {"error": "storage unavailable" or
 * "transport unavailable", "detail": why it is down}, with Retry-After.
 */
enum MHD_Result ingress_unavailable(struct request *r, struct executor *ex,
                                    int ret, const char *what);
/* The same 503, noted to answer later with ingress_answer_fail; -1. */
int ingress_fail_unavailable(struct request *r, struct executor *ex, int ret,
                             const char *what);

/* A response for j (stolen), with a newline after it for terminals;
 * NULL if it could not be made. *len: its length. */
struct MHD_Response *ingress_json_response(json_t *j, size_t *len);

/* {"error": error, "detail": detail}, new, or NULL. */
json_t *ingress_error_json(const char *error, const char *detail);

/* X-Imgnode-Job: id, and Location: /v1/jobs/ID if location. */
void ingress_job_headers(struct MHD_Response *resp, const char *id,
                         bool location);

/* Replaces what is not printable ASCII in s (JSON strings must be
 * UTF-8). */
void ingress_ascii_only(char *s);

/* ---- HTTP caching of results (ingress_cache.c) ---- */

/*
 * True if r (a GET or HEAD) is conditional and the result res (there:
 * res->ret 0) matches it: If-None-Match lists its ETag (weakly) or is *,
 * or, without If-None-Match, If-Modified-Since is at or after its mtime.
 * Ask only once r may read it.
 */
bool ingress_cache_not_modified(const struct request *r,
                                const struct ingress_result *res);

/*
 * Adds to resp, the answer of a GET or HEAD with the result res (nothing
 * for another method), its ETag, Cache-Control and (not on a 304,
 * not_modified) Last-Modified.
 */
void ingress_cache_headers(const struct request *r, struct MHD_Response *resp,
                           const struct ingress_result *res, bool not_modified);

/* 304 for r with the headers of res, and no body. */
enum MHD_Result
ingress_cache_answer_not_modified(struct request *r,
                                  const struct ingress_result *res);

/* ---- connections (ingress_conn.c) ---- */

/* libmicrohttpd's notice of a connection accepted or closed
 * (MHD_OPTION_NOTIFY_CONNECTION; cls is the ingress). */
void ingress_conn_notify(void *cls, struct MHD_Connection *conn,
                         void **socket_ctx,
                         enum MHD_ConnectionNotificationCode code);

/* r is read: the deadline no longer applies to its connection (a wait
 * has wait_max, an answer the idle timeout). Takes conns. */
void ingress_conn_answering(struct request *r);

/* r completed on a kept-alive connection: the next request's deadline
 * begins now. Takes conns. */
void ingress_conn_next_request(struct request *r);

/*
 * Shuts down the connections whose request began arriving more than
 * [ingress] request_deadline before now (libmicrohttpd then closes them)
 * and logs how many, at most one line per interval. Takes conns.
 */
void ingress_conn_sweep(struct ingress *in, int64_t now);

/* libmicrohttpd's own messages (MHD_OPTION_EXTERNAL_LOGGER), one log
 * line each, a few per interval at most. */
void ingress_conn_mhd_log(void *cls, const char *fmt, va_list ap);

/* ---- storage and transport calls (ingress_io.c) ---- */

/* When a call begun now must have answered: now + dependency_wait, or
 * request_deadline if shorter. */
int64_t ingress_io_deadline(const struct ingress *in);

/*
 * Hands op (made below; NULL: out of memory) to ex and suspends r until
 * it ends, or ingress_io_deadline passes, or at once if ex's dependency
 * is down; then calls next(r) on r's HTTP thread with r->io_ret (op's
 * 0 or -errno, -ETIME: no answer in time, -ECANCELED: down, not tried)
 * and r->io_op (op, r's to free with ingress_io_free; NULL after -ETIME,
 * -ECANCELED). Returns what r's handler returns now.
 */
enum MHD_Result ingress_io_begin(struct request *r, struct executor *ex,
                                 struct exec_op *op,
                                 enum MHD_Result (*next)(struct request *r));

/* ingress_io_begin with its own deadline (a patient op's: /metrics). */
enum MHD_Result
ingress_io_begin_until(struct request *r, struct executor *ex,
                       struct exec_op *op, int64_t deadline,
                       enum MHD_Result (*next)(struct request *r));

/* Frees an op that ended (NULL is fine). */
void ingress_io_free(struct exec_op *op);

/* The storage's: the record of id and, with with_result, what its result
 * needs to be answered (a done job's). NULL if out of memory. */
struct exec_op *ingress_io_record_op(struct ingress *in, const char *id,
                                     bool with_result);

/* The same with the result, of output index of a renditions job
 * (renditions.h; 0 for a single job's own). */
struct exec_op *ingress_io_result_op(struct ingress *in, const char *id,
                                     long index);

/* What a record op read: the record (the caller's), or NULL with *ret;
 * res (may be NULL) gets the result's (free with ingress_result_free). */
json_t *ingress_io_record_take(struct exec_op *op, int *ret,
                               struct ingress_result *res);

/* On the storage's executor only: fills res for the done record rec.
 * The call's -errno that may say the storage is away, else 0. */
int ingress_io_result(struct ingress *in, json_t *rec,
                      struct ingress_result *res);

/* Frees what res holds. */
void ingress_result_free(struct ingress_result *res);

/* The storage's: deletes a and b (either may be NULL or ""); a refused
 * job's record (a, of job id) it cannot delete is marked failed. */
struct exec_op *ingress_io_delete_op(struct ingress *in, const char *id,
                                     const char *a, const char *b);

/* Adds key to what the delete op op (above) deletes, after a and b. */
void ingress_io_delete_also(struct exec_op *op, const char *key);

/* The storage's: puts the text body (taken) at key. NULL if out of
 * memory (body freed). */
struct exec_op *ingress_io_put_op(struct ingress *in, const char *key,
                                  char *body);

/* The transport's: publishes body (taken) to the jobs queue with our
 * reply queue. NULL if out of memory (body freed). */
struct exec_op *ingress_io_publish_op(struct ingress *in, char *body,
                                      size_t len);

/* The transport's, patient: the depths of the jobs and dead queues;
 * ..._take copies them out (ret: each one's 0 or -errno). */
struct exec_op *ingress_io_depth_op(struct ingress *in);
void ingress_io_depth_take(struct exec_op *op, uint64_t depth[2], int ret[2]);

/* Waiting on the calling thread (bounded): a piece of a result, within
 * ingress_io_deadline. 0 or -errno, -ETIME, -ECANCELED. */
int ingress_io_read(struct ingress *in, const char *key, uint64_t off,
                    void *buf, size_t max, size_t *got);

#endif
