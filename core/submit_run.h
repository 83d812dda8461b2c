/*
 * What submit.c (the command) and submit_http.c (the transfers) share: the
 * run and its tasks; submit_http.c's helpers; the command's output as
 * callbacks in the run, so calls go one way. Not an API.
 */
#ifndef IMGNODE_SUBMIT_RUN_H
#define IMGNODE_SUBMIT_RUN_H

#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "base.h"
#include "config.h"

#define SIGN_TTL 60 /* s: a signature's life (re-signed on each retry) */

/* A pipeline or preset to run each input through. */
struct pipe {
	const char *pipeline; /* one of the two */
	const char *preset;
	char tag[48]; /* in output names when there are several */
};

enum state { T_NEW, T_WAIT, T_RUN, T_DONE, T_FAILED, T_SKIPPED };

/* One input through one pipe. */
struct task {
	char *input; /* the file read */
	char *rel; /* output path under -o, no extension */
	const struct pipe *pipe;
	enum state state;
	bool polling; /* the job is accepted: GET its result */
	int attempts; /* retries used */
	int64_t not_before; /* T_WAIT: when to go again (ms, monotonic) */
	int64_t poll_ms, poll_until;
	char job[64];
	CURL *easy;
	FILE *in;
	struct curl_slist *headers;
	/* the answer being read */
	bool decided; /* its status is known (first byte of the body) */
	long code;
	int fd; /* a 200's body goes to tmp */
	char *tmp;
	char *body; /* any other body, up to ERR_BODY_MAX */
	size_t len;
	long retry_after; /* -1: none */
	char mime[64];
	uint64_t bytes;
	char *output; /* T_DONE: the file written */
	char *error; /* T_FAILED: why */
};

struct run {
	const char *url, *api_key, *outdir;
	char *hmac_id, *hmac_secret; /* --hmac-key ID:SECRET, split */
	struct pipe *pipes;
	size_t npipes;
	struct task *tasks;
	size_t ntasks, cap;
	int jobs, retries;
	long wait;
	bool json, tty;
	struct stat out_st;
	bool out_exists;
	CURLM *multi;
	size_t active; /* tasks out on the node */
	size_t done, failed, skipped;
	int64_t started, last_draw;
	char errbuf[CURL_ERROR_SIZE];
	/* the command's output, called by the transfers: a task ended; the
	 * progress bar may be redrawn (force: now) */
	void (*on_end)(struct run *run, const struct task *t);
	void (*on_progress)(struct run *run, bool force);
};

static inline const char *pipe_name(const struct pipe *p)
{
	return p->preset ? p->preset : p->pipeline;
}

/* Set by SIGINT or SIGTERM: the run stops, leaving no half file. */
extern volatile sig_atomic_t submit_interrupted;

/* A formatted string the caller frees; NULL only without memory. */
char *submit_printf(const char *fmt, ...) IMGNODE_PRINTF(1, 2);
/* Out of memory: says so and exits 111. */
void submit_oom(void) __attribute__((noreturn));
/* mkdir -p of path's parent folder; 0 or -errno. */
int submit_make_parents(const char *path);

/* Runs every task not skipped, -j at a time, until all end or
 * submit_interrupted. */
void submit_run_all(struct run *run);
/* Whether the node at url answers HTTP at all; err (CURL_ERROR_SIZE)
 * gets why not. */
bool submit_reachable(const char *url, char *err);
/* Ends t's transfer, if any, and forgets its answer (removing a temp
 * file). */
void submit_end_transfer(struct run *run, struct task *t);
void submit_reset(struct task *t);

#endif
