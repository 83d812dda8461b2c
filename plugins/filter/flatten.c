/*
 * flatten([background]): removes the alpha band, blending the image onto
 * background (a colour, see filter.h; its own alpha is ignored). A grey
 * image flattened onto a colour becomes sRGB. An image without alpha is
 * left as it is. Works on animations as on any image (pixel by pixel).
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_BACKGROUND };

static const struct imgnode_arg args[] = {
        {"background", IMGNODE_ARG_STRING, "black", 0, 0, NULL,
         "The colour under the image, rrggbb or a name."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int flatten_apply(void *state, VipsImage *in,
                         const union imgnode_value *args, VipsImage **out,
                         char *err, size_t errlen)
{
	struct filter_colour c;
	VipsArrayDouble *ink;
	VipsImage *ready = NULL;
	int r;

	(void)state;
	filter_start();
	if (filter_parse_colour("background", args[ARG_BACKGROUND].s, &c, err,
	                        errlen))
		return -EINVAL;
	if (!vips_image_hasalpha(in))
		return vips_copy(in, out, NULL) ? filter_fail(err, errlen, NULL)
		                                : 0;
	if ((r = filter_colour_ready(in, &c, false, &ready, err, errlen)))
		return r;
	/* the colour without its alpha: one value a band but the alpha */
	if (!(ink = filter_colour_ink(ready, ready->Bands - 1, &c))) {
		snprintf(err, errlen,
		         "cannot paint a colour on a %d-band image",
		         ready->Bands);
		g_object_unref(ready);
		return -ENOTSUP;
	}
	r = vips_flatten(ready, out, "background", ink, "max_alpha",
	                 filter_max_value(ready), NULL);
	vips_area_unref(VIPS_AREA(ink));
	g_object_unref(ready);
	return r ? filter_fail(err, errlen, NULL) : 0;
}

/* One band fewer if there is alpha (2 or 4 bands), after a grey image
 * has taken a colour. */
static int flatten_predict(void *state, const struct imgnode_geometry *in,
                           const union imgnode_value *args,
                           struct imgnode_geometry *out, char *err,
                           size_t errlen)
{
	struct filter_colour c;

	(void)state;
	if (filter_parse_colour("background", args[ARG_BACKGROUND].s, &c, err,
	                        errlen))
		return -EINVAL;
	if (in->bands == 2 || in->bands == 4)
		out->bands = filter_colour_bands(in->bands, &c, false) - 1;
	return 0;
}

/* The test image with alpha added, flattened: back to 3 bands. */
static int flatten_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.s = "white"}};
	VipsImage *in, *rgba, *out;
	int r;

	(void)state;
	if (!(in = filter_test_image()))
		return filter_fail(err, errlen, "self-test: no test image");
	r = vips_addalpha(in, &rgba, NULL);
	g_object_unref(in);
	if (r)
		return filter_fail(err, errlen, "self-test: no test image");
	r = flatten_apply(NULL, rgba, a, &out, err, errlen);
	g_object_unref(rgba);
	if (r)
		return r;
	if (out->Bands != 3) {
		snprintf(err, errlen, "self-test made %d bands, not 3",
		         out->Bands);
		r = -EPROTO;
	}
	g_object_unref(out);
	return r ? r
	         : filter_selftest_apply(flatten_apply, a, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_FRAMES,
        .apply = flatten_apply,
        .selftest = flatten_selftest,
        .predict = flatten_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "flatten",
        .version = "1.0",
        .description = "Remove alpha, blending the image onto a colour.",
        .ops = &ops,
};
