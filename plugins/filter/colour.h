/*
 * What the colour and tone filters share (modulate, gamma, normalise,
 * tint, threshold, negate, median): colours written in a pipeline, and
 * running an operation on the colour bands of an image while its alpha
 * band, if any, passes untouched. static inline, like filter.h.
 *
 * Colour syntax (a STRING argument; '#' is not a bare pipeline character,
 * so quote it or leave it out):
 *   "#rrggbb"   "#rrggbbaa"   rrggbb   rrggbbaa   (hex digits, any case)
 *   a CSS name: black, white, transparent, red, green, blue, yellow,
 *   cyan, magenta, grey (gray), silver, orange, purple, navy, teal,
 *   maroon, olive, lime, pink, brown.
 * Alpha defaults to 255 (opaque); "transparent" is 0,0,0 with alpha 0.
 */
#ifndef IMGNODE_COLOUR_H
#define IMGNODE_COLOUR_H

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "filter.h"

/* A colour: red, green, blue and alpha, 0..255 each. */
struct colour {
	double r, g, b, a;
};

/* The accepted syntax, for argument help and error messages. */
#define COLOUR_SYNTAX                                                          \
	"#rrggbb, #rrggbbaa (the # may be left out) or a name: black, white, " \
	"transparent, red, green, blue, yellow, cyan, magenta, grey, silver, " \
	"orange, purple, navy, teal, maroon, olive, lime, pink, brown"

static inline int colour_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * Parses text (see the syntax above) into *c. 0, or -EINVAL with a
 * reason in err naming the accepted syntax.
 */
static inline int colour_parse(const char *text, struct colour *c, char *err,
                               size_t errlen)
{
	static const struct {
		const char *name;
		unsigned rgba;
	} names[] = {
	        {"black", 0x000000ffu},   {"white", 0xffffffffu},
	        {"transparent", 0x0u},    {"red", 0xff0000ffu},
	        {"green", 0x008000ffu},   {"blue", 0x0000ffffu},
	        {"yellow", 0xffff00ffu},  {"cyan", 0x00ffffffu},
	        {"magenta", 0xff00ffffu}, {"grey", 0x808080ffu},
	        {"gray", 0x808080ffu},    {"silver", 0xc0c0c0ffu},
	        {"orange", 0xffa500ffu},  {"purple", 0x800080ffu},
	        {"navy", 0x000080ffu},    {"teal", 0x008080ffu},
	        {"maroon", 0x800000ffu},  {"olive", 0x808000ffu},
	        {"lime", 0x00ff00ffu},    {"pink", 0xffc0cbffu},
	        {"brown", 0xa52a2affu},
	};
	const char *hex = text[0] == '#' ? text + 1 : text;
	size_t n = strlen(hex);
	unsigned v = 0;
	bool ok = n == 6 || n == 8;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcasecmp(text, names[i].name)) {
			v = names[i].rgba;
			goto found;
		}
	for (size_t i = 0; ok && i < n; i++) {
		int d = colour_hex_digit(hex[i]);
		ok = d >= 0;
		v = v << 4 | (unsigned)(d & 15);
	}
	if (!ok) {
		snprintf(err, errlen, "\"%s\" is not a colour: give %s", text,
		         COLOUR_SYNTAX);
		return -EINVAL;
	}
	if (n == 6)
		v = v << 8 | 0xffu;
found:
	c->r = (v >> 24) & 0xff;
	c->g = (v >> 16) & 0xff;
	c->b = (v >> 8) & 0xff;
	c->a = v & 0xff;
	return 0;
}

/* An operation on the colour bands of an image; 0 or -1 as libvips. */
typedef int (*colour_op_fn)(VipsImage *in, VipsImage **out, const void *arg);

/*
 * Runs op on the colour bands of in and joins in's alpha band (if it has
 * one) back, unchanged, cast to the format op made. *out is a new
 * reference. 0 or -1 (libvips' error buffer set).
 */
static inline int colour_on_colour_bands(VipsImage *in, VipsImage **out,
                                         colour_op_fn op, const void *arg)
{
	VipsImage *t[4] = {NULL, NULL, NULL, NULL};
	int r;

	if (!vips_image_hasalpha(in))
		return op(in, out, arg);
	r = vips_extract_band(in, &t[0], 0, "n", in->Bands - 1, NULL) ||
	    vips_extract_band(in, &t[1], in->Bands - 1, NULL) ||
	    op(t[0], &t[2], arg);
	/* alpha follows the colour bands' new depth (8 <-> 16 bits) */
	if (!r && t[2]->BandFmt != t[1]->BandFmt) {
		double k = t[2]->BandFmt == VIPS_FORMAT_USHORT   ? 257.0
		           : t[1]->BandFmt == VIPS_FORMAT_USHORT ? 1 / 257.0
		                                                 : 1.0;
		r = vips_linear1(t[1], &t[3], k, 0, NULL);
		if (!r) {
			g_object_unref(t[1]);
			r = vips_cast(t[3], &t[1], t[2]->BandFmt, NULL);
			g_object_unref(t[3]);
			t[3] = NULL;
		}
	}
	if (!r)
		r = vips_bandjoin2(t[2], t[1], out, NULL);
	for (int i = 0; i < 4; i++)
		if (t[i])
			g_object_unref(t[i]);
	return r ? -1 : 0;
}

/*
 * The interpretation a tone filter gives its result back in: in's own if
 * it is one of the usual (sRGB, RGB16, B_W, GREY16, CMYK), else sRGB.
 */
static inline VipsInterpretation colour_space_of(VipsImage *in)
{
	VipsInterpretation t = vips_image_guess_interpretation(in);

	switch (t) {
	case VIPS_INTERPRETATION_sRGB:
	case VIPS_INTERPRETATION_RGB16:
	case VIPS_INTERPRETATION_B_W:
	case VIPS_INTERPRETATION_GREY16:
	case VIPS_INTERPRETATION_CMYK: return t;
	default: return VIPS_INTERPRETATION_sRGB;
	}
}

#endif /* IMGNODE_COLOUR_H */
