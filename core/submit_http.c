/*
 * The transfers of imgnodectl submit (submit.c): one libcurl multi handle
 * runs every request from one thread. A task POSTs its input with ?wait=;
 * a 200 is streamed into a hidden temp file and renamed to its output, a
 * 202 is followed by GETs of the result every 0.5 to 5 s (409: not yet), a
 * 429 or 503 goes again after its Retry-After, anything else fails with
 * the node's {"error", "detail"}. With --hmac-key each request is signed
 * (docs/signing.md, v2).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "submit_run.h"

#define ERR_BODY_MAX (64 * 1024) /* of an error answer kept */
#define RETRY_AFTER_MAX 300 /* s: a longer Retry-After is cut to this */
#define POLL_MIN_MS 500
#define POLL_MAX_MS 5000
#define POLL_TOTAL_MS (3600 * 1000) /* a job not done after this fails */
#define SIG_MAX 512 /* keyid= (escaped), expires=, sig= */

/* A result's Content-Type and the extension its output gets. */
static const struct {
	const char *mime, *ext;
} mime_exts[] = {
        {"image/jpeg", "jpg"},  {"image/png", "png"}, {"image/webp", "webp"},
        {"image/avif", "avif"}, {"image/gif", "gif"}, {"image/tiff", "tif"},
        {"image/heif", "heic"}, {"image/jxl", "jxl"}, {NULL, NULL},
};

/* See submit_run.h: set by the command's signal handler. */
volatile sig_atomic_t submit_interrupted;

/* See submit_run.h. */
char *submit_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

/* See submit_run.h. */
_Noreturn void submit_oom(void)
{
	fprintf(stderr, "imgnodectl: submit: %s\n", strerror(ENOMEM));
	exit(EXIT_TEMPORARY);
}

/* See submit_run.h. */
int submit_make_parents(const char *path)
{
	char *p = strdup(path), *s;

	if (!p)
		submit_oom();
	int ret = 0;

	for (s = strchr(p + 1, '/'); s; s = strchr(s + 1, '/')) {
		*s = '\0';
		if (mkdir(p, 0777) < 0 && errno != EEXIST) {
			ret = -errno;
			break;
		}
		*s = '/';
	}
	free(p);
	return ret;
}

/* See submit_run.h. */
void submit_reset(struct task *t)
{
	if (t->fd >= 0) {
		close(t->fd);
		t->fd = -1;
	}
	if (t->tmp) {
		unlink(t->tmp);
		free(t->tmp);
		t->tmp = NULL;
	}
	free(t->body);
	t->body = NULL;
	t->len = 0;
	t->decided = false;
	t->code = 0;
	t->retry_after = -1;
	t->mime[0] = '\0';
	t->bytes = 0;
}

/* See submit_run.h. */
void submit_end_transfer(struct run *run, struct task *t)
{
	if (t->easy) {
		curl_multi_remove_handle(run->multi, t->easy);
		curl_easy_cleanup(t->easy);
		t->easy = NULL;
	}
	curl_slist_free_all(t->headers);
	t->headers = NULL;
	if (t->in) {
		fclose(t->in);
		t->in = NULL;
	}
}

static void finish(struct run *run, struct task *t, enum state state)
{
	long code = t->code;

	submit_end_transfer(run, t);
	if (state != T_DONE) {
		submit_reset(t);
	} else if (t->fd >= 0) {
		close(t->fd);
		t->fd = -1;
	}
	t->code = code; /* for --json */
	t->state = state;
	run->active--;
	if (state == T_DONE)
		run->done++;
	else
		run->failed++;
	run->on_end(run, t);
}

static void fail(struct run *run, struct task *t, const char *fmt, ...)
        IMGNODE_PRINTF(3, 4);

static void fail(struct run *run, struct task *t, const char *fmt, ...)
{
	va_list ap;

	free(t->error);
	va_start(ap, fmt);
	if (vasprintf(&t->error, fmt, ap) < 0)
		submit_oom();
	va_end(ap);
	finish(run, t, T_FAILED);
}

static size_t on_header(char *p, size_t size, size_t n, void *data)
{
	struct task *t = data;
	size_t len = size * n;
	char line[256];

	if (len >= sizeof(line))
		return len;
	memcpy(line, p, len);
	line[len] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (strncmp(line, "HTTP/", 5) == 0) { /* a new answer (after 100) */
		t->retry_after = -1;
		t->mime[0] = '\0';
	} else if (strncasecmp(line, "Retry-After:", 12) == 0) {
		char *end;
		long v = strtol(line + 12, &end, 10);

		if (end != line + 12 && v >= 0)
			t->retry_after =
			        v > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : v;
	} else if (strncasecmp(line, "X-Imgnode-Job:", 14) == 0) {
		const char *v = line + 14;

		v += strspn(v, " \t");
		snprintf(t->job, sizeof(t->job), "%.*s", (int)strcspn(v, " \t"),
		         v);
	} else if (strncasecmp(line, "Content-Type:", 13) == 0) {
		const char *v = line + 13;

		v += strspn(v, " \t");
		snprintf(t->mime, sizeof(t->mime), "%.*s",
		         (int)strcspn(v, "; \t"), v);
	}
	return len;
}

/* A 200's body goes to a hidden temp file beside the output. */
static int open_tmp(struct run *run, struct task *t)
{
	char *slash;

	t->tmp = submit_printf("%s/%s", run->outdir, t->rel);
	if (!t->tmp)
		submit_oom();
	slash = strrchr(t->tmp, '/');
	{
		char *p =
		        submit_printf("%.*s/.%s.XXXXXX.part",
		                      (int)(slash - t->tmp), t->tmp, slash + 1);

		free(t->tmp);
		t->tmp = p;
	}
	if (!t->tmp)
		submit_oom();
	if (submit_make_parents(t->tmp) < 0)
		return -errno;
	t->fd = mkstemps(t->tmp, 5);
	if (t->fd < 0) {
		int ret = -errno;

		free(t->tmp);
		t->tmp = NULL;
		return ret;
	}
	return 0;
}

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
	struct task *t = data;
	struct run *run = NULL;
	size_t len = size * n;

	curl_easy_getinfo(t->easy, CURLINFO_PRIVATE, (char **)&run);
	if (!t->decided) {
		t->decided = true;
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->code);
		if (t->code == 200 && open_tmp(run, t) < 0) {
			free(t->error);
			t->error = submit_printf("unable to write in %s: %s",
			                         run->outdir, strerror(errno));
			return 0;
		}
	}
	if (t->fd >= 0) {
		size_t off = 0;

		while (off < len) {
			ssize_t w = write(t->fd, p + off, len - off);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				free(t->error);
				t->error =
				        submit_printf("unable to write %s: %s",
				                      t->tmp, strerror(errno));
				return 0;
			}
			off += (size_t)w;
		}
		t->bytes += len;
		return len;
	}
	if (t->len < ERR_BODY_MAX) {
		size_t take = len < ERR_BODY_MAX - t->len
		                      ? len
		                      : ERR_BODY_MAX - t->len;
		char *b = realloc(t->body, t->len + take + 1);

		if (!b)
			return 0;
		memcpy(b + t->len, p, take);
		t->len += take;
		b[t->len] = '\0';
		t->body = b;
	}
	return len;
}

/*
 * The query arguments signing METHOD path (docs/signing.md, v2) for SIGN_TTL
 * seconds into out: "keyid=ID&expires=UNIX&sig=HEX", or "" without
 * --hmac-key.
 */
static void sign(struct run *run, CURL *e, const char *method, const char *path,
                 const struct pipe *p, char *out, size_t outlen)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	long long expires = (long long)time(NULL) + SIGN_TTL;
	char hex[2 * EVP_MAX_MD_SIZE + 1], *text, *id;

	out[0] = '\0';
	if (!run->hmac_id)
		return;
	text = submit_printf("IMGNODE-HMAC-V2\n%s\n%lld\n%s\n%s\n%s%s\n",
	                     run->hmac_id, expires, method, path,
	                     !p          ? ""
	                     : p->preset ? "preset="
	                                 : "pipeline=",
	                     !p ? "" : pipe_name(p));
	if (!text)
		submit_oom();
	if (!HMAC(EVP_sha256(), run->hmac_secret, (int)strlen(run->hmac_secret),
	          (unsigned char *)text, strlen(text), mac, &len))
		len = 0;
	free(text);
	for (unsigned int i = 0; i < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	hex[2 * len] = '\0';
	id = curl_easy_escape(e, run->hmac_id, 0);
	if (!id)
		submit_oom();
	snprintf(out, outlen, "keyid=%s&expires=%lld&sig=%s", id, expires, hex);
	curl_free(id);
}

/* Starts t's next request (its POST, or a GET of its result); 0 or the
 * task failed. */
static int start(struct run *run, struct task *t)
{
	char *url = NULL;
	struct stat st;
	CURL *e;

	if (!t->polling) {
		t->in = fopen(t->input, "rb");
		if (!t->in || fstat(fileno(t->in), &st) < 0) {
			fail(run, t, "unable to read it: %s", strerror(errno));
			return -1;
		}
	}
	e = t->easy = curl_easy_init();
	if (!e)
		submit_oom();
	if (t->polling) {
		char path[128], sig[SIG_MAX];

		snprintf(path, sizeof(path), "/v1/jobs/%s/result", t->job);
		sign(run, e, "GET", path, NULL, sig, sizeof(sig));
		url = submit_printf("%s%s%s%s", run->url, path, *sig ? "?" : "",
		                    sig);
	} else {
		const char *v = pipe_name(t->pipe);
		char *esc = curl_easy_escape(e, v, 0);
		char sig[SIG_MAX];

		if (!esc)
			submit_oom();
		sign(run, e, "POST", "/v1/jobs", t->pipe, sig, sizeof(sig));
		url = submit_printf("%s/v1/jobs?%s=%s&wait=%ld%s%s", run->url,
		                    t->pipe->preset ? "preset" : "pipeline",
		                    esc, run->wait, *sig ? "&" : "", sig);
		curl_free(esc);
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_READDATA, t->in);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)st.st_size);
		t->headers = curl_slist_append(
		        t->headers, "Content-Type: application/octet-stream");
		if (!t->headers)
			submit_oom();
	}
	if (!url)
		submit_oom();
	if (run->api_key) {
		char *h = submit_printf("X-Api-Key: %s", run->api_key);
		struct curl_slist *l =
		        h ? curl_slist_append(t->headers, h) : NULL;

		free(h);
		if (!l)
			submit_oom();
		t->headers = l;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	free(url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "imgnodectl/" IMGNODE_VERSION);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
	/* the node answers a wait within its wait_max; more is a hang */
	curl_easy_setopt(e, CURLOPT_TIMEOUT, run->wait + 300L);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(e, CURLOPT_PRIVATE, run);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, run->errbuf);
	curl_multi_add_handle(run->multi, e);
	t->state = T_RUN;
	return 0;
}

/* Goes again after delay_ms; false when out of retries. */
static bool retry(struct run *run, struct task *t, int64_t delay_ms)
{
	if (t->attempts >= run->retries)
		return false;
	t->attempts++;
	submit_end_transfer(run, t);
	submit_reset(t);
	t->state = T_WAIT;
	t->not_before = now_ms() + delay_ms;
	return true;
}

static void poll_later(struct run *run, struct task *t)
{
	submit_end_transfer(run, t);
	submit_reset(t);
	if (!t->polling) {
		t->polling = true;
		t->poll_ms = POLL_MIN_MS;
		t->poll_until = now_ms() + POLL_TOTAL_MS;
	} else if (t->poll_ms < POLL_MAX_MS) {
		t->poll_ms = t->poll_ms * 2 > POLL_MAX_MS ? POLL_MAX_MS
		                                          : t->poll_ms * 2;
	}
	t->state = T_WAIT;
	t->not_before = now_ms() + t->poll_ms;
}

/* The node's reason from an error answer: "error: detail". */
static char *reason(const struct task *t)
{
	json_t *j = t->body ? json_loadb(t->body, t->len, 0, NULL) : NULL;
	const char *e = json_string_value(json_object_get(j, "error"));
	const char *d = json_string_value(json_object_get(j, "detail"));
	char *s;

	if (e)
		s = d ? submit_printf("HTTP %ld %s: %s", t->code, e, d)
		      : submit_printf("HTTP %ld %s", t->code, e);
	else
		s = submit_printf("HTTP %ld (%s)", t->code,
		                  t->len ? "not a JSON error" : "no body");
	json_decref(j);
	if (!s)
		submit_oom();
	return s;
}

static const char *ext_of(const char *mime)
{
	for (int i = 0; mime_exts[i].mime; i++)
		if (strcasecmp(mime, mime_exts[i].mime) == 0)
			return mime_exts[i].ext;
	return NULL;
}

/* A 200: the temp file becomes the output. */
static void complete(struct run *run, struct task *t)
{
	const char *ext = ext_of(t->mime);

	if (!t->tmp && open_tmp(run, t) < 0) { /* an empty body */
		fail(run, t, "unable to write in %s: %s", run->outdir,
		     strerror(errno));
		return;
	}
	if (!ext) {
		fail(run, t, "the node answered %s, not an image type I know",
		     t->mime[0] ? t->mime : "no Content-Type");
		return;
	}
	free(t->output);
	t->output = submit_printf("%s/%s.%s", run->outdir, t->rel, ext);
	if (!t->output)
		submit_oom();
	if (fsync(t->fd) < 0 || rename(t->tmp, t->output) < 0) {
		fail(run, t, "unable to write %s: %s", t->output,
		     strerror(errno));
		return;
	}
	free(t->tmp);
	t->tmp = NULL;
	finish(run, t, T_DONE);
}

/* A transfer of t ended with res. */
static void ended(struct run *run, struct task *t, CURLcode res)
{
	char *why;

	if (res == CURLE_WRITE_ERROR && t->error) {
		why = t->error;
		t->error = NULL;
		fail(run, t, "%s", why);
		free(why);
		return;
	}
	if (res != CURLE_OK) {
		if (retry(run, t, 1000L << (t->attempts < 5 ? t->attempts : 5)))
			return;
		fail(run, t, "%s (after %d retries)",
		     run->errbuf[0] ? run->errbuf : curl_easy_strerror(res),
		     t->attempts);
		return;
	}
	if (!t->decided)
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->code);
	switch (t->code) {
	case 200: complete(run, t); return;
	case 202:
	case 409: {
		json_t *j = json_loadb(t->body ? t->body : "", t->len, 0, NULL);
		const char *id = json_string_value(json_object_get(j, "id"));

		if (id && !t->polling)
			snprintf(t->job, sizeof(t->job), "%s", id);
		json_decref(j);
		if (!t->job[0]) {
			why = reason(t);
			fail(run, t, "%s without a job id", why);
			free(why);
			return;
		}
		if (t->polling && now_ms() > t->poll_until) {
			fail(run, t, "job %s still not done after %d s", t->job,
			     POLL_TOTAL_MS / 1000);
			return;
		}
		poll_later(run, t);
		return;
	}
	case 429:
	case 503: {
		long after =
		        t->retry_after >= 0
		                ? t->retry_after
		                : 1L << (t->attempts < 5 ? t->attempts : 5);

		why = reason(t);
		if (retry(run, t, after * 1000)) {
			free(why);
			return;
		}
		fail(run, t, "%s (after %d retries)", why, t->attempts);
		free(why);
		return;
	}
	default:
		why = reason(t);
		fail(run, t, "%s", why);
		free(why);
	}
}

/* Starts what may start; the delay until the next one may (ms). */
static long schedule(struct run *run)
{
	int64_t now = now_ms(), next = INT64_MAX;

	for (size_t i = 0; i < run->ntasks; i++) {
		struct task *t = &run->tasks[i];

		if (t->state == T_WAIT) {
			if (t->not_before <= now)
				start(run, t);
			else if (t->not_before < next)
				next = t->not_before;
		}
	}
	for (size_t i = 0; i < run->ntasks && run->active < (size_t)run->jobs;
	     i++) {
		struct task *t = &run->tasks[i];

		if (t->state == T_NEW) {
			run->active++;
			start(run, t);
		}
	}
	if (next == INT64_MAX)
		return 1000;
	return next - now < 1 ? 1 : next - now > 1000 ? 1000 : next - now;
}

/* See submit_run.h. */
void submit_run_all(struct run *run)
{
	int running = 0;

	do {
		long delay = schedule(run);
		CURLMsg *m;
		int left;

		curl_multi_perform(run->multi, &running);
		while ((m = curl_multi_info_read(run->multi, &left))) {
			struct task *t = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			for (size_t i = 0; i < run->ntasks && !t; i++)
				if (run->tasks[i].easy == m->easy_handle)
					t = &run->tasks[i];
			if (t)
				ended(run, t, m->data.result);
		}
		run->on_progress(run, false);
		if (run->active && !submit_interrupted)
			curl_multi_poll(run->multi, NULL, 0,
			                delay > 200 ? 200 : (int)delay, NULL);
	} while (!submit_interrupted &&
	         (run->active ||
	          run->done + run->failed + run->skipped < run->ntasks));
	/* Ctrl-C: no half file left; accepted jobs go on on the node */
	for (size_t i = 0; submit_interrupted && i < run->ntasks; i++) {
		submit_end_transfer(run, &run->tasks[i]);
		submit_reset(&run->tasks[i]);
	}
}

/* See submit_run.h. */
bool submit_reachable(const char *url, char *err)
{
	CURL *e = curl_easy_init();
	char *u = submit_printf("%s/healthz", url);
	CURLcode res;

	if (!e || !u)
		submit_oom();
	err[0] = '\0';
	curl_easy_setopt(e, CURLOPT_URL, u);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
	res = curl_easy_perform(e);
	if (res != CURLE_OK && !err[0])
		snprintf(err, CURL_ERROR_SIZE, "%s", curl_easy_strerror(res));
	curl_easy_cleanup(e);
	free(u);
	return res == CURLE_OK;
}
