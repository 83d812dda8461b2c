/*
 * trim([threshold][, background]): cuts off a border of one colour, as
 * libvips' find_trim finds it: the smallest rectangle holding every pixel
 * that differs from the background by more than threshold (0 to 255, in
 * 8-bit units also for 16-bit images). background "auto" (the default)
 * is the top-left pixel's colour, as in sharp and ImageMagick; else a
 * colour (see filter.h). Transparent pixels count as background. An image
 * that is all background is left whole rather than cut to nothing.
 *
 * find_trim reads every pixel before the rest of the pipeline runs, so
 * the image so far is computed into memory first (the pipeline is built to
 * be read once); the predicted work is the whole input. An animation is
 * refused: its frames would each need another cut.
 */
#include <string.h>

#include <vips/vips.h>

#include "filter.h"

enum { ARG_THRESHOLD, ARG_BACKGROUND };

static const struct imgnode_arg args[] = {
        {"threshold", IMGNODE_ARG_NUMBER, "10", 0, 255, NULL,
         "How far from the background a pixel may be and still be "
         "border."},
        {"background", IMGNODE_ARG_STRING, "auto", 0, 0, NULL,
         "The border's colour: auto (the top-left pixel's), rrggbb or a "
         "name."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* The background as find_trim wants it: one value a band but alpha. */
static VipsArrayDouble *background_of(VipsImage *img, const char *text,
                                      char *err, size_t errlen)
{
	int bands = img->Bands - (vips_image_hasalpha(img) ? 1 : 0);
	struct filter_colour c;
	VipsArrayDouble *ink;
	double *v;
	int n;

	if (strcmp(text, "auto")) {
		if (filter_parse_colour("background", text, &c, err, errlen))
			return NULL;
		if (bands > 2 || filter_colour_grey(&c))
			return filter_colour_ink(img, bands, &c);
		snprintf(err, errlen,
		         "background %s is a colour: this image is grey", text);
		return NULL;
	}
	if (vips_getpoint(img, &v, &n, 0, 0, NULL)) {
		filter_fail(err, errlen, "unable to read the top-left pixel");
		return NULL;
	}
	ink = vips_array_double_new(v, VIPS_MIN(n, bands));
	g_free(v);
	return ink;
}

/* Checks the arguments without an image: the colour parses. */
static int check_args(const union imgnode_value *args, char *err, size_t errlen)
{
	struct filter_colour c;

	if (!strcmp(args[ARG_BACKGROUND].s, "auto"))
		return 0;
	return filter_parse_colour("background", args[ARG_BACKGROUND].s, &c,
	                           err, errlen);
}

static int trim_apply(void *state, VipsImage *in,
                      const union imgnode_value *args, VipsImage **out,
                      char *err, size_t errlen)
{
	double threshold = args[ARG_THRESHOLD].n;
	int left, top, width, height, r;
	VipsArrayDouble *bg;
	VipsImage *mem;

	(void)state;
	filter_start();
	if (filter_one_page(in, err, errlen))
		return -ENOTSUP;
	if ((r = check_args(args, err, errlen)))
		return r;
	if (!(mem = vips_image_copy_memory(in)))
		return filter_fail(err, errlen, NULL);
	if (!(bg = background_of(mem, args[ARG_BACKGROUND].s, err, errlen))) {
		g_object_unref(mem);
		return -EINVAL;
	}
	threshold *= filter_max_value(mem) / 255;
	r = vips_find_trim(mem, &left, &top, &width, &height, "threshold",
	                   threshold, "background", bg, NULL);
	vips_area_unref(VIPS_AREA(bg));
	if (r)
		r = filter_fail(err, errlen, "unable to find the border");
	else if (width <= 0 || height <= 0
	                 ? vips_copy(mem, out, NULL)
	                 : vips_crop(mem, out, left, top, width, height, NULL))
		r = filter_fail(err, errlen, NULL);
	g_object_unref(mem);
	return r;
}

/* At most the input: the output size depends on the pixels. The whole
 * input is held in memory. */
static int trim_predict(void *state, const struct imgnode_geometry *in,
                        const union imgnode_value *args,
                        struct imgnode_geometry *out, char *err, size_t errlen)
{
	(void)state, (void)in, (void)out;
	return check_args(args, err, errlen);
}

/* The test image inside a white border of 5: trimmed back to 64x48. */
static int trim_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.n = 10}, {.s = "auto"}};
	VipsImage *in, *framed, *out;
	VipsArrayDouble *white;
	int r;

	(void)state;
	if (!(in = filter_test_image()))
		return filter_fail(err, errlen, "self-test: no test image");
	white = vips_array_double_newv(3, 255.0, 255.0, 255.0);
	r = vips_embed(in, &framed, 5, 5, 74, 58, "extend",
	               VIPS_EXTEND_BACKGROUND, "background", white, NULL);
	vips_area_unref(VIPS_AREA(white));
	g_object_unref(in);
	if (r)
		return filter_fail(err, errlen, "self-test: no test image");
	r = trim_apply(NULL, framed, a, &out, err, errlen);
	g_object_unref(framed);
	if (r)
		return r;
	if (out->Xsize != 64 || out->Ysize != 48) {
		snprintf(err, errlen, "self-test trimmed to %dx%d, not 64x48",
		         out->Xsize, out->Ysize);
		r = -EPROTO;
	}
	g_object_unref(out);
	return r;
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .apply = trim_apply,
        .selftest = trim_selftest,
        .predict = trim_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "trim",
        .version = "1.0",
        .description = "Cut off a border of one colour.",
        .ops = &ops,
};
