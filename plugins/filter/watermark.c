/*
 * watermark(text[, opacity][, gravity][, size]): writes text in white
 * across the image, blended in at opacity, placed at an edge, a corner or
 * the centre (gravity) with a margin of half the text height. The text is
 * plain text: it is escaped before it reaches Pango, so "<b>" or "&" are
 * drawn, not interpreted. Lines longer than the image wrap; text that still
 * does not fit is cut off at the image's edge.
 *
 * The text is rendered once into a mask (vips_text) and blended with the
 * image through vips_ifthenelse, which keeps the image's bands, format and
 * metadata; white is 255, or 65535 in a 16-bit image. An animation (a
 * multi-page image) is refused.
 */
#include <string.h>

#include <vips/vips.h>

#include "filter.h"

enum { ARG_TEXT, ARG_OPACITY, ARG_GRAVITY, ARG_SIZE };

/* Longest text accepted, in bytes: a watermark, not a page of prose. */
#define TEXT_MAX 256

static const char *const gravities[] = {
        "centre",     "north",      "east",       "south",      "west",
        "north-east", "south-east", "south-west", "north-west", NULL};
static const VipsCompassDirection gravity_values[] = {
        VIPS_COMPASS_DIRECTION_CENTRE,     VIPS_COMPASS_DIRECTION_NORTH,
        VIPS_COMPASS_DIRECTION_EAST,       VIPS_COMPASS_DIRECTION_SOUTH,
        VIPS_COMPASS_DIRECTION_WEST,       VIPS_COMPASS_DIRECTION_NORTH_EAST,
        VIPS_COMPASS_DIRECTION_SOUTH_EAST, VIPS_COMPASS_DIRECTION_SOUTH_WEST,
        VIPS_COMPASS_DIRECTION_NORTH_WEST};

/*
 * Build knobs for the hot-swap tests, which need a second, different
 * watermark.so: its version, and text it puts before the user's.
 */
#ifndef WATERMARK_VERSION
#define WATERMARK_VERSION "1.0"
#endif
#ifndef WATERMARK_PREFIX
#define WATERMARK_PREFIX ""
#endif

static const struct imgnode_arg args[] = {
        {"text", IMGNODE_ARG_STRING, NULL, 0, 0, NULL,
         "The text (plain UTF-8, at most 256 bytes)."},
        {"opacity", IMGNODE_ARG_NUMBER, "0.5", 0, 1, NULL,
         "0 is invisible, 1 solid white."},
        {"gravity", IMGNODE_ARG_ENUM, "south-east", 0, 0, gravities,
         "Where the text goes: centre, an edge or a corner."},
        {"size", IMGNODE_ARG_INT, "0", 0, 1000, NULL,
         "Text height in pixels; 0: 1/16 of the shorter side."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* A one-band mask of the text at opacity, placed on an in-sized canvas. */
static int text_mask(VipsImage *in, const union imgnode_value *args,
                     VipsImage **out)
{
	int size = (int)args[ARG_SIZE].i, margin, r;
	VipsImage *t[3] = {NULL, NULL, NULL};
	gchar *text, *markup, *font;

	if (size == 0)
		size = VIPS_MAX(8, VIPS_MIN(in->Xsize, in->Ysize) / 16);
	margin = size / 2;
	text = g_strconcat(WATERMARK_PREFIX, args[ARG_TEXT].s, NULL);
	markup = g_markup_escape_text(text, -1);
	g_free(text);
	font = g_strdup_printf("sans bold %d", size);
	r = vips_text(&t[0], markup, "font", font, "dpi", 72, "width",
	              VIPS_MAX(1, in->Xsize - 2 * margin), NULL) ||
	    vips_linear1(t[0], &t[1], args[ARG_OPACITY].n, 0, "uchar", TRUE,
	                 NULL) ||
	    vips_embed(t[1], &t[2], margin, margin, t[1]->Xsize + 2 * margin,
	               t[1]->Ysize + 2 * margin, NULL) ||
	    vips_gravity(t[2], out, gravity_values[args[ARG_GRAVITY].e],
	                 in->Xsize, in->Ysize, NULL);
	for (int i = 0; i < 3; i++)
		if (t[i])
			g_object_unref(t[i]);
	g_free(font);
	g_free(markup);
	return r ? -1 : 0;
}

static int watermark_apply(void *state, VipsImage *in,
                           const union imgnode_value *args, VipsImage **out,
                           char *err, size_t errlen)
{
	const char *text = args[ARG_TEXT].s;
	double white = in->BandFmt == VIPS_FORMAT_USHORT ? 65535 : 255;
	VipsImage *mask, *t[2] = {NULL, NULL};
	int r;

	(void)state;
	filter_start();
	if (filter_one_page(in, err, errlen))
		return -ENOTSUP;
	if (!*text || strlen(text) > TEXT_MAX ||
	    !g_utf8_validate(text, -1, NULL)) {
		snprintf(err, errlen, "the text must be 1 to %d bytes of UTF-8",
		         TEXT_MAX);
		return -EINVAL;
	}
	if (text_mask(in, args, &mask))
		return filter_fail(err, errlen, "unable to draw the text");
	r = vips_linear1(in, &t[0], 0, white, NULL) ||
	    vips_cast(t[0], &t[1], in->BandFmt, NULL) ||
	    vips_ifthenelse(mask, t[1], in, out, "blend", TRUE, NULL);
	for (int i = 0; i < 2; i++)
		if (t[i])
			g_object_unref(t[i]);
	g_object_unref(mask);
	if (r)
		return filter_fail(err, errlen, NULL);
	return 0;
}

static int watermark_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {
	        {.s = "<imgnode> & co"}, {.n = 0.5}, {.e = 6}, {.i = 12}};

	(void)state;
	return filter_selftest_apply(watermark_apply, a, 64, 48, err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .apply = watermark_apply,
        .selftest = watermark_selftest,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "watermark",
        .version = WATERMARK_VERSION,
        .description = "Write text across the image, blended in.",
        .ops = &ops,
};
