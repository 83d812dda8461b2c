/*
 * gamma([g]): gamma correction of the colour bands (vips_gamma: each value
 * v of the band's range 0..max becomes max * (v / max) ^ (1 / g)), so g
 * above 1 lightens the mid-tones and below 1 darkens them; black and white
 * stay. Alpha is untouched; the depth (8 or 16 bits) is kept.
 */
#include <vips/vips.h>

#include "colour.h"

enum { ARG_G };

static const struct imgnode_arg args[] = {
        {"g", IMGNODE_ARG_NUMBER, "2.2", 0.1, 10, NULL,
         "Gamma: above 1 lightens the mid-tones, below 1 darkens them."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int gamma_op(VipsImage *in, VipsImage **out, const void *arg)
{
	VipsImage *t;
	int r;

	if (vips_gamma(in, &t, "exponent", *(const double *)arg, NULL))
		return -1;
	r = vips_cast(t, out, in->BandFmt, NULL);
	g_object_unref(t);
	return r;
}

static int gamma_apply(void *state, VipsImage *in,
                       const union imgnode_value *args, VipsImage **out,
                       char *err, size_t errlen)
{
	(void)state;
	filter_start();
	if (colour_on_colour_bands(in, out, gamma_op, &args[ARG_G].n))
		return filter_fail(err, errlen, NULL);
	return 0;
}

static int gamma_predict(void *state, const struct imgnode_geometry *in,
                         const union imgnode_value *args,
                         struct imgnode_geometry *out, char *err, size_t errlen)
{
	(void)state, (void)in, (void)args, (void)out, (void)err, (void)errlen;
	return 0; /* the same shape and depth */
}

static int gamma_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.n = 2.2}};

	(void)state;
	return filter_selftest_apply(gamma_apply, a, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .apply = gamma_apply,
        .selftest = gamma_selftest,
        .predict = gamma_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "gamma",
        .version = "1.0",
        .description = "Gamma correction: lighten or darken the mid-tones.",
        .ops = &ops,
};
