/*
 * Renditions (see renditions.h): splitting ?renditions=, reading a
 * renditions job's record, and the worker's side, where the original is
 * decoded once into memory and every output made from that image.
 */
#include "renditions.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

#include "cost.h"
#include "node_conf.h"
#include "pipeline.h"

/* A new copy of text[from, to) without surrounding blanks, or NULL. */
static char *trimmed(const char *text, size_t from, size_t to)
{
	while (from < to && (text[from] == ' ' || text[from] == '\t'))
		from++;
	while (to > from && (text[to - 1] == ' ' || text[to - 1] == '\t'))
		to--;
	return strndup(text + from, to - from);
}

void renditions_parts_free(char **parts, size_t n)
{
	for (size_t i = 0; parts && i < n; i++)
		free(parts[i]);
	free(parts);
}

int renditions_split(const char *text, size_t max, char ***parts, char *err,
                     size_t errlen)
{
	char **out = calloc(max, sizeof(*out));
	size_t n = 0, start = 0, i;
	bool quoted = false;

	*parts = NULL;
	if (!out) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (i = 0;; i++) {
		char c = text[i];

		if (quoted && c == '\\' && text[i + 1]) {
			i++;
			continue;
		}
		if (c == '"')
			quoted = !quoted;
		if (c && (quoted || c != ';'))
			continue;
		if (n == max) {
			renditions_parts_free(out, n);
			snprintf(
			        err, errlen,
			        "more than %zu renditions ([limits] max_renditions)",
			        max);
			return -E2BIG;
		}
		out[n] = trimmed(text, start, i);
		if (!out[n]) {
			renditions_parts_free(out, n);
			snprintf(err, errlen, "out of memory");
			return -ENOMEM;
		}
		if (!out[n][0]) {
			renditions_parts_free(out, n + 1);
			snprintf(err, errlen, "rendition %zu is empty", n + 1);
			return -EINVAL;
		}
		n++;
		start = i + 1;
		if (!c)
			break;
	}
	*parts = out;
	return (int)n;
}

size_t renditions_count(json_t *rec)
{
	return json_array_size(json_object_get(rec, "renditions"));
}

int renditions_pick(json_t *rec, long k)
{
	json_t *results = json_object_get(rec, "results"), *one;
	const char *key;

	if (k < 0)
		return -ENOENT;
	if (!renditions_count(rec))
		return k == 0 ? 0 : -ENOENT;
	if (k >= (long)renditions_count(rec))
		return -ENOENT;
	one = json_array_get(results, (size_t)k);
	key = json_string_value(json_object_get(one, "key"));
	if (!key)
		return 0; /* not done (or failed): answered from the status */
	json_object_set_new(rec, "result", json_string(key));
	json_object_set(rec, "output", one);
	return 0;
}

/* "rendition K PIPELINE: " before a reason, the pipeline cut if long. */
static void name_rendition(size_t i, const struct pipeline *pl, const char *why,
                           char *err, size_t errlen)
{
	int n = (int)strlen(pl->canonical);

	snprintf(err, errlen, "rendition %zu %.*s%s: %s", i + 1,
	         n > 80 ? 80 : n, pl->canonical, n > 80 ? "..." : "", why);
}

/*
 * The box the shared decode is shrunk into, when each pipeline to run
 * starts with a loading step that predicts its size (thumbnail, resize):
 * the upright input scaled by the largest factor any of them needs on
 * either axis (its output before any crop, over the input's), so that
 * even a step that does not keep the aspect ratio has the pixels it
 * needs. False when one does not, or a step needs the whole input: the
 * original is then decoded at its own size.
 */
static bool shared_box(const struct rendition *rs, size_t n,
                       const struct image_info *info, int64_t *w, int64_t *h)
{
	const struct imgnode_geometry in = {
	        .width = info->width,
	        .height = info->height,
	        .bands = info->bands > 0 ? info->bands : 3,
	        .band_bytes = info->band_bytes > 0 ? info->band_bytes : 1,
	        .orientation = info->orientation > 0 ? info->orientation : 1,
	};
	bool turn = in.orientation >= 5; /* a quarter turn: axes swap */
	double uw = (double)(turn ? in.height : in.width);
	double uh = (double)(turn ? in.width : in.height);
	double scale = 0;
	char why[256];

	for (size_t i = 0; i < n; i++) {
		const struct pipeline *pl = rs[i].pl;
		const struct pipeline_step *st = &pl->steps[0];
		struct imgnode_geometry g = in;
		double need;

		if (rs[i].stored)
			continue;
		if (pl->n == 0 || !(st->ops->flags & IMGNODE_FILTER_LOADS) ||
		    !st->predict)
			return false;
		g.work_width = g.work_height = g.min_bytes = 0;
		if (st->predict(st->state, &in, st->args, &g, why, sizeof(why)))
			return false; /* cost_check said so already */
		need = VIPS_MAX(
		        (double)(g.work_width ? g.work_width : g.width) / uw,
		        (double)(g.work_height ? g.work_height : g.height) /
		                uh);
		scale = VIPS_MAX(scale, need);
	}
	if (scale <= 0 || scale >= 1)
		return false;
	/* rounded up: never fewer pixels than needed */
	*w = (int64_t)(uw * scale + 0.999);
	*h = (int64_t)(uh * scale + 0.999);
	return true;
}

/*
 * The original decoded once, computed into memory: with shrink-on-load
 * into the box of shared_box, turned upright (as thumbnail does), or
 * whole and as it is. A new reference or NULL with a reason in err.
 */
static VipsImage *shared_decode(const struct rendition *rs, size_t n,
                                const void *buf, size_t len,
                                const struct image_info *info,
                                const struct limits_conf *lim, char *err,
                                size_t errlen)
{
	char options[64];
	int64_t w, h;
	VipsImage *lazy = NULL, *mem;
	int ret;

	/* one pass into memory: sequential access always holds */
	image_load_options(lim, info, true, options, sizeof(options));
	if (shared_box(rs, n, info, &w, &h))
		ret = vips_thumbnail_buffer(
		        (void *)buf, len, &lazy, (int)w, "height", (int)h,
		        "size", VIPS_SIZE_DOWN, "option_string", options, NULL);
	else
		ret = !(lazy = vips_image_new_from_buffer(buf, len, options,
		                                          NULL));
	if (ret) {
		snprintf(err, errlen, "corrupt %s: %s", info->format,
		         vips_error_buffer());
		vips_error_clear();
		return NULL;
	}
	/* the shared image is the largest any step reads: the cost check */
	if ((int64_t)lazy->Xsize * lazy->Ysize > lim->max_pixels ||
	    lazy->Xsize > lim->max_dimension ||
	    lazy->Ysize > lim->max_dimension) {
		snprintf(
		        err, errlen,
		        "the shared decode %dx%d is over max_pixels or max_dimension",
		        lazy->Xsize, lazy->Ysize);
		g_object_unref(lazy);
		return NULL;
	}
	mem = vips_image_copy_memory(lazy);
	g_object_unref(lazy);
	if (!mem) {
		snprintf(err, errlen, "corrupt %s: %s", info->format,
		         vips_error_buffer());
		vips_error_clear();
	}
	return mem;
}

void renditions_out_free(struct rendition *rs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		image_out_free(&rs[i].out);
}

int renditions_run(struct rendition *rs, size_t n, const struct plugin_set *set,
                   const void *buf, size_t len, const struct image_info *info,
                   const struct limits_conf *lim, int *decodes, char *err,
                   size_t errlen)
{
	char why[1024];
	VipsImage *shared;
	size_t todo = 0;
	int ret;

	*decodes = 0;
	for (size_t i = 0; i < n; i++) {
		memset(&rs[i].out, 0, sizeof(rs[i].out));
		if (rs[i].stored)
			continue;
		todo++;
		/* nothing is decoded before every output is known to fit */
		ret = cost_check(rs[i].pl, set, info, lim, why, sizeof(why));
		if (ret) {
			name_rendition(i, rs[i].pl, why, err, errlen);
			return ret;
		}
	}
	if (!todo)
		return 0;
	vips_error_clear();
	shared = shared_decode(rs, n, buf, len, info, lim, err, errlen);
	if (!shared)
		return -EINVAL;
	*decodes = 1;
	for (size_t i = 0; i < n; i++) {
		if (rs[i].stored)
			continue;
		g_object_ref(shared); /* image_run_steps takes one */
		ret = image_run_steps(rs[i].pl, set, shared, 0, info, lim,
		                      &rs[i].out, why, sizeof(why));
		if (ret) {
			name_rendition(i, rs[i].pl, why, err, errlen);
			g_object_unref(shared);
			renditions_out_free(rs, n);
			return ret;
		}
	}
	g_object_unref(shared);
	return 0;
}
