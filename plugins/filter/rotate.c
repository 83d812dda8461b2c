/*
 * rotate(90|180|270): turns the image clockwise by a right angle, without
 * resampling (vips_rot). Other angles are refused when the pipeline is
 * parsed: "45" is not one of 90, 180, 270. An animation turns frame by
 * frame.
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_ANGLE };

static const char *const angles[] = {"90", "180", "270", NULL};
static const VipsAngle angle_values[] = {VIPS_ANGLE_D90, VIPS_ANGLE_D180,
                                         VIPS_ANGLE_D270};

static const struct imgnode_arg args[] = {
        {"angle", IMGNODE_ARG_ENUM, NULL, 0, 0, angles,
         "Degrees clockwise: 90, 180 or 270."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int rotate_op(VipsImage *in, VipsImage **out, const void *arg)
{
	return vips_rot(in, out, *(const VipsAngle *)arg, NULL);
}

static int rotate_apply(void *state, VipsImage *in,
                        const union imgnode_value *args, VipsImage **out,
                        char *err, size_t errlen)
{
	(void)state;
	filter_start();
	return filter_per_frame(in, out, rotate_op,
	                        &angle_values[args[ARG_ANGLE].e], err, errlen);
}

static int rotate_predict(void *state, const struct imgnode_geometry *in,
                          const union imgnode_value *args,
                          struct imgnode_geometry *out, char *err,
                          size_t errlen)
{
	(void)state, (void)err, (void)errlen;
	if (angle_values[args[ARG_ANGLE].e] != VIPS_ANGLE_D180) {
		out->width = in->height;
		out->height = in->width;
	}
	return 0;
}

static int rotate_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.e = 0}};

	(void)state;
	return filter_selftest_apply(rotate_apply, a, 48, 64, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_FRAMES,
        .apply = rotate_apply,
        .selftest = rotate_selftest,
        .predict = rotate_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "rotate",
        .version = "1.0",
        .description = "Turn the image clockwise by 90, 180 or 270 degrees.",
        .ops = &ops,
};
