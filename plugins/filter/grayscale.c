/*
 * grayscale: converts the image to one band of luminance
 * (vips_colourspace to b-w, or grey16 for 16-bit images), keeping an alpha
 * band if there is one: an RGBA PNG comes out as gray + alpha.
 */
#include <vips/vips.h>

#include "filter.h"

static const struct imgnode_arg args[] = {
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int grayscale_apply(void *state, VipsImage *in,
                           const union imgnode_value *args, VipsImage **out,
                           char *err, size_t errlen)
{
	VipsInterpretation to = VIPS_INTERPRETATION_B_W;

	(void)state, (void)args;
	filter_start();
	if (in->Type == VIPS_INTERPRETATION_RGB16 ||
	    in->Type == VIPS_INTERPRETATION_GREY16)
		to = VIPS_INTERPRETATION_GREY16;
	if (vips_colourspace(in, out, to, NULL))
		return filter_fail(err, errlen, NULL);
	return 0;
}

/* One band of luminance, plus alpha if there was one. */
static int grayscale_predict(void *state, const struct imgnode_geometry *in,
                             const union imgnode_value *args,
                             struct imgnode_geometry *out, char *err,
                             size_t errlen)
{
	(void)state, (void)args, (void)err, (void)errlen;
	out->bands = in->bands == 2 || in->bands == 4 ? 2 : 1;
	return 0;
}

static int grayscale_selftest(void *state, char *err, size_t errlen)
{
	(void)state;
	return filter_selftest_apply(grayscale_apply, NULL, 64, 48, err,
	                             errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_FRAMES | IMGNODE_FILTER_SEQUENTIAL,
        .apply = grayscale_apply,
        .selftest = grayscale_selftest,
        .predict = grayscale_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "grayscale",
        .version = "1.0",
        .description = "Convert to shades of gray, keeping alpha.",
        .ops = &ops,
};
