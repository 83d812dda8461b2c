/*
 * thumbnail(width[, height][, crop=none|centre|attention|entropy]
 *           [, size=down|up|both]): fits the image in a box.
 *
 * As the first step of a pipeline it decodes the upload itself with
 * vips_thumbnail_buffer, which shrinks while decoding (JPEG DCT scaling,
 * WebP scaling, TIFF/HEIF pyramids and thumbnails): the main reason imgnode
 * is fast. Later in a pipeline it runs vips_thumbnail_image on the image so
 * far. Both turn the image upright from its EXIF orientation first, and
 * both premultiply alpha while resampling.
 *
 * height 0 (the default) means no limit: thumbnail(800) is 800 pixels wide
 * whatever the height, and a portrait image is not squeezed into 800x800.
 * With a crop and no height the box is square. size=down (the default)
 * never enlarges, so a small upload comes back at its own size.
 *
 * What load returns reads the upload lazily and in one pass: buf must stay
 * valid until the encoder has run, and the pipeline can be computed only
 * once (a second run fails with "out of order read").
 */
#include <math.h>

#include <vips/vips.h>

#include "filter.h"

enum { ARG_WIDTH, ARG_HEIGHT, ARG_CROP, ARG_SIZE };

static const char *const crops[] = {"none", "centre", "attention", "entropy",
                                    NULL};
static const VipsInteresting crop_values[] = {
        VIPS_INTERESTING_NONE, VIPS_INTERESTING_CENTRE,
        VIPS_INTERESTING_ATTENTION, VIPS_INTERESTING_ENTROPY};

static const char *const sizes[] = {"down", "up", "both", NULL};
static const VipsSize size_values[] = {VIPS_SIZE_DOWN, VIPS_SIZE_UP,
                                       VIPS_SIZE_BOTH};

static const struct imgnode_arg args[] = {
        {"width", IMGNODE_ARG_INT, NULL, 1, VIPS_MAX_COORD, NULL,
         "Width of the box, in pixels."},
        {"height", IMGNODE_ARG_INT, "0", 0, VIPS_MAX_COORD, NULL,
         "Height of the box; 0: no limit (a square with crop)."},
        {"crop", IMGNODE_ARG_ENUM, "none", 0, 0, crops,
         "Fill the box and cut off the rest, keeping this part."},
        {"size", IMGNODE_ARG_ENUM, "down", 0, 0, sizes,
         "Only shrink (down), only enlarge (up), or both."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* The box's height for vips_thumbnail from the height argument. */
static int box_height(const union imgnode_value *args)
{
	if (args[ARG_HEIGHT].i > 0)
		return (int)args[ARG_HEIGHT].i;
	if (args[ARG_CROP].e != 0)
		return (int)args[ARG_WIDTH].i;
	return VIPS_MAX_COORD;
}

static int thumbnail_load(void *state, const void *buf, size_t len,
                          const char *options, const union imgnode_value *args,
                          VipsImage **out, char *err, size_t errlen)
{
	(void)state;
	filter_start();
	if (vips_thumbnail_buffer(
	            (void *)buf, len, out, (int)args[ARG_WIDTH].i, "height",
	            box_height(args), "crop", crop_values[args[ARG_CROP].e],
	            "size", size_values[args[ARG_SIZE].e], "option_string",
	            options ? options : "", NULL))
		return filter_fail(err, errlen, "unable to load the image");
	return 0;
}

static int thumbnail_apply(void *state, VipsImage *in,
                           const union imgnode_value *args, VipsImage **out,
                           char *err, size_t errlen)
{
	(void)state;
	filter_start();
	if (vips_thumbnail_image(in, out, (int)args[ARG_WIDTH].i, "height",
	                         box_height(args), "crop",
	                         crop_values[args[ARG_CROP].e], "size",
	                         size_values[args[ARG_SIZE].e], NULL))
		return filter_fail(err, errlen, NULL);
	return 0;
}

/*
 * The size vips_thumbnail makes, computed as it does (libvips 8.14,
 * thumbnail.c): turned upright first, one shrink factor for both axes
 * (the larger, to fit the box; the smaller with a crop, to fill it),
 * limited by size=down|up, then a resize rounding to whole pixels; a crop
 * then cuts the resized image down to the box. The resized image before
 * the crop is the step's work: crop=attention looks at all of it.
 */
static int thumbnail_predict(void *state, const struct imgnode_geometry *in,
                             const union imgnode_value *args,
                             struct imgnode_geometry *out, char *err,
                             size_t errlen)
{
	bool turn = filter_quarter_turn(in->orientation);
	double w = (double)(turn ? in->height : in->width);
	double h = (double)(turn ? in->width : in->height);
	double box_w = (double)args[ARG_WIDTH].i, box_h = box_height(args);
	double hshrink = w / box_w, vshrink = h / box_h, shrink;
	int64_t rw, rh;

	(void)state, (void)err, (void)errlen;
	if (args[ARG_CROP].e != 0)
		shrink = VIPS_MIN(hshrink, vshrink);
	else
		shrink = VIPS_MAX(hshrink, vshrink);
	if (size_values[args[ARG_SIZE].e] == VIPS_SIZE_UP)
		shrink = VIPS_MIN(1, shrink);
	else if (size_values[args[ARG_SIZE].e] == VIPS_SIZE_DOWN)
		shrink = VIPS_MAX(1, shrink);
	hshrink = VIPS_MIN(shrink, w); /* never an axis down to 0 */
	vshrink = VIPS_MIN(shrink, h);
	rw = VIPS_MAX(1, (int64_t)rint(w / hshrink));
	rh = VIPS_MAX(1, (int64_t)rint(h / vshrink));
	out->width = rw;
	out->height = rh;
	out->orientation = 1;
	if (args[ARG_CROP].e != 0) {
		out->width = VIPS_MIN(rw, (int64_t)box_w);
		out->height = VIPS_MIN(rh, (int64_t)box_h);
		out->work_width = rw;
		out->work_height = rh;
	}
	return 0;
}

/* Loads a 64x48 PNG to 16 wide (16x12: the aspect kept), then applies. */
static int thumbnail_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {
	        {.i = 16}, {.i = 0}, {.e = 0}, {.e = 0}};
	VipsImage *in, *out;
	void *png;
	size_t len;
	int r;

	(void)state;
	if (!(in = filter_test_image()) ||
	    vips_pngsave_buffer(in, &png, &len, NULL)) {
		if (in)
			g_object_unref(in);
		return filter_fail(err, errlen, "self-test: no test image");
	}
	g_object_unref(in);
	r = thumbnail_load(NULL, png, len, "fail_on=truncated", a, &out, err,
	                   errlen);
	if (!r) {
		if (out->Xsize != 16 || out->Ysize != 12) {
			snprintf(err, errlen, "self-test made %dx%d, not 16x12",
			         out->Xsize, out->Ysize);
			r = -EPROTO;
		}
		g_object_unref(out);
	}
	g_free(png);
	if (r)
		return r;
	return filter_selftest_apply(thumbnail_apply, a, 16, 12, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_LOADS | IMGNODE_FILTER_FRAMES,
        .apply = thumbnail_apply,
        .load = thumbnail_load,
        .selftest = thumbnail_selftest,
        .predict = thumbnail_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "thumbnail",
        .version = "1.0",
        .description = "Fit the image in a box, shrinking while decoding "
                       "when first in a pipeline.",
        .ops = &ops,
};
