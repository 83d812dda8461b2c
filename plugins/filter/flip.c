/*
 * flip(horizontal|vertical): mirrors the image left-right (horizontal) or
 * top-bottom (vertical) with vips_flip, an animation frame by frame.
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_DIRECTION };

static const char *const directions[] = {"horizontal", "vertical", NULL};
static const VipsDirection direction_values[] = {VIPS_DIRECTION_HORIZONTAL,
                                                 VIPS_DIRECTION_VERTICAL};

static const struct imgnode_arg args[] = {
        {"direction", IMGNODE_ARG_ENUM, NULL, 0, 0, directions,
         "horizontal mirrors left-right, vertical top-bottom."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int flip_op(VipsImage *in, VipsImage **out, const void *arg)
{
	return vips_flip(in, out, *(const VipsDirection *)arg, NULL);
}

static int flip_apply(void *state, VipsImage *in,
                      const union imgnode_value *args, VipsImage **out,
                      char *err, size_t errlen)
{
	(void)state;
	filter_start();
	return filter_per_frame(in, out, flip_op,
	                        &direction_values[args[ARG_DIRECTION].e], err,
	                        errlen);
}

static int flip_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.e = 0}};

	(void)state;
	return filter_selftest_apply(flip_apply, a, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_FRAMES,
        .apply = flip_apply,
        .selftest = flip_selftest,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "flip",
        .version = "1.0",
        .description = "Mirror the image left-right or top-bottom.",
        .ops = &ops,
};
