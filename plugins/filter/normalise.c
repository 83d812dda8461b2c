/*
 * normalise([lower][, upper]): stretches the image's lightness to the full
 * range: the lightness below which lower percent of the pixels lie becomes
 * black, the one above which 100 - upper percent lie becomes white, and
 * everything between is stretched linearly (in CIE Lab, so hues keep; the
 * percentiles as sharp's normalise takes them). An image whose lightness
 * barely varies is left as it is. The result goes back to the image's own
 * colour space; alpha is untouched. Finding the percentiles needs every
 * pixel before the encoder runs, so the image as it is at this step is
 * computed into memory once (the loaders read their input once, in
 * order): put normalise after the steps that shrink the image.
 */
#include <vips/vips.h>

#include "colour.h"

enum { ARG_LOWER, ARG_UPPER };

static const struct imgnode_arg args[] = {
        {"lower", IMGNODE_ARG_NUMBER, "1", 0, 99, NULL,
         "Percentile of lightness that becomes black."},
        {"upper", IMGNODE_ARG_NUMBER, "99", 1, 100, NULL,
         "Percentile of lightness that becomes white."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int normalise_op(VipsImage *in, VipsImage **out, const void *arg)
{
	const union imgnode_value *a = arg;
	VipsImage *base = vips_image_new(), **t;
	int lo, hi, r = -1;

	t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(base), 7);
	if (!(t[6] = vips_image_copy_memory(in)))
		goto out;
	in = t[6];
	if (vips_colourspace(in, &t[0], VIPS_INTERPRETATION_LAB, NULL) ||
	    vips_extract_band(t[0], &t[1], 0, NULL) ||
	    vips_cast(t[1], &t[2], VIPS_FORMAT_UCHAR, NULL) ||
	    vips_percent(t[2], a[ARG_LOWER].n, &lo, NULL) ||
	    vips_percent(t[2], a[ARG_UPPER].n, &hi, NULL))
		goto out;
	if (hi - lo <= 1) { /* flat: nothing to stretch */
		g_object_ref(in);
		*out = in;
		r = 0;
		goto out;
	}
	if (vips_linear1(t[1], &t[3], 100.0 / (hi - lo),
	                 -100.0 * lo / (hi - lo), NULL) ||
	    vips_extract_band(t[0], &t[4], 1, "n", 2, NULL) ||
	    vips_bandjoin2(t[3], t[4], &t[5], NULL) ||
	    vips_colourspace(t[5], out, colour_space_of(in), "source_space",
	                     VIPS_INTERPRETATION_LAB, NULL))
		goto out;
	r = 0;
out:
	g_object_unref(base);
	return r;
}

static int normalise_apply(void *state, VipsImage *in,
                           const union imgnode_value *args, VipsImage **out,
                           char *err, size_t errlen)
{
	(void)state;
	filter_start();
	if (args[ARG_LOWER].n >= args[ARG_UPPER].n) {
		snprintf(err, errlen, "lower (%g) must be below upper (%g)",
		         args[ARG_LOWER].n, args[ARG_UPPER].n);
		return -EINVAL;
	}
	if (colour_on_colour_bands(in, out, normalise_op, args))
		return filter_fail(err, errlen, NULL);
	return 0;
}

static int normalise_predict(void *state, const struct imgnode_geometry *in,
                             const union imgnode_value *args,
                             struct imgnode_geometry *out, char *err,
                             size_t errlen)
{
	(void)state;
	if (args[ARG_LOWER].n >= args[ARG_UPPER].n) {
		snprintf(err, errlen, "lower (%g) must be below upper (%g)",
		         args[ARG_LOWER].n, args[ARG_UPPER].n);
		return -EINVAL;
	}
	if (in->band_bytes > 2)
		out->band_bytes = 1;
	return 0;
}

static int normalise_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.n = 1}, {.n = 99}};

	(void)state;
	return filter_selftest_apply(normalise_apply, a, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .apply = normalise_apply,
        .selftest = normalise_selftest,
        .predict = normalise_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "normalise",
        .version = "1.0",
        .description = "Stretch lightness to the full range, black to white.",
        .ops = &ops,
};
