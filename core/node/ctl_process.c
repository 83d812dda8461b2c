/*
 * imgnodectl process IN PIPELINE OUT: one pipeline on one file, with the
 * code the workers run (plugin loading, input checks, image_run), without a
 * daemon, a transport or a storage. For users trying a pipeline and for the
 * benchmarks.
 */
#include "ctl_process.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../base.h"
#include "../host.h"
#include "../plugin.h"
#include "../util.h"
#include "image.h"
#include "negotiate.h"
#include "node_conf.h"
#include "pipeline.h"

#define READ_MAX (INT64_C(4) << 30)

/* Reads path ("-": stdin) whole; NULL with errno. */
static void *read_input(const char *path, size_t *len, int64_t max)
{
	int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
	size_t cap = 1 << 20, n = 0;
	char *buf;

	if (fd < 0)
		return NULL;
	buf = malloc(cap);
	if (!buf)
		goto out_err;
	for (;;) {
		ssize_t got;
		if (n == cap) {
			char *bigger = realloc(buf, cap *= 2);
			if (!bigger)
				goto out_err;
			buf = bigger;
		}
		got = read(fd, buf + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			goto out_err;
		if (got == 0)
			break;
		n += (size_t)got;
		if ((int64_t)n > max) {
			errno = EFBIG;
			goto out_err;
		}
	}
	if (fd)
		close(fd);
	*len = n;
	return buf;

out_err:
	if (fd)
		close(fd);
	free(buf);
	return NULL;
}

/* Writes buf to path ("-": stdout); a file is replaced atomically. */
static int write_output(const char *path, const void *buf, size_t len)
{
	char tmp[4200];
	int fd, ret;

	if (!strcmp(path, "-"))
		return util_write_all(1, buf, len);
	snprintf(tmp, sizeof(tmp), "%s.tmp~%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	ret = util_write_all(fd, buf, len);
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

static void human(size_t bytes, char *buf, size_t len)
{
	if (bytes >= 1 << 20)
		snprintf(buf, len, "%.1f MiB", bytes / 1048576.0);
	else if (bytes >= 1 << 10)
		snprintf(buf, len, "%.1f KiB", bytes / 1024.0);
	else
		snprintf(buf, len, "%zu B", bytes);
}

int node_process(const char *config, bool explicit_config, const char *in,
                 const char *text, const char *out)
{
	struct plugin_set set = {0};
	char err[CONF_ERR_MAX], why[1024], a[32], b[32], frames[32] = "";
	struct image_info info;
	struct image_out res;
	struct pipeline *pl = NULL;
	struct timespec t0, t1;
	struct conf *conf;
	void *buf = NULL;
	size_t len = 0;
	int ret, code = 1;

	/* without a config file, the built-in defaults */
	if (!explicit_config && access(config, F_OK) != 0)
		config = "/dev/null";
	conf = conf_load(config, err, sizeof(err));
	if (!conf) {
		fprintf(stderr, "imgnodectl: %s\n", err);
		return EXIT_PERMANENT;
	}
	host_set_conf(conf);
	ret = image_init((int)conf->app->workers.concurrency, err, sizeof(err));
	if (!ret)
		ret = plugin_set_load(&set, conf->node.plugin_dir, err,
		                      sizeof(err));
	if (!ret)
		ret = plugin_set_configure(&set, conf, err, sizeof(err));
	for (struct plugin *p = set.head; !ret && p; p = p->next)
		if (p->desc->kind == IMGNODE_KIND_FILTER)
			ret = plugin_start(p, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "imgnodectl: %s\n", err);
		code = 100;
		goto out;
	}
	pl = pipeline_parse(text, &set, why, sizeof(why));
	if (!pl) {
		fprintf(stderr, "imgnodectl: bad pipeline: %s\n", why);
		goto out;
	}
	buf = read_input(in, &len, READ_MAX);
	if (!buf) {
		fprintf(stderr, "imgnodectl: cannot read %s: %s\n", in,
		        strerror(errno));
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = image_probe(buf, len, &conf->app->limits, &info, why,
	                  sizeof(why));
	/* no client to ask: auto picks by the image alone */
	if (!ret)
		ret = negotiate_pipeline(&pl, &set, NULL, &info,
		                         &conf->app->formats, why, sizeof(why));
	if (!ret)
		ret = image_run(pl, &set, buf, len, &info, &conf->app->limits,
		                &res, why, sizeof(why));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ret) {
		fprintf(stderr, "imgnodectl: %s: %s\n", in, why);
		goto out;
	}
	ret = write_output(out, res.buf, res.len);
	if (ret) {
		fprintf(stderr, "imgnodectl: cannot write %s: %s\n", out,
		        strerror(-ret));
		image_out_free(&res);
		goto out;
	}
	human(len, a, sizeof(a));
	human(res.len, b, sizeof(b));
	if (res.frames > 1)
		snprintf(frames, sizeof(frames), " (%d frames)", res.frames);
	fprintf(stderr, "%s %dx%d %s -> %s %dx%d%s %s in %.1f ms\n",
	        info.format, info.width, info.height, a, res.format, res.width,
	        res.height, frames, b,
	        (t1.tv_sec - t0.tv_sec) * 1e3 +
	                (t1.tv_nsec - t0.tv_nsec) / 1e6);
	image_out_free(&res);
	code = 0;
out:
	free(buf);
	pipeline_free(pl);
	plugin_set_free(&set);
	conf_free(conf);
	return code;
}
