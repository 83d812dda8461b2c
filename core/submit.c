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
 * This file is the command: options, inputs, output names, progress and
 * the summary; submit_http.c runs the transfers.
 */
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
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

#include "base.h"
#include "config.h"
#include "node/node_conf.h"
#include "submit.h"
#include "submit_run.h"

#define EXIT_FAILED 1
#define EXIT_INTERRUPTED 130 /* 128 + SIGINT, as shells say */

#define DEFAULT_URL "http://127.0.0.1:8080"
#define API_KEY_ENV "IMGNODE_API_KEY"
#define HMAC_KEY_ENV "IMGNODE_HMAC_KEY"
#define JOBS_MAX 64

/* The extensions a folder's images have, and that outputs are given. */
static const char *const image_exts[] = {
        "jpg",  "jpeg", "png", "webp", "avif", "gif", "tif", "tiff",
        "heic", "heif", "jxl", "jp2",  "bmp",  "svg", "pdf", NULL,
};

static void on_signal(int sig)
{
	submit_interrupted = sig;
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
	return EXIT_PERMANENT;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		submit_oom();
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
				submit_oom();
			run->tasks = p;
			run->cap = cap;
		}
		t = &run->tasks[run->ntasks++];
		memset(t, 0, sizeof(*t));
		t->input = xstrdup(input);
		t->rel = run->npipes > 1 ? submit_printf("%s.%s", rel,
		                                         run->pipes[i].tag)
		                         : xstrdup(rel);
		if (!t->rel)
			submit_oom();
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
		submit_oom();
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
		bool link;

		if (name[0] == '.' || ret) /* ., .., hidden and temp files */
			goto next;
		path = submit_printf("%s/%s", dir, name);
		sub = *rel ? submit_printf("%s/%s", rel, name) : xstrdup(name);
		if (!path || !sub)
			submit_oom();
		link = lstat(path, &st) == 0 && S_ISLNK(st.st_mode);
		if ((link ? stat(path, &st) : lstat(path, &st)) < 0) {
			fprintf(stderr,
			        "imgnodectl: submit: warning: skipping %s: %s\n",
			        path, strerror(errno));
		} else if (S_ISDIR(st.st_mode) && link) {
			/* a link to a folder may loop: name the target */
			fprintf(stderr,
			        "imgnodectl: submit: warning: not following %s, a link to a folder (give the folder itself)\n",
			        path);
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
		submit_oom();
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
		char *p = submit_printf("%s/%s.%s", run->outdir, t->rel,
		                        image_exts[i]);

		if (!p)
			submit_oom();
		if (access(p, F_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
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

/* Redraws the progress bar (on a terminal; at most 5 times a second
 * unless force); run->on_progress. */
static void submit_draw(struct run *run, bool force)
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
	submit_draw(run, true);
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
		submit_oom();
	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(j);
}

/* t has ended (done or failed): its line, its --json object, the bar;
 * run->on_end. */
static void submit_report(struct run *run, const struct task *t)
{
	if (t->state == T_DONE && !run->tty && !run->json)
		say(run, "done %s [%s] -> %s (%llu bytes)", t->input,
		    pipe_name(t->pipe), t->output,
		    (unsigned long long)t->bytes);
	else if (t->state == T_FAILED && (!run->json || run->tty))
		say(run, "failed %s [%s]: %s", t->input, pipe_name(t->pipe),
		    t->error);
	json_line(run, t);
	submit_draw(run, false);
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
	host = conf->app->ingress.listen;
	if (!host || !*host || strcmp(host, "0.0.0.0") == 0)
		host = "127.0.0.1";
	else if (strcmp(host, "::") == 0)
		host = "::1";
	url = submit_printf(strchr(host, ':') ? "http://[%s]:%lld"
	                                      : "http://%s:%lld",
	                    host, (long long)conf->app->ingress.port);
	conf_free(conf);
	return url;
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
		submit_draw(run, true);
		fputc('\n', stderr);
	}
	fprintf(stderr,
	        "imgnodectl: submit: %zu done, %zu failed, %zu skipped (output already in %s) of %zu, in %.1f s\n",
	        run->done, run->failed, run->skipped, run->outdir, run->ntasks,
	        secs);
	if (submit_interrupted)
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

		submit_end_transfer(run, t);
		submit_reset(t);
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
	struct run run = {.jobs = 4,
	                  .retries = 5,
	                  .wait = 30,
	                  .json = json_out,
	                  .on_end = submit_report,
	                  .on_progress = submit_draw};
	char *url_buf = NULL, err[CURL_ERROR_SIZE];
	const char *hmac = NULL;
	bool from_stdin = false;
	int opt, ret = 0;
	long v;

	run.pipes = calloc((size_t)argc + 1, sizeof(*run.pipes));
	if (!run.pipes)
		submit_oom();
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
			return EXIT_PERMANENT;
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
		return EXIT_PERMANENT;
	}
	if (stat(run.outdir, &run.out_st) < 0 || !S_ISDIR(run.out_st.st_mode)) {
		fprintf(stderr, "imgnodectl: submit: %s is not a folder\n",
		        run.outdir);
		return EXIT_PERMANENT;
	}
	run.out_exists = true;

	for (int i = optind; i < argc; i++) {
		if (strcmp(argv[i], "-") == 0) {
			if (from_stdin)
				return usage_error("- is given twice");
			from_stdin = true;
			if (read_list(&run) < 0)
				ret = EXIT_PERMANENT;
		} else if (add_arg(&run, argv[i]) < 0) {
			ret = EXIT_PERMANENT;
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
			ret = EXIT_PERMANENT;
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
		ret = EXIT_TEMPORARY;
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
		if (!submit_reachable(run.url, err)) {
			fprintf(stderr,
			        "imgnodectl: submit: cannot reach the node at %s: %s (is imgnode running? --url names another)\n",
			        run.url, err);
			ret = EXIT_TEMPORARY;
			goto out_cleanup;
		}
		struct sigaction sa = {.sa_handler = on_signal};

		sigemptyset(&sa.sa_mask);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
		run.multi = curl_multi_init();
		if (!run.multi)
			submit_oom();
		submit_draw(&run, true);
		submit_run_all(&run);
		curl_multi_cleanup(run.multi);
	}
	summary(&run);
	ret = submit_interrupted ? EXIT_INTERRUPTED
	      : run.failed       ? EXIT_FAILED
	                         : 0;
out_cleanup:
	curl_global_cleanup();
out_free:
	free_run(&run);
	free(url_buf);
	return ret;
}
