/*
 * threshold([value][, grayscale]): makes every pixel black or white: a
 * value at or above the threshold becomes 255, below it 0 (as sharp's
 * threshold). With grayscale (the default) the image is turned grey first
 * and comes out one band; without it each colour band is thresholded on
 * its own. value is on the 8-bit scale; 16-bit images are compared at
 * their own scale (value x 257). Alpha is kept; the result is 8-bit.
 */
#include <vips/vips.h>

#include "colour.h"

enum { ARG_VALUE, ARG_GRAYSCALE };

static const struct imgnode_arg args[] = {
        {"value", IMGNODE_ARG_INT, "128", 0, 255, NULL,
         "Threshold on the 8-bit scale: values at or above it turn white."},
        {"grayscale", IMGNODE_ARG_BOOL, "true", 0, 0, NULL,
         "Turn the image grey first (one band out)."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int threshold_op(VipsImage *in, VipsImage **out, const void *arg)
{
	const union imgnode_value *a = arg;
	bool wide = in->BandFmt == VIPS_FORMAT_USHORT;
	double value = (double)a[ARG_VALUE].i * (wide ? 257 : 1);
	VipsImage *grey = NULL;
	int r;

	if (a[ARG_GRAYSCALE].b &&
	    vips_colourspace(in, &grey,
	                     wide ? VIPS_INTERPRETATION_GREY16
	                          : VIPS_INTERPRETATION_B_W,
	                     NULL))
		return -1;
	r = vips_moreeq_const1(grey ? grey : in, out, value, NULL);
	if (grey)
		g_object_unref(grey);
	return r;
}

static int threshold_apply(void *state, VipsImage *in,
                           const union imgnode_value *args, VipsImage **out,
                           char *err, size_t errlen)
{
	VipsImage *t;
	int r;

	(void)state;
	filter_start();
	if (colour_on_colour_bands(in, &t, threshold_op, args))
		return filter_fail(err, errlen, NULL);
	/* 0/255 bands, and alpha back at 8 bits; named for the encoders */
	r = vips_copy(t, out, "interpretation",
	              t->Bands <= 2 ? VIPS_INTERPRETATION_B_W
	                            : VIPS_INTERPRETATION_sRGB,
	              NULL);
	g_object_unref(t);
	if (r)
		return filter_fail(err, errlen, NULL);
	return 0;
}

static int threshold_predict(void *state, const struct imgnode_geometry *in,
                             const union imgnode_value *args,
                             struct imgnode_geometry *out, char *err,
                             size_t errlen)
{
	bool alpha = in->bands == 2 || in->bands == 4;

	(void)state, (void)err, (void)errlen;
	if (args[ARG_GRAYSCALE].b)
		out->bands = alpha ? 2 : 1;
	out->band_bytes = 1;
	return 0;
}

static int threshold_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.i = 128}, {.b = true}};

	(void)state;
	return filter_selftest_apply(threshold_apply, a, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .apply = threshold_apply,
        .selftest = threshold_selftest,
        .predict = threshold_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "threshold",
        .version = "1.0",
        .description = "Turn every pixel black or white at a threshold.",
        .ops = &ops,
};
