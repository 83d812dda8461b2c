/*
 * imgnodectl submit: sends many images through a running node's HTTP API
 * (POST /v1/jobs, then GET /v1/jobs/ID/result while it says 202/409) and
 * writes the results into a folder. Each input runs through each pipeline
 * or preset given; at most -j jobs are out on the node at once, and a 429
 * or 503 is retried after its Retry-After, a bounded number of times.
 *
 * Outputs are DIR/REL.EXT: REL is the input's path under the folder given
 * (its name alone for a file given), without its extension; with several
 * pipelines, REL.TAG.EXT, TAG being the preset's name or the pipeline
 * reduced to letters, digits and dashes. EXT follows the result's
 * Content-Type. A result is written to a hidden temp name beside it and
 * renamed, so an output that exists is whole: inputs whose output exists
 * are skipped, which makes a run resumable.
 *
 * One libcurl multi handle runs every transfer from one thread.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "submit.h"

#ifndef IMGNODE_VERSION
#define IMGNODE_VERSION "0.0.0"
#endif

#define EXIT_FAILED 1
#define EXIT_USAGE 100
#define EXIT_UNREACHABLE 111
#define EXIT_INTERRUPTED 130 /* 128 + SIGINT, as shells say */

#define DEFAULT_URL "http://127.0.0.1:8080"
#define API_KEY_ENV "IMGNODE_API_KEY"
#define HMAC_KEY_ENV "IMGNODE_HMAC_KEY"
#define SIGN_TTL 60 /* s: a signature's life (re-signed on each retry) */
#define ERR_BODY_MAX (64 * 1024) /* of an error answer kept */
#define RETRY_AFTER_MAX 300 /* s: a longer Retry-After is cut to this */
#define POLL_MIN_MS 500
#define POLL_MAX_MS 5000
#define POLL_TOTAL_MS (3600 * 1000) /* a job not done after this fails */
#define JOBS_MAX 64

/* The extensions a folder's images have, and that outputs are given. */
static const char *const image_exts[] = {
        "jpg",  "jpeg", "png", "webp", "avif", "gif", "tif", "tiff",
        "heic", "heif", "jxl", "jp2",  "bmp",  "svg", "pdf", NULL,
};

static const struct {
	const char *mime, *ext;
} mime_exts[] = {
        {"image/jpeg", "jpg"},  {"image/png", "png"}, {"image/webp", "webp"},
        {"image/avif", "avif"}, {"image/gif", "gif"}, {"image/tiff", "tif"},
        {"image/heif", "heic"}, {"image/jxl", "jxl"}, {NULL, NULL},
};

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
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

static void submit_usage(FILE *out)
{
	fprintf(out,
	        "usage: imgnodectl [-c FILE] submit [OPTIONS] -o DIR (-p PIPELINE | --preset NAME)... INPUT...\n"
	        "Sends each INPUT (a file, a folder: its images, recursively, or - for a\n"
	        "list of paths on stdin) through each pipeline or preset to a running\n"
	        "node, and writes the results into DIR as REL.EXT (REL.TAG.EXT with\n"
	        "several pipelines; TAG: the preset, or the pipeline's letters and digits).\n"
	        "Inputs whose output exists are skipped: run it again to resume.\n"
	        "options:\n"
	        "  -p, --pipeline P     a pipeline, e.g. 'thumbnail(800)|webp' (repeatable)\n"
	        "      --preset NAME    a preset of the node's config (repeatable)\n"
	        "  -o, --output DIR     where results go (made if missing)\n"
	        "  -j, --jobs N         jobs out on the node at once (default 4, at most %d)\n"
	        "      --url URL        the node (default: [ingress] listen and port of -c,\n"
	        "                       else %s)\n"
	        "      --api-key KEY    sent as X-Api-Key (default: $%s, which\n"
	        "                       keeps it out of ps)\n"
	        "      --hmac-key ID:SECRET  sign each request (docs/signing.md, v2) for\n"
	        "                       %d s (default: $%s)\n"
	        "      --wait SECONDS   how long a request waits for its job (default 30)\n"
	        "      --retries N      retries of a 429, 503 or lost connection (default 5)\n"
	        "      --json           one JSON object per input and pipeline on stdout\n"
	        "  -h, --help           this help\n"
	        "Progress goes to stderr: a bar on a terminal, else a line per input.\n"
	        "exit: 0 all done or skipped, 1 some failed (reasons in the summary),\n"
	        "      100 usage error, 111 the node cannot be reached, 130 interrupted\n"
	        "      (Ctrl-C or SIGTERM: no half file is left; run it again to resume)\n",
	        JOBS_MAX, DEFAULT_URL, API_KEY_ENV, SIGN_TTL, HMAC_KEY_ENV);
}

static int usage_error(const char *fmt, ...) IMGNODE_PRINTF(1, 2);

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("imgnodectl: submit: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (imgnodectl submit -h for help)\n", stderr);
	return EXIT_USAGE;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A formatted string the caller frees; NULL only without memory. */
static char *str_printf(const char *fmt, ...) IMGNODE_PRINTF(1, 2);

static char *str_printf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

static void oom(void)
{
	fprintf(stderr, "imgnodectl: submit: %s\n", strerror(ENOMEM));
	exit(EXIT_UNREACHABLE);
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		oom();
	return p;
}

static bool has_image_ext(const char *name)
{
	const char *dot = strrchr(name, '.');

	if (!dot || dot == name)
		return false;
	for (int i = 0; image_exts[i]; i++)
		if (strcasecmp(dot + 1, image_exts[i]) == 0)
			return true;
	return false;
}

/* The tag of a pipeline in output names: "thumbnail(800)|webp(q=75)" ->
 * "thumbnail800-webpq75". */
static void pipeline_tag(const char *p, char *tag, size_t len)
{
	size_t n = 0;

	for (; *p && n + 1 < len; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9'))
			tag[n++] = *p;
		else if ((*p == '|' || *p == ',') && n && tag[n - 1] != '-')
			tag[n++] = '-';
	}
	while (n && tag[n - 1] == '-')
		n--;
	tag[n] = '\0';
}

/* Adds the task input x every pipe; rel is the output path without
 * extension (copied). */
static void add_input(struct run *run, const char *input, const char *rel)
{
	for (size_t i = 0; i < run->npipes; i++) {
		struct task *t;

		if (run->ntasks == run->cap) {
			size_t cap = run->cap ? run->cap * 2 : 64;
			struct task *p =
			        realloc(run->tasks, cap * sizeof(*run->tasks));

			if (!p)
				oom();
			run->tasks = p;
			run->cap = cap;
		}
		t = &run->tasks[run->ntasks++];
		memset(t, 0, sizeof(*t));
		t->input = xstrdup(input);
		t->rel = run->npipes > 1
		                 ? str_printf("%s.%s", rel, run->pipes[i].tag)
		                 : xstrdup(rel);
		if (!t->rel)
			oom();
		t->pipe = &run->pipes[i];
		t->fd = -1;
		t->retry_after = -1;
	}
}

/* "dir/photo.jpg" -> "dir/photo" (the caller frees). */
static char *strip_ext(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(path, '.');
	char *s;

	if (!dot || (slash && dot < slash) || dot == (slash ? slash + 1 : path))
		return xstrdup(path);
	s = strndup(path, (size_t)(dot - path));
	if (!s)
		oom();
	return s;
}

/* Adds the images under dir (path relative to the folder given: rel,
 * "" at the top), in name order; 0 or -errno (reported). */
static int walk(struct run *run, const char *dir, const char *rel)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort), ret = 0;

	if (n < 0) {
		ret = -errno;
		fprintf(stderr, "imgnodectl: submit: unable to read %s: %s\n",
		        dir, strerror(errno));
		return ret;
	}
	for (int i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		char *path, *sub;
		struct stat st;

		if (name[0] == '.' || ret) /* ., .., hidden and temp files */
			goto next;
		path = str_printf("%s/%s", dir, name);
		sub = *rel ? str_printf("%s/%s", rel, name) : xstrdup(name);
		if (!path || !sub)
			oom();
		if (stat(path, &st) < 0) {
			fprintf(stderr,
			        "imgnodectl: submit: warning: skipping %s: %s\n",
			        path, strerror(errno));
		} else if (S_ISDIR(st.st_mode)) {
			/* not the results of an earlier run */
			if (!(run->out_exists &&
			      st.st_dev == run->out_st.st_dev &&
			      st.st_ino == run->out_st.st_ino))
				ret = walk(run, path, sub);
		} else if (S_ISREG(st.st_mode) && has_image_ext(name)) {
			char *stem = strip_ext(sub);

			add_input(run, path, stem);
			free(stem);
		}
		free(path);
		free(sub);
	next:
		free(names[i]);
	}
	free(names);
	return ret;
}

/* An input argument or stdin line: a file or a folder; 0 or -errno. */
static int add_arg(struct run *run, const char *arg)
{
	struct stat st;
	char *stem, *copy;
	size_t len;

	if (stat(arg, &st) < 0) {
		fprintf(stderr, "imgnodectl: submit: %s: %s\n", arg,
		        strerror(errno));
		return -errno;
	}
	if (S_ISDIR(st.st_mode)) {
		copy = xstrdup(arg);
		len = strlen(copy);
		while (len > 1 && copy[len - 1] == '/')
			copy[--len] = '\0';
		len = (size_t)walk(run, copy, "");
		free(copy);
		return (int)len;
	}
	copy = xstrdup(arg);
	stem = strip_ext(basename(copy));
	add_input(run, arg, stem);
	free(stem);
	free(copy);
	return 0;
}

static int cmp_rel(const void *a, const void *b)
{
	const struct task *x = *(struct task *const *)a;
	const struct task *y = *(struct task *const *)b;

	return strcmp(x->rel, y->rel);
}

/* Two tasks writing to one output: a usage error naming them. */
static int check_collisions(struct run *run)
{
	struct task **by = malloc(run->ntasks * sizeof(*by) + 1);
	int ret = 0;

	if (!by)
		oom();
	for (size_t i = 0; i < run->ntasks; i++)
		by[i] = &run->tasks[i];
	qsort(by, run->ntasks, sizeof(*by), cmp_rel);
	for (size_t i = 1; i < run->ntasks; i++)
		if (strcmp(by[i - 1]->rel, by[i]->rel) == 0) {
			ret = usage_error(
			        "%s and %s would both be written to %s/%s.*: rename one or submit them apart",
			        by[i - 1]->input, by[i]->input, run->outdir,
			        by[i]->rel);
			break;
		}
	free(by);
	return ret;
}

/* The output already there for t (any image extension), or NULL; the
 * caller frees. */
static char *existing_output(struct run *run, const struct task *t)
{
	for (int i = 0; image_exts[i]; i++) {
		char *p = str_printf("%s/%s.%s", run->outdir, t->rel,
		                     image_exts[i]);

		if (!p)
			oom();
		if (access(p, F_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

/* mkdir -p of path's parent folder; 0 or -errno. */
static int make_parents(const char *path)
{
	char *p = xstrdup(path), *s;
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

/* ---- progress ---- */

static void fmt_eta(double s, char *buf, size_t len)
{
	long v = (long)(s + 0.5);

	if (v >= 3600)
		snprintf(buf, len, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60,
		         v % 60);
	else
		snprintf(buf, len, "%ld:%02ld", v / 60, v % 60);
}

static void draw(struct run *run, bool force)
{
	size_t finished = run->done + run->failed + run->skipped;
	size_t worked = run->done + run->failed;
	double secs = (double)(now_ms() - run->started) / 1000;
	double rate = secs > 0.2 ? worked / secs : 0;
	struct winsize ws;
	char eta[32] = "--:--", text[160];
	int cols = 80, barw, pct, fill;

	if (!run->tty || (!force && now_ms() - run->last_draw < 200))
		return;
	run->last_draw = now_ms();
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		cols = ws.ws_col;
	if (rate > 0 && finished < run->ntasks)
		fmt_eta((double)(run->ntasks - finished) / rate, eta,
		        sizeof(eta));
	else if (finished == run->ntasks)
		fmt_eta(secs, eta, sizeof(eta));
	pct = run->ntasks ? (int)(finished * 100 / run->ntasks) : 100;
	snprintf(text, sizeof(text),
	         " %zu/%zu %3d%% | %zu failed | %.1f/s | %s %s", finished,
	         run->ntasks, pct, run->failed, rate,
	         finished == run->ntasks ? "took" : "ETA", eta);
	barw = cols - (int)strlen(text) - 3;
	if (barw > 40)
		barw = 40;
	fputs("\r\033[K", stderr);
	if (barw >= 10) {
		fill = run->ntasks
		               ? (int)(finished * (size_t)barw / run->ntasks)
		               : barw;
		fputc('[', stderr);
		for (int i = 0; i < barw; i++)
			fputc(i < fill ? '#' : '-', stderr);
		fputc(']', stderr);
	}
	fputs(text, stderr);
	fflush(stderr);
}

/* A line about one task: above the bar on a terminal. */
static void say(struct run *run, const char *fmt, ...) IMGNODE_PRINTF(2, 3);

static void say(struct run *run, const char *fmt, ...)
{
	va_list ap;

	if (run->tty)
		fputs("\r\033[K", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	draw(run, true);
}

static void json_line(struct run *run, const struct task *t)
{
	static const char *const names[] = {[T_DONE] = "done",
	                                    [T_FAILED] = "failed",
	                                    [T_SKIPPED] = "skipped"};
	json_t *j;
	char *s;

	if (!run->json)
		return;
	j = json_pack("{s:s, s:s?, s:s?, s:s?, s:s, s:s?, s:I, s:s?}", "input",
	              t->input, "pipeline", t->pipe->pipeline, "preset",
	              t->pipe->preset, "output", t->output, "status",
	              names[t->state], "job", t->job[0] ? t->job : NULL,
	              "bytes", (json_int_t)t->bytes, "error", t->error);
	if (j && t->code)
		json_object_set_new(j, "http", json_integer(t->code));
	if (j)
		json_object_set_new(j, "retries", json_integer(t->attempts));
	s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (!s)
		oom();
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(j);
}

static const char *pipe_name(const struct pipe *p)
{
	return p->preset ? p->preset : p->pipeline;
}

/* ---- transfers ---- */

static void reset_answer(struct task *t)
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

static void end_transfer(struct run *run, struct task *t)
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

	end_transfer(run, t);
	if (state != T_DONE) {
		reset_answer(t);
	} else if (t->fd >= 0) {
		close(t->fd);
		t->fd = -1;
	}
	t->code = code; /* for --json */
	t->state = state;
	run->active--;
	if (state == T_DONE) {
		run->done++;
		if (!run->tty && !run->json)
			say(run, "done %s [%s] -> %s (%llu bytes)", t->input,
			    pipe_name(t->pipe), t->output,
			    (unsigned long long)t->bytes);
	} else {
		run->failed++;
		if (!run->json || run->tty)
			say(run, "failed %s [%s]: %s", t->input,
			    pipe_name(t->pipe), t->error);
	}
	json_line(run, t);
	draw(run, false);
}

static void fail(struct run *run, struct task *t, const char *fmt, ...)
        IMGNODE_PRINTF(3, 4);

static void fail(struct run *run, struct task *t, const char *fmt, ...)
{
	va_list ap;

	free(t->error);
	va_start(ap, fmt);
	if (vasprintf(&t->error, fmt, ap) < 0)
		oom();
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

	t->tmp = str_printf("%s/%s", run->outdir, t->rel);
	if (!t->tmp)
		oom();
	slash = strrchr(t->tmp, '/');
	{
		char *p = str_printf("%.*s/.%s.XXXXXX.part",
		                     (int)(slash - t->tmp), t->tmp, slash + 1);

		free(t->tmp);
		t->tmp = p;
	}
	if (!t->tmp)
		oom();
	if (make_parents(t->tmp) < 0)
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
			t->error = str_printf("unable to write in %s: %s",
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
				t->error = str_printf("unable to write %s: %s",
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
 * seconds: "keyid=ID&expires=UNIX&sig=HEX", "" without --hmac-key, NULL
 * without memory. The caller frees.
 */
static char *sign(struct run *run, CURL *e, const char *method,
                  const char *path, const struct pipe *p)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	long long expires = (long long)time(NULL) + SIGN_TTL;
	char hex[2 * EVP_MAX_MD_SIZE + 1], *text, *id, *q;

	if (!run->hmac_id)
		return strdup("");
	text = str_printf("IMGNODE-HMAC-V2\n%s\n%lld\n%s\n%s\n%s%s\n",
	                  run->hmac_id, expires, method, path,
	                  !p          ? ""
	                  : p->preset ? "preset="
	                              : "pipeline=",
	                  !p ? "" : pipe_name(p));
	if (!text)
		return NULL;
	if (!HMAC(EVP_sha256(), run->hmac_secret, (int)strlen(run->hmac_secret),
	          (unsigned char *)text, strlen(text), mac, &len))
		len = 0;
	free(text);
	for (unsigned int i = 0; i < len; i++)
		snprintf(hex + 2 * i, 3, "%02x", mac[i]);
	hex[2 * len] = '\0';
	id = curl_easy_escape(e, run->hmac_id, 0);
	if (!id)
		return NULL;
	q = str_printf("keyid=%s&expires=%lld&sig=%s", id, expires, hex);
	curl_free(id);
	return q;
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
		oom();
	if (t->polling) {
		char *path = str_printf("/v1/jobs/%s/result", t->job);
		char *sig = path ? sign(run, e, "GET", path, NULL) : NULL;

		if (!sig)
			oom();
		url = str_printf("%s%s%s%s", run->url, path, *sig ? "?" : "",
		                 sig);
		free(path);
		free(sig);
	} else {
		const char *v = pipe_name(t->pipe);
		char *esc = curl_easy_escape(e, v, 0);
		char *sig = sign(run, e, "POST", "/v1/jobs", t->pipe);

		if (!esc || !sig)
			oom();
		url = str_printf("%s/v1/jobs?%s=%s&wait=%ld%s%s", run->url,
		                 t->pipe->preset ? "preset" : "pipeline", esc,
		                 run->wait, *sig ? "&" : "", sig);
		curl_free(esc);
		free(sig);
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_READDATA, t->in);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)st.st_size);
		t->headers = curl_slist_append(
		        t->headers, "Content-Type: application/octet-stream");
		if (!t->headers)
			oom();
	}
	if (!url)
		oom();
	if (run->api_key) {
		char *h = str_printf("X-Api-Key: %s", run->api_key);
		struct curl_slist *l =
		        h ? curl_slist_append(t->headers, h) : NULL;

		free(h);
		if (!l)
			oom();
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
	end_transfer(run, t);
	reset_answer(t);
	t->state = T_WAIT;
	t->not_before = now_ms() + delay_ms;
	return true;
}

static void poll_later(struct run *run, struct task *t)
{
	end_transfer(run, t);
	reset_answer(t);
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
		s = d ? str_printf("HTTP %ld %s: %s", t->code, e, d)
		      : str_printf("HTTP %ld %s", t->code, e);
	else
		s = str_printf("HTTP %ld (%s)", t->code,
		               t->len ? "not a JSON error" : "no body");
	json_decref(j);
	if (!s)
		oom();
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
	t->output = str_printf("%s/%s.%s", run->outdir, t->rel, ext);
	if (!t->output)
		oom();
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

static void run_all(struct run *run)
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
		draw(run, false);
		if (run->active && !interrupted)
			curl_multi_poll(run->multi, NULL, 0,
			                delay > 200 ? 200 : (int)delay, NULL);
	} while (!interrupted &&
	         (run->active ||
	          run->done + run->failed + run->skipped < run->ntasks));
	/* Ctrl-C: no half file left; accepted jobs go on on the node */
	for (size_t i = 0; interrupted && i < run->ntasks; i++) {
		end_transfer(run, &run->tasks[i]);
		reset_answer(&run->tasks[i]);
	}
}

/* The URL of [ingress] listen and port of config. */
static char *config_url(const char *config)
{
	char err[CONF_ERR_MAX];
	struct conf *conf = conf_load(config, err, sizeof(err));
	const char *host;
	char *url;

	if (!conf) {
		fprintf(stderr, "imgnodectl: %s (--url skips the config)\n",
		        err);
		return NULL;
	}
	host = conf->ingress.listen;
	if (!host || !*host || strcmp(host, "0.0.0.0") == 0)
		host = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		host = "::1";
	url = str_printf(strchr(host, ':') ? "http://[%s]:%lld"
	                                   : "http://%s:%lld",
	                 host, (long long)conf->ingress.port);
	conf_free(conf);
	return url;
}

/* Whether the node answers HTTP at all (any status); err gets why not. */
static bool reachable(const char *url, char *err)
{
	CURL *e = curl_easy_init();
	char *u = str_printf("%s/healthz", url);
	CURLcode res;

	if (!e || !u)
		oom();
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

static bool parse_long(const char *s, long min, long max, long *v)
{
	char *end;

	errno = 0;
	*v = strtol(s, &end, 10);
	return !errno && end != s && !*end && *v >= min && *v <= max;
}

static int read_list(struct run *run)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int ret = 0;

	while ((n = getline(&line, &cap, stdin)) >= 0) {
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n && add_arg(run, line) < 0)
			ret = -1;
	}
	free(line);
	return ret;
}

static void summary(struct run *run)
{
	double secs = (double)(now_ms() - run->started) / 1000;
	size_t shown = 0;

	if (run->tty) {
		draw(run, true);
		fputc('\n', stderr);
	}
	fprintf(stderr,
	        "imgnodectl: submit: %zu done, %zu failed, %zu skipped (output already in %s) of %zu, in %.1f s\n",
	        run->done, run->failed, run->skipped, run->outdir, run->ntasks,
	        secs);
	if (interrupted)
		fprintf(stderr,
		        "imgnodectl: submit: interrupted with %zu not done; run the same command again to resume\n",
		        run->ntasks - run->done - run->failed - run->skipped);
	for (size_t i = 0; i < run->ntasks; i++) {
		const struct task *t = &run->tasks[i];

		if (t->state != T_FAILED)
			continue;
		if (!shown++)
			fprintf(stderr, "failed:\n");
		fprintf(stderr, "  %s [%s]: %s\n", t->input, pipe_name(t->pipe),
		        t->error);
	}
}

static void free_run(struct run *run)
{
	for (size_t i = 0; i < run->ntasks; i++) {
		struct task *t = &run->tasks[i];

		end_transfer(run, t);
		reset_answer(t);
		free(t->input);
		free(t->rel);
		free(t->output);
		free(t->error);
	}
	free(run->tasks);
	free(run->pipes);
	if (run->hmac_secret) /* a secret: not left in freed memory */
		explicit_bzero(run->hmac_secret, strlen(run->hmac_secret));
	free(run->hmac_id);
}

/* See submit.h. */
int ctl_submit(int argc, char **argv, const char *config, bool explicit,
               bool json_out)
{
	enum {
		OPT_PRESET = 256,
		OPT_URL,
		OPT_KEY,
		OPT_HMAC,
		OPT_WAIT,
		OPT_RETRIES,
		OPT_JSON
	};
	static const struct option longopts[] = {
	        {"pipeline", required_argument, NULL, 'p'},
	        {"preset", required_argument, NULL, OPT_PRESET},
	        {"output", required_argument, NULL, 'o'},
	        {"jobs", required_argument, NULL, 'j'},
	        {"url", required_argument, NULL, OPT_URL},
	        {"api-key", required_argument, NULL, OPT_KEY},
	        {"hmac-key", required_argument, NULL, OPT_HMAC},
	        {"wait", required_argument, NULL, OPT_WAIT},
	        {"retries", required_argument, NULL, OPT_RETRIES},
	        {"json", no_argument, NULL, OPT_JSON},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	struct run run = {
	        .jobs = 4, .retries = 5, .wait = 30, .json = json_out};
	char *url_buf = NULL, err[CURL_ERROR_SIZE];
	const char *hmac = NULL;
	bool from_stdin = false;
	int opt, ret = 0;
	long v;

	run.pipes = calloc((size_t)argc + 1, sizeof(*run.pipes));
	if (!run.pipes)
		oom();
	optind = 0; /* GNU getopt: start afresh, options after inputs too */
	while ((opt = getopt_long(argc, argv, "p:o:j:h", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'p':
			if (!*optarg)
				return usage_error("-p wants a pipeline");
			run.pipes[run.npipes].pipeline = optarg;
			pipeline_tag(optarg, run.pipes[run.npipes].tag,
			             sizeof(run.pipes[0].tag));
			run.npipes++;
			break;
		case OPT_PRESET:
			if (!*optarg || strchr(optarg, '/'))
				return usage_error(
				        "--preset wants a preset's name, not \"%s\"",
				        optarg);
			run.pipes[run.npipes].preset = optarg;
			snprintf(run.pipes[run.npipes].tag,
			         sizeof(run.pipes[0].tag), "%s", optarg);
			run.npipes++;
			break;
		case 'o': run.outdir = optarg; break;
		case 'j':
			if (!parse_long(optarg, 1, JOBS_MAX, &v))
				return usage_error(
				        "-j wants a number from 1 to %d, not \"%s\"",
				        JOBS_MAX, optarg);
			run.jobs = (int)v;
			break;
		case OPT_URL: run.url = optarg; break;
		case OPT_KEY: run.api_key = optarg; break;
		case OPT_HMAC: hmac = optarg; break;
		case OPT_WAIT:
			if (!parse_long(optarg, 0, 3600, &v))
				return usage_error(
				        "--wait wants seconds from 0 to 3600, not \"%s\"",
				        optarg);
			run.wait = v;
			break;
		case OPT_RETRIES:
			if (!parse_long(optarg, 0, 100, &v))
				return usage_error(
				        "--retries wants a number from 0 to 100, not \"%s\"",
				        optarg);
			run.retries = (int)v;
			break;
		case OPT_JSON: run.json = true; break;
		case 'h': submit_usage(stdout); return 0;
		default:
			fprintf(stderr, "imgnodectl submit -h for help\n");
			return EXIT_USAGE;
		}
	}
	if (!run.npipes)
		return usage_error(
		        "no pipeline: give -p PIPELINE or --preset NAME");
	if (!run.outdir)
		return usage_error("no output folder: give -o DIR");
	if (optind >= argc)
		return usage_error(
		        "no input: give files, folders or - (paths on stdin)");
	for (size_t i = 0; i < run.npipes; i++) {
		if (!run.pipes[i].tag[0])
			return usage_error("pipeline \"%s\" has no letters",
			                   run.pipes[i].pipeline);
		for (size_t k = 0; k < i; k++)
			if (strcmp(run.pipes[i].tag, run.pipes[k].tag) == 0)
				return usage_error(
				        "\"%s\" and \"%s\" would share the output names *.%s",
				        pipe_name(&run.pipes[k]),
				        pipe_name(&run.pipes[i]),
				        run.pipes[i].tag);
	}
	if (!hmac)
		hmac = getenv(HMAC_KEY_ENV);
	if (hmac) {
		char *colon;

		run.hmac_id = xstrdup(hmac);
		colon = strchr(run.hmac_id, ':');
		if (!colon || colon == run.hmac_id || !colon[1]) {
			free(run.hmac_id);
			return usage_error("the signing key wants ID:SECRET");
		}
		*colon = '\0';
		run.hmac_secret = colon + 1;
	}
	if (!run.api_key)
		run.api_key = getenv(API_KEY_ENV);
	if (run.api_key && (!*run.api_key || strpbrk(run.api_key, "\r\n")))
		return usage_error("the API key is empty or has a line break");
	if (mkdir(run.outdir, 0777) < 0 && errno != EEXIST) {
		fprintf(stderr, "imgnodectl: submit: unable to make %s: %s\n",
		        run.outdir, strerror(errno));
		return EXIT_USAGE;
	}
	if (stat(run.outdir, &run.out_st) < 0 || !S_ISDIR(run.out_st.st_mode)) {
		fprintf(stderr, "imgnodectl: submit: %s is not a folder\n",
		        run.outdir);
		return EXIT_USAGE;
	}
	run.out_exists = true;

	for (int i = optind; i < argc; i++) {
		if (strcmp(argv[i], "-") == 0) {
			if (from_stdin)
				return usage_error("- is given twice");
			from_stdin = true;
			if (read_list(&run) < 0)
				ret = EXIT_USAGE;
		} else if (add_arg(&run, argv[i]) < 0) {
			ret = EXIT_USAGE;
		}
	}
	if (ret)
		goto out_free;
	if (!run.ntasks) {
		fprintf(stderr,
		        "imgnodectl: submit: no images in the inputs given\n");
		goto out_free;
	}
	ret = check_collisions(&run);
	if (ret)
		goto out_free;

	if (!run.url && explicit) {
		run.url = url_buf = config_url(config);
		if (!url_buf) {
			ret = EXIT_USAGE;
			goto out_free;
		}
	}
	if (!run.url)
		run.url = DEFAULT_URL;
	if (strncmp(run.url, "http://", 7) != 0 &&
	    strncmp(run.url, "https://", 8) != 0) {
		ret = usage_error("--url wants http://HOST:PORT, not \"%s\"",
		                  run.url);
		goto out_free;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		fprintf(stderr,
		        "imgnodectl: submit: unable to start libcurl\n");
		ret = EXIT_UNREACHABLE;
		goto out_free;
	}
	/* a trailing slash would double in the paths */
	if (run.url[strlen(run.url) - 1] == '/') {
		char *u = xstrdup(run.url);

		u[strlen(u) - 1] = '\0';
		free(url_buf);
		run.url = url_buf = u;
	}

	for (size_t i = 0; i < run.ntasks; i++) {
		struct task *t = &run.tasks[i];
		char *have = existing_output(&run, t);

		if (have) {
			t->state = T_SKIPPED;
			t->output = have;
			run.skipped++;
			json_line(&run, t);
		}
	}
	run.tty = isatty(STDERR_FILENO);
	run.started = now_ms();
	if (run.skipped < run.ntasks) {
		if (!reachable(run.url, err)) {
			fprintf(stderr,
			        "imgnodectl: submit: cannot reach the node at %s: %s (is imgnode running? --url names another)\n",
			        run.url, err);
			ret = EXIT_UNREACHABLE;
			goto out_cleanup;
		}
		struct sigaction sa = {.sa_handler = on_signal};

		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		run.multi = curl_multi_init();
		if (!run.multi)
			oom();
		draw(&run, true);
		run_all(&run);
		curl_multi_cleanup(run.multi);
	}
	summary(&run);
	ret = interrupted ? EXIT_INTERRUPTED : run.failed ? EXIT_FAILED : 0;
out_cleanup:
	curl_global_cleanup();
out_free:
	free_run(&run);
	free(url_buf);
	return ret;
}
