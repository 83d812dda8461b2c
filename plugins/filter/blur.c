/*
 * blur(sigma): a Gaussian blur (vips_gaussblur), sigma in pixels. Alpha is
 * premultiplied while blurring so transparent pixels do not darken their
 * neighbours. The cost grows with sigma (the mask is about 6 sigma wide);
 * the bound keeps one step reasonable.
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_SIGMA };

static const struct imgnode_arg args[] = {
        {"sigma", IMGNODE_ARG_NUMBER, NULL, 0.1, 50, NULL,
         "Radius of the blur (Gaussian sigma), in pixels."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int blur_op(VipsImage *in, VipsImage **out, const void *arg)
{
	return vips_gaussblur(in, out, *(const double *)arg, NULL);
}

/* One frame: blurred with its alpha premultiplied. */
static int blur_frame(VipsImage *in, VipsImage **out, const void *arg)
{
	return filter_premultiplied(in, out, blur_op, arg);
}

static int blur_apply(void *state, VipsImage *in,
                      const union imgnode_value *args, VipsImage **out,
                      char *err, size_t errlen)
{
	(void)state;
	filter_start();
	return filter_per_frame(in, out, blur_frame, &args[ARG_SIGMA].n, err,
	                        errlen);
}

static int blur_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.n = 2}};

	(void)state;
	return filter_selftest_apply(blur_apply, a, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_FRAMES | IMGNODE_FILTER_SEQUENTIAL,
        .apply = blur_apply,
        .selftest = blur_selftest,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "blur",
        .version = "1.0",
        .description = "Gaussian blur.",
        .ops = &ops,
};
