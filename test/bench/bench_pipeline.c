/*
 * The pipeline benchmark: thumbnail(800)|sharpen|jpeg(q=80) over the
 * corpus's real photos, through imgnode's pipeline layer (parse, probe,
 * plugins, one lazy pipeline, encode: what a worker runs) against a bare
 * libvips loop doing the same operations, the limit. Rounds alternate the
 * two in fresh processes so machine noise hits both alike; the report is
 * the ratio of the sums. Target: the layer costs under 3% of throughput.
 *
 *   bench_pipeline PLUGIN_DIR PHOTO...
 *
 * With BENCH_MODE=bare (or layered) it runs only that mode, BENCH_ROUNDS
 * passes (default 1) in this process, and prints "IMAGES SECONDS
 * CPU_SECONDS" (CPU: the passes' processes, user + sys, not the reading of
 * the photos): the end-to-end benchmarks run it in as many processes as
 * the node has workers, for the raw limit.
 *
 * With BENCH_RENDITIONS=1 each photo instead gets the 4 renditions of
 * bench_peers (thumbnail(W)|sharpen|jpeg(q=80), W = 1600, 800, 320, 150):
 * the bare loop decodes once into memory (shrink-on-load into the largest
 * box) and makes each output from that image, the layer runs what a
 * worker does for a renditions job (renditions_run). Deterministic work:
 * run it under valgrind --tool=callgrind to count instructions.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

#include "config.h"
#include "host.h"
#include "node/image.h"
#include "node/node_conf.h"
#include "node/pipeline.h"
#include "node/renditions.h"
#include "plugin.h"

#define ROUNDS 5
#define PIPELINE "thumbnail(800)|sharpen|jpeg(q=80)"

struct photo {
	void *buf;
	size_t len;
};

struct result {
	double wall_s;
	double cpu_s;
	long maxrss_kb;
	long images;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The limit: libvips calls only, the same operations and options. */
static int bare(const struct photo *ph, int n)
{
	for (int i = 0; i < n; i++) {
		VipsImage *t, *s;
		void *out;
		size_t len;

		/* thumbnail(800) means 800 wide, any height: without the
		 * height, vips_thumbnail fits an 800x800 box and portrait
		 * photos would get less work */
		if (vips_thumbnail_buffer(ph[i].buf, ph[i].len, &t, 800,
		                          "height", 10000000, /* no limit */
		                          "option_string", "fail_on=truncated",
		                          NULL))
			return -1;
		if (vips_sharpen(t, &s, "sigma", 0.5, NULL)) {
			g_object_unref(t);
			return -1;
		}
		g_object_unref(t);
		if (vips_jpegsave_buffer(s, &out, &len, "Q", 80, NULL)) {
			g_object_unref(s);
			return -1;
		}
		g_object_unref(s);
		g_free(out);
	}
	return 0;
}

/* BENCH_RENDITIONS=1: the renditions job instead of the single pipeline. */
static bool renditions_mode(void)
{
	const char *v = getenv("BENCH_RENDITIONS");

	return v && !strcmp(v, "1");
}

static const int rwidths[] = {1600, 800, 320, 150};
#define NREND (sizeof(rwidths) / sizeof(rwidths[0]))

/* One rendition from the shared image mem, as the bare loop makes it. */
static int bare_output(VipsImage *mem, int width)
{
	VipsImage *t, *s;
	void *out;
	size_t len;
	int r;

	if (vips_thumbnail_image(mem, &t, width, "height", 10000000, NULL))
		return -1;
	r = vips_sharpen(t, &s, "sigma", 0.5, NULL);
	g_object_unref(t);
	if (r)
		return -1;
	r = vips_jpegsave_buffer(s, &out, &len, "Q", 80, NULL);
	g_object_unref(s);
	if (!r)
		g_free(out);
	return r;
}

/* The limit of a renditions job: one decode into memory, 4 outputs. */
static int bare_renditions(const struct photo *ph, int n)
{
	for (int i = 0; i < n; i++) {
		VipsImage *lazy, *mem;

		if (vips_thumbnail_buffer(
		            ph[i].buf, ph[i].len, &lazy, rwidths[0], "height",
		            10000000, "size", VIPS_SIZE_DOWN, "option_string",
		            "fail_on=truncated,access=sequential", NULL))
			return -1;
		mem = vips_image_copy_memory(lazy);
		g_object_unref(lazy);
		if (!mem)
			return -1;
		for (size_t k = 0; k < NREND; k++)
			if (bare_output(mem, rwidths[k])) {
				g_object_unref(mem);
				return -1;
			}
		g_object_unref(mem);
	}
	return 0;
}

/* What a worker does for a renditions job, minus storage and transport. */
static int layered_renditions(const struct photo *ph, int n,
                              struct plugin_set *set, struct conf *conf)
{
	struct rendition rs[NREND];
	char why[1024], text[64];
	int ret = 0, decodes;

	memset(rs, 0, sizeof(rs));
	for (size_t k = 0; k < NREND && !ret; k++) {
		snprintf(text, sizeof(text), "thumbnail(%d)|sharpen|jpeg(q=80)",
		         rwidths[k]);
		rs[k].pl = pipeline_parse(text, set, why, sizeof(why));
		ret = rs[k].pl ? 0 : -1;
	}
	for (int i = 0; i < n && !ret; i++) {
		struct image_info info;

		ret = image_probe(ph[i].buf, ph[i].len, &conf->app->limits,
		                  &info, why, sizeof(why));
		if (!ret)
			ret = renditions_run(
			        rs, NREND, set, ph[i].buf, ph[i].len, &info,
			        &conf->app->limits, &decodes, why, sizeof(why));
		if (!ret)
			renditions_out_free(rs, NREND);
	}
	if (ret)
		fprintf(stderr, "bench_pipeline: %s\n", why);
	for (size_t k = 0; k < NREND; k++)
		pipeline_free(rs[k].pl);
	return ret ? -1 : 0;
}

/* What a worker does for each job, minus storage and transport. */
static int layered(const struct photo *ph, int n, struct plugin_set *set,
                   struct conf *conf)
{
	char why[1024];

	for (int i = 0; i < n; i++) {
		struct pipeline *pl =
		        pipeline_parse(PIPELINE, set, why, sizeof(why));
		struct image_info info;
		struct image_out out;

		if (!pl ||
		    image_probe(ph[i].buf, ph[i].len, &conf->app->limits, &info,
		                why, sizeof(why)) ||
		    image_run(pl, set, ph[i].buf, ph[i].len, &info,
		              &conf->app->limits, &out, why, sizeof(why))) {
			fprintf(stderr, "bench_pipeline: %s\n", why);
			pipeline_free(pl);
			return -1;
		}
		image_out_free(&out);
		pipeline_free(pl);
	}
	return 0;
}

/* One pass in a fresh process, as a worker starts; its numbers in *r. */
static int run_child(bool layer, const char *plugins, const struct photo *ph,
                     int n, struct result *r)
{
	struct rusage ru;
	int pfd[2], status;
	double t;
	pid_t pid;

	if (pipe(pfd) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		char err[CONF_ERR_MAX], ini[] = "/tmp/bench_pipeline.XXXXXX";
		struct plugin_set set = {0};
		struct conf *conf;
		int fd = mkstemp(ini), ret;

		dprintf(fd, "[node]\nplugin_dir = %s\n", plugins);
		close(fd);
		conf = conf_load(ini, err, sizeof(err));
		unlink(ini);
		if (!conf || image_init(1, err, sizeof(err)))
			_exit(2);
		host_set_conf(conf);
		if (layer) {
			ret = plugin_set_load(&set, plugins, err, sizeof(err));
			if (!ret)
				ret = plugin_set_configure(&set, conf, err,
				                           sizeof(err));
			for (struct plugin *p = set.head; !ret && p;
			     p = p->next)
				if (p->desc->kind == IMGNODE_KIND_FILTER)
					ret = plugin_start(p, err, sizeof(err));
			if (ret) {
				fprintf(stderr, "bench_pipeline: %s\n", err);
				_exit(2);
			}
		}
		t = now_s();
		if (renditions_mode())
			ret = layer ? layered_renditions(ph, n, &set, conf)
			            : bare_renditions(ph, n);
		else
			ret = layer ? layered(ph, n, &set, conf) : bare(ph, n);
		t = now_s() - t;
		if (write(pfd[1], &t, sizeof(t)) != sizeof(t))
			_exit(2);
		_exit(ret ? 1 : 0);
	}
	close(pfd[1]);
	if (read(pfd[0], &t, sizeof(t)) != sizeof(t))
		t = -1;
	close(pfd[0]);
	if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) || t < 0)
		return -1;
	r->wall_s += t;
	r->cpu_s += ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	            ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	if (ru.ru_maxrss > r->maxrss_kb)
		r->maxrss_kb = ru.ru_maxrss;
	r->images += n;
	return 0;
}

int main(int argc, char **argv)
{
	struct result res[2] = {{0}};
	struct photo *ph;
	int n = argc - 2;
	double ratio;

	node_conf_register();
	if (argc < 3) {
		fprintf(stderr, "usage: bench_pipeline PLUGIN_DIR PHOTO...\n");
		return 2;
	}
	const char *mode = getenv("BENCH_MODE");
	int rounds = getenv("BENCH_ROUNDS")
	                     ? (int)strtol(getenv("BENCH_ROUNDS"), NULL, 10)
	                     : ROUNDS;
	ph = calloc((size_t)n, sizeof(*ph));
	for (int i = 0; i < n; i++) {
		gsize len;
		gchar *buf;

		if (!g_file_get_contents(argv[i + 2], &buf, &len, NULL)) {
			fprintf(stderr, "bench_pipeline: cannot read %s\n",
			        argv[i + 2]);
			return 2;
		}
		ph[i].buf = buf;
		ph[i].len = len;
	}
	if (mode) {
		bool layer = strcmp(mode, "layered") == 0;
		for (int round = 0; round < rounds; round++)
			if (run_child(layer, argv[1], ph, n, &res[layer]))
				return 1;
		printf("%ld %.6f %.6f\n", res[layer].images, res[layer].wall_s,
		       res[layer].cpu_s);
		return 0;
	}
	for (int round = 0; round < rounds; round++)
		for (int layer = 0; layer < 2; layer++)
			if (run_child(layer, argv[1], ph, n, &res[layer])) {
				fprintf(stderr,
				        "bench_pipeline: a %s pass failed\n",
				        layer ? "layered" : "bare");
				return 1;
			}
	printf("%-26s %8s %12s %12s\n",
	       renditions_mode() ? "4 renditions, 1600..150 px" : PIPELINE,
	       "img/s", "CPU ms/img", "peak RSS MB");
	for (int layer = 0; layer < 2; layer++)
		printf("%-26s %8.2f %12.1f %12.1f\n",
		       layer ? "imgnode pipeline layer" : "bare libvips loop",
		       res[layer].images / res[layer].wall_s,
		       res[layer].cpu_s * 1000 / res[layer].images,
		       res[layer].maxrss_kb / 1024.0);
	ratio = (res[0].wall_s / res[0].images) /
	        (res[1].wall_s / res[1].images);
	printf("imgnode throughput = %.1f%% of the bare loop over %d photos x %d rounds (target: cost under 3%%) -> %s\n",
	       ratio * 100, n, rounds, ratio >= 0.97 ? "ok" : "MISSED");
	return 0;
}
