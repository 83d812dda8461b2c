/*
 * What the filter plugins (plugins/filter/NAME.c) share: a one-line reason
 * from libvips' error buffer, the marks strip and the host leave for the
 * encoders, conversion to sRGB, the premultiplied-alpha wrapper that
 * resampling filters need, and the small self-tests run before a new
 * generation of plugins is used. Everything is
 * static inline, so each plugin still exports only its descriptor, and
 * nothing here links against the daemon.
 *
 * Reasons written to err never start with the filter's name: the host adds
 * it ("crop: 100x100 at 600,0 lies outside the 640x428 image").
 */
#ifndef IMGNODE_FILTER_H
#define IMGNODE_FILTER_H

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <imgnode/plugin.h>
#include <vips/vips.h>

/* libvips 8.17 made VIPS_MAX_COORD a call (the limit can be raised at run
 * time); the argument tables need a constant: its default, 8.14's value. */
#if VIPS_MAJOR_VERSION > 8 ||                                                  \
        (VIPS_MAJOR_VERSION == 8 && VIPS_MINOR_VERSION >= 17)
#undef VIPS_MAX_COORD
#define VIPS_MAX_COORD 10000000
#endif

/*
 * Set (an int, 1) on its output by strip. Encoders save an image that
 * carries it with strip=TRUE, so not even the fresh EXIF block libvips
 * builds from the image header is written; every other image keeps its
 * metadata.
 */
#define FILTER_STRIPPED "imgnode-stripped"

/* Appends s to err at *n, never past errlen (truncating). */
/*
 * Text escaped for Pango markup (vips_text's input): & < > ' " as entities.
 * g_markup_escape_text does this, but the bundled libvips (make
 * VIPS=bundled) does not export it. The caller frees with g_free.
 */
static inline char *filter_markup_escape(const char *s)
{
	size_t n = 1;
	char *out, *o;

	for (const char *p = s; *p; p++)
		n += strchr("&<>'\"", *p) ? 6 : 1;
	o = out = g_malloc(n);
	for (; *s; s++) {
		const char *e = *s == '&'    ? "&amp;"
		                : *s == '<'  ? "&lt;"
		                : *s == '>'  ? "&gt;"
		                : *s == '\'' ? "&apos;"
		                : *s == '"'  ? "&quot;"
		                             : NULL;
		if (e) {
			memcpy(o, e, strlen(e));
			o += strlen(e);
		} else {
			*o++ = *s;
		}
	}
	*o = 0;
	return out;
}

static inline void filter_append(char *err, size_t errlen, size_t *n,
                                 const char *s)
{
	while (*s && *n + 1 < errlen)
		err[(*n)++] = *s++;
	if (errlen)
		err[*n < errlen ? *n : errlen - 1] = '\0';
}

/*
 * Starts a step (apply, load or encode): forgets what earlier, successful
 * libvips calls left in libvips' process-wide error buffer (loaders probing
 * a buffer leave "source: bad seek" behind), so that a failure of this step
 * reports only its own errors.
 */
static inline void filter_start(void)
{
	vips_error_clear();
}

/*
 * Writes "WHAT: libvips' message" (or the message alone if what is NULL)
 * to err as one line, libvips' lines joined with "; ", clears libvips'
 * process-wide error buffer and returns -EINVAL: every libvips failure is
 * permanent for the job (bad input, or an argument libvips refuses). Some
 * failures leave the buffer empty; then the reason says so.
 */
static inline int filter_fail(char *err, size_t errlen, const char *what)
{
	const char *msg = vips_error_buffer();
	char line[2] = "";
	size_t n = 0;
	bool sep = false;

	if (errlen)
		err[0] = '\0';
	while (*msg == '\n' || *msg == ' ')
		msg++;
	if (!*msg) {
		filter_append(err, errlen, &n, what ? what : "libvips failed");
		filter_append(err, errlen, &n, " (libvips gave no reason)");
		return -EINVAL;
	}
	if (what) {
		filter_append(err, errlen, &n, what);
		filter_append(err, errlen, &n, ": ");
	}
	for (; *msg; msg++) {
		if (*msg == '\n') {
			sep = true;
			continue;
		}
		if (sep)
			filter_append(err, errlen, &n, "; ");
		sep = false;
		line[0] = *msg;
		filter_append(err, errlen, &n, line);
	}
	vips_error_clear();
	return -EINVAL;
}

/*
 * For steps that would scramble an animation (a multi-page image is one
 * tall strip of frames): 0 if in is a single image, else -ENOTSUP with a
 * reason. thumbnail and the encoders handle animations themselves.
 */
static inline int filter_one_page(struct _VipsImage *in, char *err,
                                  size_t errlen)
{
	int page = vips_image_get_page_height(in);

	if (page >= in->Ysize)
		return 0;
	snprintf(
	        err, errlen,
	        "cannot work on an animation (%d frames); thumbnail and the encoders can",
	        in->Ysize / page);
	return -ENOTSUP;
}

/* True if an EXIF orientation turns the image a quarter (5..8), so that
 * turning it upright swaps its width and height. */
static inline bool filter_quarter_turn(int orientation)
{
	return orientation >= 5 && orientation <= 8;
}

/* The predict hook for steps that turn the image upright (autorotate,
 * strip): width and height swap for a quarter turn; upright after. */
static inline void filter_predict_upright(const struct imgnode_geometry *in,
                                          struct imgnode_geometry *out)
{
	if (filter_quarter_turn(in->orientation)) {
		out->width = in->height;
		out->height = in->width;
	}
	out->orientation = 1;
}

/* True if strip ran on (an ancestor of) image. */
static inline bool filter_stripped(struct _VipsImage *image)
{
	return vips_image_get_typeof(image, FILTER_STRIPPED) != 0;
}

/*
 * True if the host stripped image's metadata but its ICC profile
 * (IMGNODE_META_ICC_ONLY): an encoder then writes the profile and nothing
 * libvips would add (the EXIF block it builds from the header).
 */
static inline bool filter_icc_only(struct _VipsImage *image)
{
	return vips_image_get_typeof(image, IMGNODE_META_ICC_ONLY) != 0;
}

/*
 * Sets *out to in converted to sRGB if in has a usable ICC profile, else to
 * in itself: a new reference either way (the caller unrefs). A profile
 * lcms cannot use is left as it is: viewers could not have used it either.
 */
static inline void filter_to_srgb(VipsImage *in, VipsImage **out)
{
	if (vips_image_get_typeof(in, VIPS_META_ICC_NAME) &&
	    in->Type != VIPS_INTERPRETATION_B_W &&
	    in->Type != VIPS_INTERPRETATION_GREY16) {
		int depth = in->BandFmt == VIPS_FORMAT_USHORT ? 16 : 8;
		if (!vips_icc_transform(in, out, "srgb", "embedded", TRUE,
		                        "depth", depth, NULL))
			return;
		vips_error_clear(); /* an unusable profile */
	}
	g_object_ref(in);
	*out = in;
}

/* An operation for filter_premultiplied; 0 or -1 as libvips. */
typedef int (*filter_op_fn)(VipsImage *in, VipsImage **out, const void *arg);

/*
 * Runs op on in with its alpha premultiplied, as libvips' own thumbnail
 * does, so that colour hidden under transparent pixels does not bleed into
 * visible ones; the result has in's band format again. An image without
 * alpha goes straight through. 0 or -1 (libvips' error buffer set).
 */
static inline int filter_premultiplied(VipsImage *in, VipsImage **out,
                                       filter_op_fn op, const void *arg)
{
	VipsImage *t[3] = {NULL, NULL, NULL};
	int r;

	if (!vips_image_hasalpha(in))
		return op(in, out, arg);
	r = vips_premultiply(in, &t[0], NULL) || op(t[0], &t[1], arg) ||
	    vips_unpremultiply(t[1], &t[2], NULL) ||
	    vips_cast(t[2], out, in->BandFmt, NULL);
	for (int i = 0; i < 3; i++)
		if (t[i])
			g_object_unref(t[i]);
	return r ? -1 : 0;
}

/*
 * A small sRGB test image for self-tests: 64x48, a horizontal ramp, so
 * that filters have something other than flat black to work on. Returns a
 * new reference (the caller unrefs) or NULL.
 */
static inline VipsImage *filter_test_image(void)
{
	VipsImage *ramp, *rgb, *out = NULL;

	if (vips_grey(&ramp, 64, 48, "uchar", TRUE, NULL))
		return NULL;
	if (!vips_bandjoin_const1(ramp, &rgb, 128, NULL)) {
		VipsImage *t;
		if (!vips_bandjoin_const1(rgb, &t, 64, NULL)) {
			vips_copy(t, &out, "interpretation",
			          VIPS_INTERPRETATION_sRGB, NULL);
			g_object_unref(t);
		}
		g_object_unref(rgb);
	}
	g_object_unref(ramp);
	return out;
}

/* The apply hook of struct imgnode_filter_ops. */
typedef int (*filter_apply_fn)(void *state, struct _VipsImage *in,
                               const union imgnode_value *args,
                               struct _VipsImage **out, char *err,
                               size_t errlen);

/*
 * Self-test of a filter: applies it with args to the test image, computes
 * the result and, if w > 0, checks it is w x h. 0 or -errno with a reason.
 */
static inline int filter_selftest_apply(filter_apply_fn apply,
                                        const union imgnode_value *args, int w,
                                        int h, char *err, size_t errlen)
{
	VipsImage *in, *out;
	double avg;
	int r;

	if (!(in = filter_test_image()))
		return filter_fail(err, errlen, "self-test: no test image");
	r = apply(NULL, in, args, &out, err, errlen);
	g_object_unref(in);
	if (r)
		return r;
	if (vips_avg(out, &avg, NULL))
		r = filter_fail(err, errlen, "self-test failed");
	else if (w > 0 && (out->Xsize != w || out->Ysize != h)) {
		snprintf(err, errlen, "self-test made a %dx%d image, not %dx%d",
		         out->Xsize, out->Ysize, w, h);
		r = -EPROTO;
	}
	g_object_unref(out);
	return r;
}

/* The encode hook of struct imgnode_filter_ops. */
typedef int (*filter_encode_fn)(void *state, struct _VipsImage *in,
                                const union imgnode_value *args, void **buf,
                                size_t *len, char *err, size_t errlen);

/*
 * Self-test of an encoder: encodes the test image with args and decodes
 * the result again, which must come back through the loader named format
 * at the same size. 0 or -errno with a reason.
 */
static inline int filter_selftest_encode(filter_encode_fn encode,
                                         const union imgnode_value *args,
                                         const char *format, char *err,
                                         size_t errlen)
{
	VipsImage *in, *back;
	const char *loader = "";
	void *buf;
	size_t len;
	int r;

	if (!(in = filter_test_image()))
		return filter_fail(err, errlen, "self-test: no test image");
	r = encode(NULL, in, args, &buf, &len, err, errlen);
	if (r)
		goto out_unref_in;
	if (!(back = vips_image_new_from_buffer(buf, len, "", NULL))) {
		r = filter_fail(err, errlen,
		                "self-test: cannot decode the output");
		goto out_free_buf;
	}
	if (vips_image_get_typeof(back, "vips-loader"))
		vips_image_get_string(back, "vips-loader", &loader);
	if (strncmp(loader, format, strlen(format)) ||
	    back->Xsize != in->Xsize || back->Ysize != in->Ysize) {
		snprintf(err, errlen,
		         "self-test output decodes as %s %dx%d, not %s %dx%d",
		         loader, back->Xsize, back->Ysize, format, in->Xsize,
		         in->Ysize);
		r = -EPROTO;
	}
	g_object_unref(back);
out_free_buf:
	g_free(buf);
out_unref_in:
	g_object_unref(in);
	return r;
}

#endif /* IMGNODE_FILTER_H */
