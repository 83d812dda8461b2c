/*
 * resize(scale): scales the image by a factor, keeping its aspect ratio,
 * with libvips' default Lanczos3 kernel. Alpha is premultiplied while
 * resampling. The bounds keep a single step from making an image more than
 * ten times wider; the host still checks the final size. An animation (a
 * multi-page image) is refused: thumbnail resizes those.
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_SCALE };

static const struct imgnode_arg args[] = {
        {"scale", IMGNODE_ARG_NUMBER, NULL, 0.001, 10, NULL,
         "Factor: 0.5 halves the width and height, 2 doubles them."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int resize_op(VipsImage *in, VipsImage **out, const void *arg)
{
	return vips_resize(in, out, *(const double *)arg, NULL);
}

static int resize_apply(void *state, VipsImage *in,
                        const union imgnode_value *args, VipsImage **out,
                        char *err, size_t errlen)
{
	(void)state;
	filter_start();
	if (filter_one_page(in, err, errlen))
		return -ENOTSUP;
	if (filter_premultiplied(in, out, resize_op, &args[ARG_SCALE].n))
		return filter_fail(err, errlen, NULL);
	return 0;
}

/* vips_resize rounds the scaled size to the nearest pixel, at least 1. */
static int resize_predict(void *state, const struct imgnode_geometry *in,
                          const union imgnode_value *args,
                          struct imgnode_geometry *out, char *err,
                          size_t errlen)
{
	double scale = args[ARG_SCALE].n;

	(void)state, (void)err, (void)errlen;
	out->width = VIPS_MAX(1, (int64_t)VIPS_RINT(in->width * scale));
	out->height = VIPS_MAX(1, (int64_t)VIPS_RINT(in->height * scale));
	return 0;
}

static int resize_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.n = 0.5}};

	(void)state;
	return filter_selftest_apply(resize_apply, a, 32, 24, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_SEQUENTIAL,
        .apply = resize_apply,
        .selftest = resize_selftest,
        .predict = resize_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "resize",
        .version = "1.0",
        .description = "Scale the image by a factor.",
        .ops = &ops,
};
