/*
 * tint(colour): tones the image in one colour, like a duotone print: each
 * pixel keeps its lightness (CIE Lab L) and takes the colour's hue, at
 * full strength in the mid-tones and fading to none in black and white
 * (a and b of the colour weighted by 1 - 4 (L/100 - 0.5)^2), as sharp's
 * tint does. The colour's alpha is ignored, as is the image's alpha band
 * (kept as it is). Colour syntax: filter.h. The result is 8-bit sRGB.
 */
#include <vips/vips.h>

#include "colour.h"

enum { ARG_COLOUR };

static const struct imgnode_arg args[] = {
        {"colour", IMGNODE_ARG_STRING, NULL, 0, 0, NULL,
         "The tint: " FILTER_COLOUR_HELP "."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* The colour's a and b in CIE Lab; 0 or -1 as libvips. */
static int lab_of(const struct filter_colour *c, double ab[2])
{
	double rgb[3] = {c->rgba[0], c->rgba[1], c->rgba[2]}, *v = NULL;
	VipsImage *t[3] = {NULL, NULL, NULL};
	int n = 0, r;

	r = vips_black(&t[0], 1, 1, "bands", 3, NULL) ||
	    vips_linear(t[0], &t[1], rgb, rgb, 3, "uchar", TRUE, NULL) ||
	    vips_colourspace(t[1], &t[2], VIPS_INTERPRETATION_LAB,
	                     "source_space", VIPS_INTERPRETATION_sRGB, NULL) ||
	    vips_getpoint(t[2], &v, &n, 0, 0, NULL);
	if (!r && n >= 3) {
		ab[0] = v[1];
		ab[1] = v[2];
	}
	g_free(v);
	for (int i = 0; i < 3; i++)
		if (t[i])
			g_object_unref(t[i]);
	return r || n < 3 ? -1 : 0;
}

static int tint_op(VipsImage *in, VipsImage **out, const void *arg)
{
	const double *ab = arg, zero[2] = {0, 0};
	VipsImage *base = vips_image_new(), **t;
	int r;

	t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(base), 7);
	/* w = 1 - 4 (l - 0.5)^2 with l = L / 100: 0 at black and white */
	r = vips_colourspace(in, &t[0], VIPS_INTERPRETATION_LAB, NULL) ||
	    vips_extract_band(t[0], &t[1], 0, NULL) ||
	    vips_linear1(t[1], &t[2], 0.01, -0.5, NULL) ||
	    vips_multiply(t[2], t[2], &t[3], NULL) ||
	    vips_linear1(t[3], &t[4], -4, 1, NULL) ||
	    vips_linear(t[4], &t[5], ab, zero, 2, NULL) ||
	    vips_bandjoin2(t[1], t[5], &t[6], NULL) ||
	    vips_colourspace(t[6], out, VIPS_INTERPRETATION_sRGB,
	                     "source_space", VIPS_INTERPRETATION_LAB, NULL);
	g_object_unref(base);
	return r ? -1 : 0;
}

static int tint_apply(void *state, VipsImage *in,
                      const union imgnode_value *args, VipsImage **out,
                      char *err, size_t errlen)
{
	struct filter_colour c;
	double ab[2];
	int r;

	(void)state;
	filter_start();
	r = filter_parse_colour("colour", args[ARG_COLOUR].s, &c, err, errlen);
	if (r)
		return r;
	if (lab_of(&c, ab) || colour_on_colour_bands(in, out, tint_op, ab))
		return filter_fail(err, errlen, NULL);
	return 0;
}

/* The colour is checked here too, so a bad one is refused at submission.
 * 8-bit sRGB, plus alpha if there was one. */
static int tint_predict(void *state, const struct imgnode_geometry *in,
                        const union imgnode_value *args,
                        struct imgnode_geometry *out, char *err, size_t errlen)
{
	struct filter_colour c;

	(void)state;
	if (filter_parse_colour("colour", args[ARG_COLOUR].s, &c, err, errlen))
		return -EINVAL;
	out->bands = in->bands == 2 || in->bands == 4 ? 4 : 3;
	out->band_bytes = 1;
	return 0;
}

static int tint_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.s = "#704214"}};

	(void)state;
	return filter_selftest_apply(tint_apply, a, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .apply = tint_apply,
        .selftest = tint_selftest,
        .predict = tint_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "tint",
        .version = "1.0",
        .description = "Tone the image in one colour, keeping its lightness.",
        .ops = &ops,
};
