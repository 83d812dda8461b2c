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

static int sharpen_op(VipsImage *in, VipsImage **out, const void *arg)
{
	return vips_sharpen(in, out, "sigma", *(const double *)arg, NULL);
}

static int sharpen_apply(void *state, VipsImage *in,
                         const union imgnode_value *args, VipsImage **out,
                         char *err, size_t errlen)
{
	(void)state;
	filter_start();
	return filter_per_frame(in, out, sharpen_op, &args[ARG_SIGMA].n, err,
	                        errlen);
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
