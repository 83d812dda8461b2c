/*
 * sharpen([sigma]): an unsharp mask on lightness only (vips_sharpen works
 * in LabS, so colours do not fringe), with libvips' default strengths.
 * sigma is the size of the detail to sharpen; 0.5 suits a downsized photo.
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_SIGMA };

static const struct imgnode_arg args[] = {
        {"sigma", IMGNODE_ARG_NUMBER, "0.5", 0.1, 10, NULL,
         "Size of the detail to sharpen (Gaussian sigma), in pixels."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/*
 * vips_sharpen converts its input to LabS and reads that image twice, for
 * the lightness and for its blur, and libvips keeps no pixels between two
 * readers: unless the two reads line up (a loader's lazy pipeline computed
 * in strips: 1.03 conversions a pixel), the conversion, the larger part of
 * the cost, runs twice for every pixel. It does from an image in memory,
 * such as the shared decode of a renditions job (2.03; libvips 8.14 and
 * 8.18; measured on 8.14: 110 -> 82 ms CPU at 1600x1066). Here the
 * conversion runs once, into a small cache both readers share;
 * vips_sharpen then gets LabS and converts nothing, and its result goes
 * back to the input's interpretation as vips_sharpen itself does: the same
 * pixels (test_sharpen compares them and counts the reads).
 *
 * The cache holds tiles SHARPEN_TILE wide rather than whole lines, so that
 * a later step reading in tiles (rotate) makes it compute no more than it
 * asks for, and a fixed number of them: two of the sink's buffers of lines
 * per thread, whatever the access, so its memory stays a few strips.
 */
#define SHARPEN_TILE 256
#define SHARPEN_TILE_HEIGHT 16

/* vips_sharpen on one frame, already LabS: LabS out. */
static int sharpen_op(VipsImage *in, VipsImage **out, const void *arg)
{
	return vips_sharpen(in, out, "sigma", *(const double *)arg, NULL);
}

/* in converted to LabS, behind the cache: a new reference, or NULL. One
 * cache for every frame of an animation, so its memory stays bounded. */
static VipsImage *lab_cached(VipsImage *in)
{
	VipsImage *lab, *cached;
	int tile_width, tile_height, lines, across, r;

	if (vips_colourspace(in, &lab, VIPS_INTERPRETATION_LABS, NULL))
		return NULL;
	/* lines: the height of the buffers a sink computes */
	vips_get_tile_size(lab, &tile_width, &tile_height, &lines);
	across = (lab->Xsize + SHARPEN_TILE - 1) / SHARPEN_TILE;
	r = vips_tilecache(lab, &cached, "tile_width", SHARPEN_TILE,
	                   "tile_height", SHARPEN_TILE_HEIGHT, "max_tiles",
	                   across * (2 + 2 * lines / SHARPEN_TILE_HEIGHT) *
	                           vips_concurrency_get(),
	                   "threaded", TRUE, NULL);
	g_object_unref(lab);
	return r ? NULL : cached;
}

static int sharpen_apply(void *state, VipsImage *in,
                         const union imgnode_value *args, VipsImage **out,
                         char *err, size_t errlen)
{
	VipsImage *lab, *sharp;
	int r;

	(void)state;
	filter_start();
	lab = lab_cached(in);
	if (!lab)
		return filter_fail(err, errlen, NULL);
	r = filter_per_frame(lab, &sharp, sharpen_op, &args[ARG_SIGMA].n, err,
	                     errlen);
	g_object_unref(lab);
	if (r)
		return r;
	r = vips_colourspace(sharp, out, in->Type, NULL);
	g_object_unref(sharp);
	return r ? filter_fail(err, errlen, NULL) : 0;
}

static int sharpen_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.n = 0.5}};

	(void)state;
	return filter_selftest_apply(sharpen_apply, a, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_FRAMES | IMGNODE_FILTER_SEQUENTIAL,
        .apply = sharpen_apply,
        .selftest = sharpen_selftest,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "sharpen",
        .version = "1.0",
        .description = "Sharpen edges (unsharp mask on lightness).",
        .ops = &ops,
};
