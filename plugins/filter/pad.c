/*
 * pad(width, height[, gravity][, background]): places the image on a
 * width x height canvas of background (a colour, see filter.h; one with
 * alpha gives the image an alpha band), at gravity: the centre, an edge or
 * a corner. 0 keeps the image's own width or height. An image larger than
 * the canvas is an error naming both sizes, rather than silently cut:
 * resize(W, H, fit=inside) first, or use resize(W, H, fit=contain), which
 * does both. An animation (libvips' page-height) is padded frame by frame.
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_WIDTH, ARG_HEIGHT, ARG_GRAVITY, ARG_BACKGROUND };

static const char *const gravities[] = {FILTER_COMPASS_CHOICES, NULL};

static const struct imgnode_arg args[] = {
        {"width", IMGNODE_ARG_INT, NULL, 0, VIPS_MAX_COORD, NULL,
         "Canvas width in pixels; 0: the image's."},
        {"height", IMGNODE_ARG_INT, NULL, 0, VIPS_MAX_COORD, NULL,
         "Canvas height in pixels; 0: the image's."},
        {"gravity", IMGNODE_ARG_ENUM, "centre", 0, 0, gravities,
         "Where the image goes: centre, an edge or a corner."},
        {"background", IMGNODE_ARG_STRING, "black", 0, 0, NULL,
         "The canvas colour, rrggbb[aa] or a name."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* What one frame goes through. */
struct canvas {
	int64_t width, height; /* 0: the frame's */
	int gravity;
	struct filter_colour background;
};

static int pad_frame(VipsImage *in, VipsImage **out, const void *arg, char *err,
                     size_t errlen)
{
	const struct canvas *c = arg;
	int64_t w = c->width ? c->width : in->Xsize;
	int64_t h = c->height ? c->height : in->Ysize, x, y;

	if (in->Xsize > w || in->Ysize > h) {
		snprintf(
		        err, errlen,
		        "the %dx%d image does not fit on a %lldx%lld canvas; resize(%lld,%lld,fit=contain) shrinks and pads",
		        in->Xsize, in->Ysize, (long long)w, (long long)h,
		        (long long)w, (long long)h);
		return -EINVAL;
	}
	filter_compass(c->gravity, false, w, h, in->Xsize, in->Ysize, &x, &y);
	return filter_embed_colour(in, (int)x, (int)y, (int)w, (int)h,
	                           &c->background, out, err, errlen);
}

static int make_canvas(const union imgnode_value *args, struct canvas *c,
                       char *err, size_t errlen)
{
	c->width = args[ARG_WIDTH].i;
	c->height = args[ARG_HEIGHT].i;
	c->gravity = args[ARG_GRAVITY].e;
	return filter_parse_colour("background", args[ARG_BACKGROUND].s,
	                           &c->background, err, errlen);
}

static int pad_apply(void *state, VipsImage *in,
                     const union imgnode_value *args, VipsImage **out,
                     char *err, size_t errlen)
{
	struct canvas c;

	(void)state;
	filter_start();
	if (make_canvas(args, &c, err, errlen))
		return -EINVAL;
	return filter_frames(in, out, pad_frame, &c, err, errlen);
}

/* The canvas; whether the image fits is checked when applied. */
static int pad_predict(void *state, const struct imgnode_geometry *in,
                       const union imgnode_value *args,
                       struct imgnode_geometry *out, char *err, size_t errlen)
{
	struct canvas c;

	(void)state;
	if (make_canvas(args, &c, err, errlen))
		return -EINVAL;
	if (c.width)
		out->width = c.width;
	if (c.height)
		out->height = c.height;
	out->bands = filter_colour_bands(in->bands, &c.background, true);
	return 0;
}

static int pad_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {
	        {.i = 80}, {.i = 0}, {.e = 2}, {.s = "transparent"}};

	(void)state;
	return filter_selftest_apply(pad_apply, a, 80, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_FRAMES,
        .apply = pad_apply,
        .selftest = pad_selftest,
        .predict = pad_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "pad",
        .version = "1.0",
        .description = "Place the image on a canvas of a colour.",
        .ops = &ops,
};
