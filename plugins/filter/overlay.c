/*
 * overlay(image[, gravity][, x][, y][, opacity][, scale]): composites an
 * image stored through the API (POST /v1/images: a logo), named by its id,
 * over the image: placed by gravity (a corner, an edge or the centre), x
 * and y pixels in from the edges it touches, at opacity, and scale (a
 * fraction of the image's width; 0 keeps the logo's own size). The logo
 * keeps its aspect and never gets bigger than the image, so the step costs
 * no more than the image itself; a logo larger than the image is cut at
 * its edges. An animation gets the logo on every frame.
 *
 * The host fetches the logo from storage, checks it against [limits] and
 * decodes it with the same safe loader options as uploads before apply (an
 * IMGNODE_ARG_IMAGE argument); an unknown id fails the job ("overlay: no
 * image ...").
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_IMAGE, ARG_GRAVITY, ARG_X, ARG_Y, ARG_OPACITY, ARG_SCALE };

static const char *const compass[] = {FILTER_COMPASS_CHOICES, NULL};

static const struct imgnode_arg args[] = {
        {"image", IMGNODE_ARG_IMAGE, NULL, 0, 0, NULL,
         "The id of a stored image (POST /v1/images), e.g. a logo."},
        {"gravity", IMGNODE_ARG_ENUM, "southeast", 0, 0, compass,
         "Where it goes: centre, an edge or a corner (north, northeast...)."},
        {"x", IMGNODE_ARG_INT, "0", 0, 10000, NULL,
         "Pixels in from the left or right edge it touches."},
        {"y", IMGNODE_ARG_INT, "0", 0, 10000, NULL,
         "Pixels in from the top or bottom edge it touches."},
        {"opacity", IMGNODE_ARG_NUMBER, "1", 0, 1, NULL,
         "0 is invisible, 1 as the image is (its own alpha kept)."},
        {"scale", IMGNODE_ARG_NUMBER, "0", 0, 1, NULL,
         "Its width as a fraction of the image's; 0: its own size."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* The logo, ready to composite, and where it goes on each frame. */
struct placed {
	VipsImage *logo; /* sRGB + alpha, 8-bit, opacity applied */
	int left, top;
};

/*
 * Where a w x h logo goes on a width x height frame for compass point g:
 * x and y move it in from the edges it touches.
 */
static void place(int g, int width, int height, int w, int h, int x, int y,
                  struct placed *p)
{
	int64_t left, top, side, end;

	filter_compass(g, false, width, height, w, h, &left, &top);
	/* which edges g touches: 0 the left (top), 1 none, 2 the right */
	filter_compass(g, false, 2, 2, 0, 0, &side, &end);
	p->left = (int)(left + (side == 0 ? x : side == 2 ? -x : 0));
	p->top = (int)(top + (end == 0 ? y : end == 2 ? -y : 0));
}

static int resize_op(VipsImage *in, VipsImage **out, const void *arg)
{
	return vips_resize(in, out, *(const double *)arg, NULL);
}

/*
 * The logo as composited on a width x height frame: sRGB with alpha,
 * scaled, its alpha times opacity. A new reference in *out; 0 or -1.
 */
static int prepare(VipsImage *image, const union imgnode_value *args, int width,
                   int height, VipsImage **out)
{
	VipsImage *base = vips_image_new(), **t;
	double scale = args[ARG_SCALE].n, opacity = args[ARG_OPACITY].n;
	double mul[4] = {1, 1, 1, opacity}, add[4] = {0, 0, 0, 0};
	int r;

	t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(base), 4);
	r = vips_colourspace(image, &t[0], VIPS_INTERPRETATION_sRGB, NULL);
	if (!r && !vips_image_hasalpha(t[0]))
		r = vips_bandjoin_const1(t[0], &t[1], 255, NULL);
	else if (!r)
		r = vips_copy(t[0], &t[1], NULL);
	if (!r && scale > 0) {
		double f = VIPS_MIN(scale * width / t[1]->Xsize,
		                    (double)height / t[1]->Ysize);
		r = filter_premultiplied(t[1], &t[2], resize_op, &f);
	} else if (!r)
		r = vips_copy(t[1], &t[2], NULL);
	if (!r)
		r = vips_linear(t[2], &t[3], mul, add, 4, "uchar", TRUE,
		                NULL) ||
		    vips_copy(t[3], out, NULL);
	g_object_unref(base);
	return r ? -1 : 0;
}

/* One frame with the logo composited over it, in the frame's bands and
 * band format. */
static int overlay_frame(VipsImage *in, VipsImage **out, const void *arg)
{
	const struct placed *p = arg;
	VipsImage *base = vips_image_new(), **t;
	bool grey = in->Bands < 3;
	int bands = grey ? 1 : 3, r;

	t = (VipsImage **)vips_object_local_array(VIPS_OBJECT(base), 3);
	r = vips_composite2(in, p->logo, &t[0], VIPS_BLEND_MODE_OVER, "x",
	                    p->left, "y", p->top, NULL);
	if (!r && grey)
		r = vips_colourspace(t[0], &t[1], VIPS_INTERPRETATION_B_W,
		                     NULL);
	else if (!r)
		r = vips_copy(t[0], &t[1], NULL);
	if (!r && !vips_image_hasalpha(in))
		r = vips_extract_band(t[1], &t[2], 0, "n", bands, NULL);
	else if (!r)
		r = vips_copy(t[1], &t[2], NULL);
	if (!r)
		r = vips_cast(t[2], out, in->BandFmt, NULL);
	g_object_unref(base);
	return r ? -1 : 0;
}

static int overlay_apply(void *state, VipsImage *in,
                         const union imgnode_value *args, VipsImage **out,
                         char *err, size_t errlen)
{
	int page = vips_image_get_page_height(in), r;
	struct placed p;

	(void)state;
	filter_start();
	if (!args[ARG_IMAGE].image) {
		snprintf(err, errlen, "no image given");
		return -EINVAL;
	}
	if (prepare(args[ARG_IMAGE].image, args, in->Xsize, page, &p.logo))
		return filter_fail(err, errlen, "unable to prepare the image");
	place(args[ARG_GRAVITY].e, in->Xsize, page, p.logo->Xsize,
	      p.logo->Ysize, (int)args[ARG_X].i, (int)args[ARG_Y].i, &p);
	r = filter_per_frame(in, out, overlay_frame, &p, err, errlen);
	g_object_unref(p.logo);
	return r;
}

/* The image keeps its size and bands: the logo is cut to it. */
static int overlay_predict(void *state, const struct imgnode_geometry *in,
                           const union imgnode_value *args,
                           struct imgnode_geometry *out, char *err,
                           size_t errlen)
{
	(void)state, (void)in, (void)args, (void)out, (void)err, (void)errlen;
	return 0;
}

/* The test image over itself at half its width, half transparent. */
static int overlay_selftest(void *state, char *err, size_t errlen)
{
	union imgnode_value a[] = {{.image = NULL}, {.e = 6},   {.i = 2},
	                           {.i = 2},        {.n = 0.5}, {.n = 0.5}};
	int r;

	(void)state;
	if (!(a[ARG_IMAGE].image = filter_test_image()))
		return filter_fail(err, errlen, "self-test: no test image");
	r = filter_selftest_apply(overlay_apply, a, 64, 48, err, errlen);
	g_object_unref(a[ARG_IMAGE].image);
	return r;
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_FRAMES,
        .apply = overlay_apply,
        .selftest = overlay_selftest,
        .predict = overlay_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "overlay",
        .version = "1.0",
        .description = "Composite a stored image (a logo) over the image.",
        .ops = &ops,
};
