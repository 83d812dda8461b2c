/*
 * The cost check (see cost.h). A step's shape goes from filter to filter
 * as a struct imgnode_geometry, starting from the input's header; a filter
 * without a predict hook is taken to keep the shape it gets, and its real
 * size is checked once built (cost_check_built, called by image_run).
 */
#include "cost.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../plugin.h"
#include "image_info.h"
#include "node_conf.h"
#include "pipeline.h"

#define MB 1e6
#define MIB (1024.0 * 1024.0)

/* A step's text in messages is cut after this many characters. */
#define NAME_MAX_SHOWN 96

/* One step, as messages name it: its index and its canonical text. */
struct step_name {
	size_t index; /* 1-based */
	const char *text;
	int len;
};

/* Fills n for the step at index (0-based) whose text is len bytes. */
static void step_name(struct step_name *n, size_t index, const char *text,
                      size_t len)
{
	n->index = index + 1;
	n->text = text;
	n->len = len > NAME_MAX_SHOWN ? NAME_MAX_SHOWN : (int)len;
}

/* "..." after a step's text that was cut. */
static const char *cut(const struct step_name *n)
{
	return n->len == NAME_MAX_SHOWN && n->text[n->len] ? "..." : "";
}

/*
 * Checks a width x height image of frames frames that a step makes (what:
 * "output", or what it makes on its way) against the pixel and dimension
 * limits: max_dimension for a frame's sides, max_pixels for all frames.
 */
static int check_size(const struct step_name *n, const char *what,
                      int64_t width, int64_t height, int64_t frames,
                      const struct limits_conf *lim, char *err, size_t errlen)
{
	double pixels = (double)width * (double)height * (double)frames;
	char times[48] = "";

	if (width > lim->max_dimension || height > lim->max_dimension) {
		snprintf(
		        err, errlen,
		        "step %zu %.*s%s: %s %lldx%lld is over max_dimension (%lld pixels a side)",
		        n->index, n->len, n->text, cut(n), what,
		        (long long)width, (long long)height,
		        (long long)lim->max_dimension);
		return -E2BIG;
	}
	if (pixels > (double)lim->max_pixels) {
		if (frames > 1)
			snprintf(times, sizeof(times), " x %lld frames",
			         (long long)frames);
		snprintf(
		        err, errlen,
		        "step %zu %.*s%s: %s %lldx%lld%s (%.4g Mpx) is over max_pixels (%.4g Mpx)",
		        n->index, n->len, n->text, cut(n), what,
		        (long long)width, (long long)height, times, pixels / MB,
		        (double)lim->max_pixels / MB);
		return -E2BIG;
	}
	return 0;
}

/* Checks one predicted step: its output, its work, its least bytes. */
static int check_step(const struct step_name *n,
                      const struct imgnode_geometry *g,
                      const struct limits_conf *lim, char *err, size_t errlen)
{
	int ret = check_size(n, "output", g->width, g->height, g->frames, lim,
	                     err, errlen);

	if (!ret && (g->work_width > g->width || g->work_height > g->height))
		ret = check_size(n, "intermediate image", g->work_width,
		                 g->work_height, g->frames, lim, err, errlen);
	if (!ret && g->min_bytes > lim->max_output) {
		snprintf(
		        err, errlen,
		        "step %zu %.*s%s: output of at least %.4g MiB is over max_output (%.4g MiB)",
		        n->index, n->len, n->text, cut(n),
		        (double)g->min_bytes / MIB,
		        (double)lim->max_output / MIB);
		ret = -EFBIG;
	}
	return ret;
}

/*
 * Runs predict (if any) from in into out and checks the result. On an
 * animation, a filter without IMGNODE_FILTER_FRAMES (flags) is refused
 * and an encoder without it gets the first frame only (image_run).
 */
static int predict_step(const struct step_name *n, pipeline_predict_fn predict,
                        void *state, unsigned flags,
                        const union imgnode_value *args,
                        struct imgnode_geometry *g,
                        const struct limits_conf *lim, char *err, size_t errlen)
{
	struct imgnode_geometry out;
	char why[512];
	int ret;

	if (g->frames > 1 && !(flags & IMGNODE_FILTER_FRAMES)) {
		if (!(flags & IMGNODE_FILTER_ENCODER)) {
			snprintf(
			        err, errlen,
			        "step %zu %.*s%s: cannot work on animations (%lld frames); use frame(N) first",
			        n->index, n->len, n->text, cut(n),
			        (long long)g->frames);
			return -ENOTSUP;
		}
		g->frames = 1;
	}
	out = *g;
	out.work_width = out.work_height = out.min_bytes = 0;
	if (predict) {
		why[0] = '\0';
		ret = predict(state, g, args, &out, why, sizeof(why));
		if (ret) {
			snprintf(err, errlen, "step %zu %.*s%s: %s", n->index,
			         n->len, n->text, cut(n),
			         why[0] ? why : "refused by its filter");
			return ret;
		}
	}
	ret = check_step(n, &out, lim, err, errlen);
	*g = out;
	return ret;
}

int cost_check(const struct pipeline *pl, const struct plugin_set *set,
               const struct image_info *info, const struct limits_conf *lim,
               char *err, size_t errlen)
{
	struct imgnode_geometry g = {
	        .width = info->width,
	        .height = info->height,
	        .bands = info->bands > 0 ? info->bands : 3,
	        .band_bytes = info->band_bytes > 0 ? info->band_bytes : 1,
	        .orientation = info->orientation > 0 ? info->orientation : 1,
	        .frames = image_frames(info),
	};
	union imgnode_value defaults[16];
	const struct plugin *enc;
	struct step_name n;
	int ret;

	for (size_t i = 0; i < pl->n; i++) {
		const struct pipeline_step *st = &pl->steps[i];

		step_name(&n, i, pl->canonical + st->at, st->len);
		ret = predict_step(&n, st->predict, st->state, st->ops->flags,
		                   st->args, &g, lim, err, errlen);
		if (ret)
			return ret;
	}
	if (pipeline_has_encoder(pl))
		return 0;
	/* the encoder for the input's format, with its defaults */
	enc = pipeline_default_encoder(set, info->format);
	if (!enc || enc->desc->abi_minor < 1)
		return 0; /* image_run says there is none */
	const struct imgnode_filter_ops *ops = enc->desc->ops;
	if (!ops->predict || pipeline_default_args(ops->args, defaults, 16))
		return 0;
	step_name(&n, pl->n, enc->desc->name, strlen(enc->desc->name));
	return predict_step(&n, ops->predict, enc->state, ops->flags, defaults,
	                    &g, lim, err, errlen);
}

int cost_check_built(const struct pipeline *pl, size_t i, int64_t width,
                     int64_t height, int64_t frames,
                     const struct limits_conf *lim, char *err, size_t errlen)
{
	struct step_name n;

	step_name(&n, i, pl->canonical + pl->steps[i].at, pl->steps[i].len);
	return check_size(&n, "output", width, height, frames, lim, err,
	                  errlen);
}

int cost_check_output(const char *encoder, size_t len,
                      const struct limits_conf *lim, char *err, size_t errlen)
{
	if ((int64_t)len <= lim->max_output)
		return 0;
	snprintf(
	        err, errlen,
	        "%s: the encoded result is %.4g MiB, over max_output (%.4g MiB)",
	        encoder, (double)len / MIB, (double)lim->max_output / MIB);
	return -EFBIG;
}
