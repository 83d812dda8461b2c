/*
 * The ingress child's insides, shared by its files and by nothing else:
 * ingress.c is the process (set-up, the reply loop, the table of jobs it
 * published, shutdown), ingress_http.c the HTTP daemon, routing, answers
 * and reading jobs, ingress_submit.c POST /v1/jobs, ingress_page.c the
 * upload page's files and the calls only it makes.
 *
 * Threads: libmicrohttpd's pool of [ingress] threads runs the requests
 * (each connection stays on one of them), and the main thread waits for
 * replies and signals and closes connections past their deadline. Plugins
 * are not thread-safe, so every storage and transport call holds io;
 * /healthz and /metrics never take it, so a request stuck in a plugin call
 * delays only those that need one. jobs guards the table of published
 * jobs, the suspended requests waiting on them and the stopping flag;
 * conns the list of open connections. Lock order: io, then jobs, then
 * conns.
 */
#ifndef IMGNODE_INGRESS_H
#define IMGNODE_INGRESS_H

#include <jansson.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../plugin.h"
#include "job.h"
#include "quota.h"

struct conf;
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
	struct request *waiter; /* a suspended POST ?wait=, or NULL */
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
	pthread_mutex_t io;
	pthread_mutex_t jobs;
	struct pending **buckets; /* under jobs */
	size_t nbuckets;
	size_t npending;
	struct quota *quota; /* under jobs: jobs in flight per client */
	struct request *waiters; /* under jobs */
	bool stopping; /* under jobs: waiters answer now, none suspend */
	atomic_bool quiescing; /* SIGTERM seen: responses close connections */
	atomic_int active; /* requests begun and not completed */
	int kick_fd; /* eventfd: the HTTP thread used the transport */
	pthread_mutex_t conns;
	struct ingress_conn *conn_list; /* under conns */
	uint64_t nconns; /* under conns: open */
	uint64_t cut_total; /* under conns: closed at request_deadline */
	uint64_t cut_since_log; /* under conns: closed, not yet logged */
	int64_t cut_logged_ms; /* under conns */
	_Atomic int64_t upload_bytes; /* reserved by uploads in progress */
	_Atomic int uploads; /* uploads holding a reservation */
};

/* Tells the main thread to look for replies now (after a transport call
 * of the HTTP thread, which may have buffered one). */
void ingress_kick(struct ingress *in);

/*
 * Records a job about to be published and counts it in flight, for the
 * node and for client. 0, -EDQUOT (client has [ingress]
 * max_inflight_per_client jobs in flight already) or -ENOMEM. Takes jobs.
 */
int ingress_pending_add(struct ingress *in, const char *id, const char *client);

/* The jobs in flight of client on this process. Takes jobs. */
int64_t ingress_client_inflight(struct ingress *in, const char *client);

/*
 * Forgets a job: its reply came, its record says it finished, or its
 * publish failed. Uncounts it and wakes its waiter. Takes jobs.
 */
void ingress_pending_finish(struct ingress *in, const char *id);

/* The entry of id, or NULL. The caller holds jobs. */
struct pending *ingress_pending_find(struct ingress *in, const char *id);

/*
 * Starts the HTTP daemon on [ingress] listen:port. 0 or -errno with a
 * reason in err (-EINVAL: a bad address, which restarting won't fix).
 */
int ingress_http_start(struct ingress *in, char *err, size_t errlen);

/* Resumes a suspended request so it answers from the job's record. The
 * caller holds jobs. */
void ingress_http_wake(struct ingress *in, struct request *r);

/* Wakes the waiters whose wait is over at now, or all of them. Takes
 * jobs. */
void ingress_http_expire(struct ingress *in, int64_t now, bool all);

/*
 * Starts the admin listener on [ingress] admin_listen:admin_port (if
 * set): /healthz, /readyz and /metrics only. 0 or -errno with a reason in
 * err.
 */
int ingress_http_start_admin(struct ingress *in, char *err, size_t errlen);

/*
 * Shuts down the connections whose request began arriving more than
 * [ingress] request_deadline before now (libmicrohttpd then closes them)
 * and logs how many, at most one line per interval. Takes conns.
 */
void ingress_http_sweep(struct ingress *in, int64_t now);

/* ---- one request (ingress_http.c and ingress_submit.c) ---- */

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
};

enum ingress_phase {
	PHASE_HEADERS, /* a request without a body to read: answer next call */
	PHASE_BODY, /* reading an upload */
	PHASE_WAITING, /* suspended until the job finishes or the wait ends */
	PHASE_RESUMED, /* woken: answer from the record */
	PHASE_ANSWERED,
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
	char request_id[JOB_REQUEST_ID_MAX + 1]; /* X-Request-ID, or made up */
	bool admin; /* came to the admin listener */
	bool submitting; /* counted in metrics->submitting */
	char key_id[72]; /* the X-Api-Key's ID; "" without api_keys */
	bool signed_read; /* a signed GET: reads without an API key */
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
	int64_t wait_ms;
	int64_t deadline_ms;
	struct pending *pend; /* under jobs, while waiting */
	struct request *wprev, *wnext;
};

/* Queues resp (len body bytes) and counts it; destroys resp. */
enum MHD_Result ingress_respond(struct request *r, unsigned status,
                                struct MHD_Response *resp, size_t len);

/* Notes a failure to answer later with ingress_answer_fail; -1. */
int ingress_fail(struct request *r, unsigned status, const char *error,
                 const char *fmt, ...) IMGNODE_PRINTF(4, 5);
enum MHD_Result ingress_answer_fail(struct request *r);
#define ingress_fail_now(r, ...)                                               \
	(ingress_fail((r), __VA_ARGS__), ingress_answer_fail(r))

/* Answers j (stolen; NULL: a 500) as JSON with status. */
enum MHD_Result ingress_answer_json(struct request *r, unsigned status,
                                    json_t *j);

/* 202 {"id", "status"} with Location: the job is accepted. */
enum MHD_Result ingress_answer_accepted(struct request *r, const char *status);

/*
 * Answers from the record rec: 200 with the result when done, 422 when
 * failed; otherwise 202 after a wait (waited), 409 for GET .../result.
 */
enum MHD_Result ingress_answer_job(struct request *r, json_t *rec, bool waited);

/* Suspends r until its job's reply or the end of its wait, or answers
 * from the record now if the job is already over. */
enum MHD_Result ingress_wait(struct request *r);

/* Gives back r's share of the upload memory and frees its body. */
void ingress_upload_release(struct request *r);

/* POST /v1/jobs: the first call (before the body), each piece of the
 * body, and the last call. */
enum MHD_Result ingress_submit_begin(struct request *r);
enum MHD_Result ingress_submit_body(struct request *r, const char *data,
                                    size_t *size);
enum MHD_Result ingress_submit_finish(struct request *r);

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

/* GET /v1/jobs/...: a signed URL or an API key. 0 or -1. */
int auth_read(struct request *r, const char *path);

/* True if r may read the job of record rec (its key submitted it, or r
 * is signed); others are answered as if there were no such job. */
bool auth_may_read(const struct request *r, json_t *rec);

/* True unless the request signed a sha256= other than sha. */
bool auth_sha_ok(const struct request *r, const unsigned char sha[32]);

#endif
