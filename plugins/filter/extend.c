/*
 * extend(top[, right][, bottom][, left][, background][, extend]): adds a
 * border of so many pixels on each side. As in CSS, a side left out (or
 * -1) is the opposite one: extend(10) is 10 all round, extend(10, 20) is 10
 * above and below, 20 left and right. The border is background (a colour,
 * see filter.h; one with alpha gives the image an alpha band), or copies
 * the edge pixels (extend=copy), mirrors the image (mirror) or repeats it
 * (repeat), as vips_embed does. An animation (libvips' page-height) gets
 * the border on every frame.
 */
#include <vips/vips.h>

#include "filter.h"

enum { ARG_TOP, ARG_RIGHT, ARG_BOTTOM, ARG_LEFT, ARG_BACKGROUND, ARG_EXTEND };

/* A border may not be wider than this (the host still checks the size). */
#define BORDER_MAX 10000

static const char *const extends[] = {"background", "copy", "mirror", "repeat",
                                      NULL};
static const VipsExtend extend_values[] = {VIPS_EXTEND_BACKGROUND,
                                           VIPS_EXTEND_COPY, VIPS_EXTEND_MIRROR,
                                           VIPS_EXTEND_REPEAT};

static const struct imgnode_arg args[] = {
        {"top", IMGNODE_ARG_INT, NULL, 0, BORDER_MAX, NULL,
         "Pixels added above."},
        {"right", IMGNODE_ARG_INT, "-1", -1, BORDER_MAX, NULL,
         "Pixels added on the right; -1: as top."},
        {"bottom", IMGNODE_ARG_INT, "-1", -1, BORDER_MAX, NULL,
         "Pixels added below; -1: as top."},
        {"left", IMGNODE_ARG_INT, "-1", -1, BORDER_MAX, NULL,
         "Pixels added on the left; -1: as right."},
        {"background", IMGNODE_ARG_STRING, "black", 0, 0, NULL,
         "extend=background: the border's colour, rrggbb[aa] or a name."},
        {"extend", IMGNODE_ARG_ENUM, "background", 0, 0, extends,
         "What the border is: background, copy (the edge), mirror, "
         "repeat."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* The four borders, the sides left out filled in, and the colour. */
struct border {
	int top, right, bottom, left;
	int extend;
	struct filter_colour background;
};

static int make_border(const union imgnode_value *args, struct border *b,
                       char *err, size_t errlen)
{
	b->top = (int)args[ARG_TOP].i;
	b->right = args[ARG_RIGHT].i < 0 ? b->top : (int)args[ARG_RIGHT].i;
	b->bottom = args[ARG_BOTTOM].i < 0 ? b->top : (int)args[ARG_BOTTOM].i;
	b->left = args[ARG_LEFT].i < 0 ? b->right : (int)args[ARG_LEFT].i;
	b->extend = args[ARG_EXTEND].e;
	return filter_parse_colour("background", args[ARG_BACKGROUND].s,
	                           &b->background, err, errlen);
}

static int extend_frame(VipsImage *in, VipsImage **out, const void *arg,
                        char *err, size_t errlen)
{
	const struct border *b = arg;
	int w = in->Xsize + b->left + b->right;
	int h = in->Ysize + b->top + b->bottom;

	if (extend_values[b->extend] != VIPS_EXTEND_BACKGROUND) {
		if (vips_embed(in, out, b->left, b->top, w, h, "extend",
		               extend_values[b->extend], NULL))
			return filter_fail(err, errlen, NULL);
		return 0;
	}
	return filter_embed_colour(in, b->left, b->top, w, h, &b->background,
	                           out, err, errlen);
}

static int extend_apply(void *state, VipsImage *in,
                        const union imgnode_value *args, VipsImage **out,
                        char *err, size_t errlen)
{
	struct border b;

	(void)state;
	filter_start();
	if (make_border(args, &b, err, errlen))
		return -EINVAL;
	return filter_frames(in, out, extend_frame, &b, err, errlen);
}

static int extend_predict(void *state, const struct imgnode_geometry *in,
                          const union imgnode_value *args,
                          struct imgnode_geometry *out, char *err,
                          size_t errlen)
{
	struct border b;

	(void)state;
	if (make_border(args, &b, err, errlen))
		return -EINVAL;
	out->width = in->width + b.left + b.right;
	out->height = in->height + b.top + b.bottom;
	if (extend_values[b.extend] == VIPS_EXTEND_BACKGROUND)
		out->bands =
		        filter_colour_bands(in->bands, &b.background, true);
	return 0;
}

static int extend_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.i = 1},          {.i = 2},
	                                 {.i = -1},         {.i = -1},
	                                 {.s = "ff000080"}, {.e = 0}};
	const union imgnode_value m[] = {{.i = 4},  {.i = -1},      {.i = -1},
	                                 {.i = -1}, {.s = "black"}, {.e = 2}};

	int r;

	(void)state;
	r = filter_selftest_apply(extend_apply, a, 68, 50, err, errlen);
	return r ? r
	         : filter_selftest_apply(extend_apply, m, 72, 56, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_FRAMES,
        .apply = extend_apply,
        .selftest = extend_selftest,
        .predict = extend_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "extend",
        .version = "1.0",
        .description = "Add a border: a colour, or the image's edge "
                       "copied, mirrored or repeated.",
        .ops = &ops,
};
