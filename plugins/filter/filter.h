/*
 * What the filter plugins (plugins/filter/NAME.c) share: a one-line reason
 * from libvips' error buffer, the marks strip and the host leave for the
 * encoders, conversion to sRGB, the premultiplied-alpha wrapper that
 * resampling filters need, the frame helpers of steps that work on
 * animations (filter_pages, filter_frames, filter_per_frame:
 * IMGNODE_FILTER_FRAMES), and the small self-tests run before a new
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
 * Whether this libvips lacks operation op (what it can encode depends on how
 * it was built: a library, or on Debian a module); if so, the reason, naming
 * the format (what), in why. Only where libvips is started (a filter's init
 * runs in the ingress too when the filter has a predict hook).
 */
static inline bool filter_lacks(const char *op, const char *what, char *why,
                                size_t len)
{
	if (vips_type_find("VipsOperation", op))
		return false;
	snprintf(
	        why, len,
	        "this libvips (%s) cannot save %s: it has no %s operation (built without its library, or its module is missing)",
	        vips_version_string(), what, op);
	return true;
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
 * Frames of in: an animation is loaded as one tall strip of frames of
 * "page-height" rows each (IMGNODE_FILTER_FRAMES). 1 for a still image.
 */
static inline int filter_pages(struct _VipsImage *in)
{
	int page = vips_image_get_page_height(in);

	return page < in->Ysize ? in->Ysize / page : 1;
}

/*
 * For steps that cannot work on an animation frame by frame (smartcrop
 * would pick another rectangle in each): 0 if in is a single image, else
 * -ENOTSUP with a reason. The host refuses such steps before they run
 * (they lack IMGNODE_FILTER_FRAMES); this is defence in depth.
 */
static inline int filter_one_page(struct _VipsImage *in, char *err,
                                  size_t errlen)
{
	int pages = filter_pages(in);

	if (pages == 1)
		return 0;
	snprintf(err, errlen,
	         "cannot work on animations (%d frames); use frame(N) first",
	         pages);
	return -ENOTSUP;
}

/* An operation for filter_premultiplied and filter_per_frame; 0 or -1 as
 * libvips. */
typedef int (*filter_op_fn)(VipsImage *in, VipsImage **out, const void *arg);

/* An operation on one frame for filter_frames; 0 or -errno with a reason. */
typedef int (*filter_frame_fn)(VipsImage *in, VipsImage **out, const void *arg,
                               char *err, size_t errlen);

/*
 * Runs op on every frame of in (libvips' "page-height": a multi-page image
 * is one tall strip of frames) and stacks the results again, setting the
 * new page-height; an image of one frame goes straight through. Every
 * frame must come out the same size (op's arguments decide the size, not
 * the pixels). 0 or -errno with a reason in err.
 */
static inline int filter_frames(VipsImage *in, VipsImage **out,
                                filter_frame_fn op, const void *arg, char *err,
                                size_t errlen)
{
	int page = vips_image_get_page_height(in), n, r = 0;
	VipsImage **frames, *joined;

	if (page >= in->Ysize || in->Ysize % page)
		return op(in, out, arg, err, errlen);
	n = in->Ysize / page;
	frames = g_new0(VipsImage *, n);
	for (int i = 0; i < n && !r; i++) {
		VipsImage *one;
		if (vips_crop(in, &one, 0, i * page, in->Xsize, page, NULL)) {
			r = filter_fail(err, errlen, NULL);
			break;
		}
		r = op(one, &frames[i], arg, err, errlen);
		g_object_unref(one);
		if (!r && (frames[i]->Xsize != frames[0]->Xsize ||
		           frames[i]->Ysize != frames[0]->Ysize)) {
			snprintf(err, errlen,
			         "frame %d came out %dx%d, frame 1 %dx%d",
			         i + 1, frames[i]->Xsize, frames[i]->Ysize,
			         frames[0]->Xsize, frames[0]->Ysize);
			r = -EPROTO;
		}
	}
	if (!r && vips_arrayjoin(frames, &joined, n, "across", 1, NULL))
		r = filter_fail(err, errlen, NULL);
	if (!r) {
		r = vips_copy(joined, out, NULL)
		            ? filter_fail(err, errlen, NULL)
		            : 0;
		g_object_unref(joined);
		if (!r)
			vips_image_set_int(*out, VIPS_META_PAGE_HEIGHT,
			                   frames[0]->Ysize);
	}
	for (int i = 0; i < n; i++)
		if (frames[i])
			g_object_unref(frames[i]);
	g_free(frames);
	return r;
}

/* A libvips-style operation and its argument, for filter_per_frame. */
struct filter_op_call {
	filter_op_fn op;
	const void *arg;
};

static inline int filter_op_frame(VipsImage *in, VipsImage **out,
                                  const void *arg, char *err, size_t errlen)
{
	const struct filter_op_call *c = arg;

	return c->op(in, out, c->arg) ? filter_fail(err, errlen, NULL) : 0;
}

/*
 * filter_frames for an operation that returns 0 or -1 with libvips' error
 * buffer set, as libvips' own do: op runs on each frame of in. *out is a
 * new reference; 0 or -errno with a reason in err.
 */
static inline int filter_per_frame(VipsImage *in, VipsImage **out,
                                   filter_op_fn op, const void *arg, char *err,
                                   size_t errlen)
{
	struct filter_op_call c = {op, arg};

	return filter_frames(in, out, filter_op_frame, &c, err, errlen);
}

static inline int filter_autorot_op(VipsImage *in, VipsImage **out,
                                    const void *arg)
{
	(void)arg;
	return vips_autorot(in, out, NULL);
}

/*
 * Turns in upright from its EXIF orientation (vips_autorot), each frame of
 * an animation on its own. A new reference in *out; 0 or -errno with a
 * reason in err.
 */
static inline int filter_upright(VipsImage *in, VipsImage **out, char *err,
                                 size_t errlen)
{
	if (vips_image_get_orientation(in) <= 1)
		return vips_autorot(in, out, NULL)
		               ? filter_fail(err, errlen, NULL)
		               : 0;
	return filter_per_frame(in, out, filter_autorot_op, NULL, err, errlen);
}

/*
 * Colours, for every step that paints one (background=...): a name
 * (black, white, grey, red, green, blue, yellow, cyan, magenta,
 * transparent) or hex digits rgb, rgba, rrggbb or rrggbbaa, with or without
 * a leading '#' (which the pipeline grammar wants quoted: "#ff8000"; in a
 * URL, %23). aa is the opacity: 00 transparent, ff (the default) opaque.
 */
struct filter_colour {
	double rgba[4]; /* 0..255 each */
};

#define FILTER_COLOUR_HELP                                                     \
	"a colour: rrggbb or rrggbbaa in hex (e.g. ff8000, 00000080), or "     \
	"black, white, grey, red, green, blue, yellow, cyan, magenta, "        \
	"transparent"

/* The value of one hex digit, or -1. */
static inline int filter_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Parses text (see struct filter_colour) into *c. 0, or -EINVAL with a
 * reason naming the argument (name) and the forms allowed.
 */
static inline int filter_parse_colour(const char *name, const char *text,
                                      struct filter_colour *c, char *err,
                                      size_t errlen)
{
	static const struct {
		const char *name;
		unsigned char rgba[4];
	} names[] = {
	        {"black", {0, 0, 0, 255}},      {"white", {255, 255, 255, 255}},
	        {"grey", {128, 128, 128, 255}}, {"gray", {128, 128, 128, 255}},
	        {"red", {255, 0, 0, 255}},      {"green", {0, 128, 0, 255}},
	        {"blue", {0, 0, 255, 255}},     {"yellow", {255, 255, 0, 255}},
	        {"cyan", {0, 255, 255, 255}},   {"magenta", {255, 0, 255, 255}},
	        {"transparent", {0, 0, 0, 0}},
	};
	const char *hex = text[0] == '#' ? text + 1 : text;
	size_t n = strlen(hex), i;
	int d[8];

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(text, names[i].name)) {
			for (int k = 0; k < 4; k++)
				c->rgba[k] = names[i].rgba[k];
			return 0;
		}
	for (i = 0; i < n && i < 8 && (d[i] = filter_hex(hex[i])) >= 0; i++)
		;
	if (i != n || (n != 3 && n != 4 && n != 6 && n != 8)) {
		snprintf(err, errlen, "%s \"%.32s\" is not %s", name, text,
		         FILTER_COLOUR_HELP);
		return -EINVAL;
	}
	c->rgba[3] = 255;
	for (int k = 0; k < (int)(n == 3 || n == 4 ? n : n / 2); k++)
		c->rgba[k] = n <= 4 ? d[k] * 17 : d[2 * k] * 16 + d[2 * k + 1];
	return 0;
}

/* True if c is a shade of grey (a grey image can take it as it is). */
static inline bool filter_colour_grey(const struct filter_colour *c)
{
	return c->rgba[0] == c->rgba[1] && c->rgba[1] == c->rgba[2];
}

/* True if c is not wholly opaque (painting it needs an alpha band). */
static inline bool filter_colour_alpha(const struct filter_colour *c)
{
	return c->rgba[3] < 255;
}

/*
 * The bands an image of bands bands has once it can take c (see
 * filter_colour_ready), for predict. alpha: c's opacity matters (false
 * for steps that drop alpha, as flatten).
 */
static inline int filter_colour_bands(int bands, const struct filter_colour *c,
                                      bool alpha)
{
	if (bands <= 2 && !filter_colour_grey(c))
		bands += 2;
	if (alpha && filter_colour_alpha(c) && (bands == 1 || bands == 3))
		bands++;
	return bands;
}

/* The largest value of a band of image: 255, 65535, or 1 for scRGB. */
static inline double filter_max_value(VipsImage *image)
{
	if (image->BandFmt == VIPS_FORMAT_USHORT)
		return 65535;
	if (image->Type == VIPS_INTERPRETATION_scRGB)
		return 1;
	return 255;
}

/*
 * Sets *out to in made able to take c (a new reference): CMYK and other
 * spaces to sRGB, grey to sRGB (16-bit grey to RGB16) if c is not grey,
 * and an opaque alpha band added if c is not opaque (alpha) and in has
 * none. 0, or -EINVAL with a reason.
 */
static inline int filter_colour_ready(VipsImage *in,
                                      const struct filter_colour *c, bool alpha,
                                      VipsImage **out, char *err, size_t errlen)
{
	VipsInterpretation type = in->Type;
	VipsImage *t = NULL;
	bool grey = type == VIPS_INTERPRETATION_B_W ||
	            type == VIPS_INTERPRETATION_GREY16 || in->Bands <= 2;
	int r = 0;

	if (!grey && type != VIPS_INTERPRETATION_sRGB &&
	    type != VIPS_INTERPRETATION_RGB16 &&
	    type != VIPS_INTERPRETATION_scRGB)
		r = vips_colourspace(in, &t, VIPS_INTERPRETATION_sRGB, NULL);
	else if (grey && !filter_colour_grey(c))
		r = vips_colourspace(in, &t,
		                     in->BandFmt == VIPS_FORMAT_USHORT
		                             ? VIPS_INTERPRETATION_RGB16
		                             : VIPS_INTERPRETATION_sRGB,
		                     NULL);
	else {
		g_object_ref(in);
		t = in;
	}
	if (r)
		return filter_fail(err, errlen, "unable to convert to sRGB");
	if (alpha && filter_colour_alpha(c) && !vips_image_hasalpha(t)) {
		r = vips_addalpha(t, out, NULL);
		g_object_unref(t);
		return r ? filter_fail(err, errlen, "unable to add alpha") : 0;
	}
	*out = t;
	return 0;
}

/*
 * The pixel value of c for n bands of image (made ready by
 * filter_colour_ready; n is its bands, or one fewer for the colour
 * without alpha): one value a band, scaled to the band format. A new
 * array (vips_area_unref it), or NULL for more than 4 bands.
 */
static inline VipsArrayDouble *filter_colour_ink(VipsImage *image, int n,
                                                 const struct filter_colour *c)
{
	double scale = filter_max_value(image) / 255, ink[4];

	if (n > 4)
		return NULL;
	if (n <= 2) {
		ink[0] = c->rgba[0] * scale;
		ink[1] = c->rgba[3] * scale;
	} else {
		for (int k = 0; k < 4; k++)
			ink[k] = c->rgba[k] * scale;
	}
	return vips_array_double_new(ink, n);
}

/*
 * Places in at x, y on a w x h canvas of colour c (a new reference in
 * *out), in made able to take c first (filter_colour_ready). 0, or -errno
 * with a reason.
 */
static inline int filter_embed_colour(VipsImage *in, int x, int y, int w, int h,
                                      const struct filter_colour *c,
                                      VipsImage **out, char *err, size_t errlen)
{
	VipsArrayDouble *ink;
	VipsImage *ready;
	int r;

	if ((r = filter_colour_ready(in, c, true, &ready, err, errlen)))
		return r;
	if (!(ink = filter_colour_ink(ready, ready->Bands, c))) {
		snprintf(err, errlen,
		         "cannot paint a colour on a %d-band image",
		         ready->Bands);
		g_object_unref(ready);
		return -ENOTSUP;
	}
	r = vips_embed(ready, out, x, y, w, h, "extend", VIPS_EXTEND_BACKGROUND,
	               "background", ink, NULL);
	vips_area_unref(VIPS_AREA(ink));
	g_object_unref(ready);
	return r ? filter_fail(err, errlen, NULL) : 0;
}

/*
 * Gravity, for the steps that place or cut: the compass points. A step
 * may add its own choices after these (resize: attention, entropy, fp).
 */
#define FILTER_COMPASS_CHOICES                                                 \
	"centre", "north", "northeast", "east", "southeast", "south",          \
	        "southwest", "west", "northwest"
#define FILTER_COMPASS_N 9

/*
 * Where a w x h rectangle goes in a W x H one (W >= w, H >= h) for compass
 * point g (an index into FILTER_COMPASS_CHOICES): its left and top.
 * Centred on an odd difference, the extra pixel is left before the
 * rectangle when cutting it out (cut) and after it when placing an image
 * on a canvas, as sharp does both.
 */
static inline void filter_compass(int g, bool cut, int64_t W, int64_t H,
                                  int64_t w, int64_t h, int64_t *left,
                                  int64_t *top)
{
	/* per compass point: 0 left/top, 1 centre, 2 right/bottom */
	static const int xs[] = {1, 1, 2, 2, 2, 1, 0, 0, 0};
	static const int ys[] = {1, 0, 0, 1, 2, 2, 2, 1, 0};

	*left = (xs[g] * (W - w) + (cut && xs[g] == 1)) / 2;
	*top = (ys[g] * (H - h) + (cut && ys[g] == 1)) / 2;
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
