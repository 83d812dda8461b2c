/*
 * smartcrop(width, height[, interesting=attention|entropy|centre]): cuts
 * the image down to width x height, keeping its most interesting part
 * (vips_smartcrop: attention looks for skin tones, saturated colours and
 * edges; entropy for detail). A box larger than the image is clipped to it,
 * so a small upload comes back whole rather than as an error. An animation
 * (a multi-page image) is refused.
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_WIDTH, ARG_HEIGHT, ARG_INTERESTING };

static const char *const interesting[] = {"attention", "entropy", "centre",
                                          NULL};
static const VipsInteresting interesting_values[] = {VIPS_INTERESTING_ATTENTION,
                                                     VIPS_INTERESTING_ENTROPY,
                                                     VIPS_INTERESTING_CENTRE};

static const struct imgnode_arg args[] = {
        {"width", IMGNODE_ARG_INT, NULL, 1, VIPS_MAX_COORD, NULL,
         "Width to keep, in pixels."},
        {"height", IMGNODE_ARG_INT, NULL, 1, VIPS_MAX_COORD, NULL,
         "Height to keep, in pixels."},
        {"interesting", IMGNODE_ARG_ENUM, "attention", 0, 0, interesting,
         "How to find the part to keep."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int smartcrop_apply(void *state, VipsImage *in,
                           const union imgnode_value *args, VipsImage **out,
                           char *err, size_t errlen)
{
	int width = (int)VIPS_MIN(args[ARG_WIDTH].i, in->Xsize);
	int height = (int)VIPS_MIN(args[ARG_HEIGHT].i, in->Ysize);

	(void)state;
	filter_start();
	if (filter_one_page(in, err, errlen))
		return -ENOTSUP;
	if (vips_smartcrop(in, out, width, height, "interesting",
	                   interesting_values[args[ARG_INTERESTING].e], NULL))
		return filter_fail(err, errlen, NULL);
	return 0;
}

static int smartcrop_predict(void *state, const struct imgnode_geometry *in,
                             const union imgnode_value *args,
                             struct imgnode_geometry *out, char *err,
                             size_t errlen)
{
	(void)state, (void)err, (void)errlen;
	out->width = VIPS_MIN(args[ARG_WIDTH].i, in->width);
	out->height = VIPS_MIN(args[ARG_HEIGHT].i, in->height);
	return 0;
}

static int smartcrop_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.i = 20}, {.i = 100}, {.e = 0}};

	(void)state;
	return filter_selftest_apply(smartcrop_apply, a, 20, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .apply = smartcrop_apply,
        .selftest = smartcrop_selftest,
        .predict = smartcrop_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "smartcrop",
        .version = "1.0",
        .description = "Cut the image down to a size, keeping its most "
                       "interesting part.",
        .ops = &ops,
};
