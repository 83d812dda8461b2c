/*
 * What the colour and tone filters share (modulate, gamma, normalise,
 * tint, threshold, negate): running an operation on the colour bands of
 * an image while its alpha band, if any, passes untouched, and the colour
 * space a result goes back to. Colours written in a pipeline are parsed by
 * filter.h (filter_parse_colour). static inline, like filter.h.
 */
#ifndef IMGNODE_COLOUR_H
#define IMGNODE_COLOUR_H

#include "filter.h"

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
