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

/* The text's font size in pixels: the argument, or 1/16 of the shorter side. */
static int64_t text_size(int64_t width, int64_t height,
                         const union imgnode_value *args)
{
	if (args[ARG_SIZE].i)
		return args[ARG_SIZE].i;
	return VIPS_MAX(8, VIPS_MIN(width, height) / 16);
}

/* A one-band mask of the text at opacity, placed on a width x height
 * canvas. */
static int text_mask(int width, int height, const union imgnode_value *args,
                     VipsImage **out)
{
	int size = (int)text_size(width, height, args), margin, r;
	VipsImage *t[3] = {NULL, NULL, NULL};
	gchar *text, *markup, *font;

	margin = size / 2;
	text = g_strconcat(WATERMARK_PREFIX, args[ARG_TEXT].s, NULL);
	markup = filter_markup_escape(text);
	g_free(text);
	font = g_strdup_printf("sans bold %d", size);
	r = vips_text(&t[0], markup, "font", font, "dpi", 72, "width",
	              VIPS_MAX(1, width - 2 * margin), NULL) ||
	    vips_linear1(t[0], &t[1], args[ARG_OPACITY].n, 0, "uchar", TRUE,
	                 NULL) ||
	    vips_embed(t[1], &t[2], margin, margin, t[1]->Xsize + 2 * margin,
	               t[1]->Ysize + 2 * margin, NULL) ||
	    vips_gravity(t[2], out, gravity_values[args[ARG_GRAVITY].e], width,
	                 height, NULL);
	for (int i = 0; i < 3; i++)
		if (t[i])
			g_object_unref(t[i]);
	g_free(font);
	g_free(markup);
	return r ? -1 : 0;
}

/* Lines a paragraph of width pixels takes when wrapped at wrap pixels. */
static int64_t para_lines(int64_t width, int64_t wrap)
{
	if (width <= wrap)
		return 1;
	return (width + wrap - 1) / wrap + 1; /* one more: words wrap whole */
}

/*
 * How big vips_text draws text wrapped at wrap pixels, estimated without
 * drawing: every character taken as 1 em wide (wider than most Latin
 * glyphs), lines 1.5 em apart (DejaVu: 1.17; CJK fallbacks more), a word wider
 * than wrap widening the block. text is valid UTF-8.
 */
static void text_extent(const char *text, int64_t size, int64_t wrap,
                        int64_t *width, int64_t *height)
{
	int64_t lines = 0, para = 0, word = 0, longest = 0;

	for (const char *p = text;; p = g_utf8_next_char(p)) {
		gunichar c = *p ? g_utf8_get_char(p) : '\n';

		if (c == '\n') {
			lines += para_lines(para * size, wrap);
			para = word = 0;
			if (!*p)
				break;
			continue;
		}
		para++;
		word = c == ' ' || c == '\t' ? 0 : word + 1;
		longest = VIPS_MAX(longest, word);
	}
	*width = VIPS_MAX(wrap, longest * size);
	*height = lines * size * 3 / 2;
}

/*
 * The output keeps the image's shape; the work is the text block, drawn
 * whole (cairo, 4 bytes a pixel) before it is cut to the image.
 */
static int watermark_predict(void *state, const struct imgnode_geometry *in,
                             const union imgnode_value *args,
                             struct imgnode_geometry *out, char *err,
                             size_t errlen)
{
	const char *text = args[ARG_TEXT].s;
	int64_t size, margin, w, h;
	gchar *all;

	(void)state;
	if (!*text || strlen(text) > TEXT_MAX ||
	    !g_utf8_validate(text, -1, NULL)) {
		snprintf(err, errlen, "the text must be 1 to %d bytes of UTF-8",
		         TEXT_MAX);
		return -EINVAL;
	}
	size = text_size(in->width, in->height, args);
	margin = size / 2;
	all = g_strconcat(WATERMARK_PREFIX, text, NULL);
	text_extent(all, size, VIPS_MAX(1, in->width - 2 * margin), &w, &h);
	g_free(all);
	out->work_width = w + 2 * margin;
	out->work_height = h + 2 * margin;
	return 0;
}

/* One frame: the text's mask (arg, drawn once) blended in. */
static int mark_frame(VipsImage *in, VipsImage **out, const void *arg)
{
	double white = in->BandFmt == VIPS_FORMAT_USHORT ? 65535 : 255;
	VipsImage *mask = (VipsImage *)arg, *t[2] = {NULL, NULL};
	int r;

	r = vips_linear1(in, &t[0], 0, white, NULL) ||
	    vips_cast(t[0], &t[1], in->BandFmt, NULL) ||
	    vips_ifthenelse(mask, t[1], in, out, "blend", TRUE, NULL);
	for (int i = 0; i < 2; i++)
		if (t[i])
			g_object_unref(t[i]);
	return r ? -1 : 0;
}

static int watermark_apply(void *state, VipsImage *in,
                           const union imgnode_value *args, VipsImage **out,
                           char *err, size_t errlen)
{
	const char *text = args[ARG_TEXT].s;
	VipsImage *mask;
	int r;

	(void)state;
	filter_start();
	if (!*text || strlen(text) > TEXT_MAX ||
	    !g_utf8_validate(text, -1, NULL)) {
		snprintf(err, errlen, "the text must be 1 to %d bytes of UTF-8",
		         TEXT_MAX);
		return -EINVAL;
	}
	if (text_mask(in->Xsize, vips_image_get_page_height(in), args, &mask))
		return filter_fail(err, errlen, "unable to draw the text");
	r = filter_per_frame(in, out, mark_frame, mask, err, errlen);
	g_object_unref(mask);
	return r;
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
        .flags = IMGNODE_FILTER_FRAMES | IMGNODE_FILTER_SEQUENTIAL,
        .apply = watermark_apply,
        .selftest = watermark_selftest,
        .predict = watermark_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "watermark",
        .version = WATERMARK_VERSION,
        .description = "Write text across the image, blended in.",
        .ops = &ops,
};
