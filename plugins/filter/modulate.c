/*
 * modulate([brightness][, saturation][, hue][, lightness]): changes the
 * image's brightness and saturation by a factor and turns its hue by
 * degrees, in the LCh colour space (lightness, chroma, hue), as sharp's
 * modulate does: L is multiplied by brightness and lightness added to it,
 * C multiplied by saturation, hue added to h. The result goes back to the
 * image's own colour space (sRGB, 16-bit RGB, grey); alpha is untouched.
 */
#include <vips/vips.h>

#include "colour.h"

enum { ARG_BRIGHTNESS, ARG_SATURATION, ARG_HUE, ARG_LIGHTNESS };

static const struct imgnode_arg args[] = {
        {"brightness", IMGNODE_ARG_NUMBER, "1", 0, 100, NULL,
         "Factor on lightness: 1 keeps it, 0.5 halves it, 2 doubles it."},
        {"saturation", IMGNODE_ARG_NUMBER, "1", 0, 100, NULL,
         "Factor on chroma: 0 is grey, 1 keeps it."},
        {"hue", IMGNODE_ARG_NUMBER, "0", -360, 360, NULL,
         "Degrees to turn the hue by."},
        {"lightness", IMGNODE_ARG_NUMBER, "0", -100, 100, NULL,
         "Added to lightness (L, 0..100) after brightness."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int modulate_op(VipsImage *in, VipsImage **out, const void *arg)
{
	const union imgnode_value *a = arg;
	double mul[3] = {a[ARG_BRIGHTNESS].n, a[ARG_SATURATION].n, 1};
	double add[3] = {a[ARG_LIGHTNESS].n, 0, a[ARG_HUE].n};
	VipsImage *lch, *moved;
	int r;

	if (vips_colourspace(in, &lch, VIPS_INTERPRETATION_LCH, NULL))
		return -1;
	r = vips_linear(lch, &moved, mul, add, 3, NULL);
	g_object_unref(lch);
	if (r)
		return -1;
	r = vips_colourspace(moved, out, colour_space_of(in), NULL);
	g_object_unref(moved);
	return r;
}

static int modulate_apply(void *state, VipsImage *in,
                          const union imgnode_value *args, VipsImage **out,
                          char *err, size_t errlen)
{
	(void)state;
	filter_start();
	if (colour_on_colour_bands(in, out, modulate_op, args))
		return filter_fail(err, errlen, NULL);
	return 0;
}

/* The same shape; floats come back as 8-bit sRGB. */
static int modulate_predict(void *state, const struct imgnode_geometry *in,
                            const union imgnode_value *args,
                            struct imgnode_geometry *out, char *err,
                            size_t errlen)
{
	(void)state, (void)args, (void)err, (void)errlen;
	if (in->band_bytes > 2)
		out->band_bytes = 1;
	return 0;
}

static int modulate_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {
	        {.n = 1.2}, {.n = 0.5}, {.n = 90}, {.n = 0}};

	(void)state;
	return filter_selftest_apply(modulate_apply, a, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .apply = modulate_apply,
        .selftest = modulate_selftest,
        .predict = modulate_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "modulate",
        .version = "1.0",
        .description = "Change brightness and saturation by a factor, turn "
                       "the hue by degrees.",
        .ops = &ops,
};
