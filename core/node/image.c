/*
 * The image side of a job (see image.h), following the measured facts in
 * docs/design.md (section 8): libvips is initialised in each child, the
 * operation cache is off, only the allow-listed loaders can run, an input
 * is judged from its header before any pixel is decoded, damaged inputs
 * fail (fail_on), and a pipeline is built lazily and run once, by the
 * encoder, into one buffer.
 */
#include "image.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vips/vips.h>

#include "../plugin.h"
#include "cost.h"
#include "node_conf.h"
#include "pipeline.h"

/* The formats a config may accept, and the libvips loader class of each. */
static const struct {
	const char *format;
	const char *loader;
} loaders[] = {
        {"jpeg", "VipsForeignLoadJpeg"}, {"png", "VipsForeignLoadPng"},
        {"gif", "VipsForeignLoadNsgif"}, {"webp", "VipsForeignLoadWebp"},
        {"tiff", "VipsForeignLoadTiff"}, {"heif", "VipsForeignLoadHeif"},
};

static const char *const fail_on_names[] = {"none", "truncated", "error",
                                            "warning"};

/* libvips' last error as one line, or fallback (some failures set none). */
static void vips_reason(char *err, size_t errlen, const char *fallback)
{
	const char *msg = vips_error_buffer();
	size_t n;

	if (!msg || !*msg)
		msg = fallback;
	snprintf(err, errlen, "%s", msg);
	for (n = 0; err[n]; n++)
		if (err[n] == '\n')
			err[n] = err[n + 1] ? ' ' : '\0';
	vips_error_clear();
}

const char *image_vips_version(void)
{
	return vips_version_string();
}

int image_init(int concurrency, char *err, size_t errlen)
{
	/* Bounds glibc's per-thread arenas (measured: peak RSS 440 -> 260 MB
	 * for a long-lived process at no cost). */
	mallopt(M_ARENA_MAX, 2);
	setenv("VIPS_WARNING", "1", 0); /* no warning flood from bad inputs */
	if (VIPS_INIT("imgnode")) {
		vips_reason(err, errlen, "vips_init failed");
		return -EIO;
	}
	vips_cache_set_max(0);
	vips_concurrency_set(concurrency);
	/* Loaders: none but the allow-list (see image_probe). */
	vips_operation_block_set("VipsForeignLoad", TRUE);
	for (size_t i = 0; i < sizeof(loaders) / sizeof(loaders[0]); i++)
		vips_operation_block_set(loaders[i].loader, FALSE);
	return 0;
}

/* A name for common formats libvips may not even try: for messages. */
static bool guess_format(const void *buf, size_t len, char *out, size_t size)
{
	static const struct {
		const char *magic;
		size_t n;
		const char *name;
	} magics[] = {
	        {"BM", 2, "bmp"},
	        {"%PDF", 4, "pdf"},
	        {"<svg", 4, "svg"},
	        {"<?xml", 5, "svg"},
	        {"\0\0\1\0", 4, "ico"},
	        {"8BPS", 4, "psd"},
	        {"\xff\x4f\xff\x51", 4, "jpeg2000"},
	        {"\0\0\0\x0cjP", 6, "jpeg2000"},
	        {"\xff\x0a", 2, "jxl"},
	        {"P6", 2, "ppm"},
	        {"P5", 2, "pgm"},
	        {"qoif", 4, "qoi"},
	};

	for (size_t i = 0; i < sizeof(magics) / sizeof(magics[0]); i++)
		if (len >= magics[i].n &&
		    memcmp(buf, magics[i].magic, magics[i].n) == 0) {
			snprintf(out, size, "%s", magics[i].name);
			return true;
		}
	return false;
}

static bool accepted(const struct limits_conf *lim, const char *format)
{
	for (size_t i = 0; i < lim->formats.n; i++)
		if (strcmp(lim->formats.items[i], format) == 0)
			return true;
	return false;
}

static void accepted_list(const struct limits_conf *lim, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < lim->formats.n && off < len; i++) {
		int n = snprintf(buf + off, len - off, "%s%s", i ? ", " : "",
		                 lim->formats.items[i]);
		if (n < 0)
			break;
		off += (size_t)n;
	}
}

int image_probe(const void *buf, size_t len, const struct limits_conf *lim,
                struct image_info *info, char *err, size_t errlen)
{
	/* the loader's class, e.g. VipsForeignLoadJpegBuffer */
	const char *cls = vips_foreign_find_load_buffer(buf, len);
	const char *prefix = "VipsForeignLoad";
	char list[128];
	VipsImage *im;
	int64_t pixels, max;

	memset(info, 0, sizeof(*info));
	vips_error_clear(); /* process-wide: drop what earlier jobs left */
	accepted_list(lim, list, sizeof(list));
	if (!cls || strncmp(cls, prefix, strlen(prefix)) != 0) {
		vips_error_clear();
		char guess[16];
		if (guess_format(buf, len, guess, sizeof(guess)))
			snprintf(
			        err, errlen,
			        "unsupported format: %s (blocked; accepted: %s)",
			        guess, list);
		else
			snprintf(
			        err, errlen,
			        "unsupported format: not an image libvips knows (accepted: %s)",
			        list);
		return -EPROTONOSUPPORT;
	}
	for (size_t i = 0; i < sizeof(loaders) / sizeof(loaders[0]); i++)
		if (strncmp(cls, loaders[i].loader,
		            strlen(loaders[i].loader)) == 0)
			snprintf(info->format, sizeof(info->format), "%s",
			         loaders[i].format);
	if (!info->format[0] && (info->format[0] = 0, true) &&
	    guess_format(buf, len, info->format, sizeof(info->format))) {
		/* named from its magic bytes: bmp, svg, pdf... */
	} else if (!info->format[0]) {
		/* VipsForeignLoadSvgBuffer -> svg, for the message */
		size_t n = 0;
		for (const char *c = cls + strlen(prefix);
		     *c && n < sizeof(info->format) - 1 &&
		     strcmp(c, "Buffer") != 0;
		     c++)
			info->format[n++] = (char)(*c | 0x20);
		info->format[n] = '\0';
	}
	if (!accepted(lim, info->format)) {
		snprintf(err, errlen,
		         "unsupported format: %s (blocked; accepted: %s)",
		         info->format, list);
		return -EPROTONOSUPPORT;
	}
	/* header only: nothing is decoded yet */
	im = vips_image_new_from_buffer(buf, len, "", NULL);
	if (!im) {
		char why[256];
		vips_reason(why, sizeof(why), "unreadable header");
		snprintf(err, errlen, "cannot read the %s header: %s",
		         info->format, why);
		return -EINVAL;
	}
	info->width = vips_image_get_width(im);
	info->height = vips_image_get_height(im);
	info->pages = vips_image_get_n_pages(im);
	info->bands = im->Bands;
	info->band_bytes = (int)vips_format_sizeof(im->BandFmt);
	info->orientation = vips_image_get_orientation(im);
	if (vips_image_get_typeof(im, "interlaced")) {
		int v = 0;
		vips_image_get_int(im, "interlaced", &v);
		info->interlaced = v != 0;
	}
	g_object_unref(im);

	if (image_frames(info) > lim->max_frames) {
		snprintf(err, errlen,
		         "image has %d frames, over [limits] max_frames (%lld)",
		         info->pages, (long long)lim->max_frames);
		return -E2BIG;
	}
	pixels = (int64_t)info->width * info->height * image_frames(info);
	max = info->interlaced ? lim->max_pixels_interlaced : lim->max_pixels;
	if (pixels > max) {
		snprintf(
		        err, errlen,
		        "image is %dx%d%s (%.0f Mpx), limit is %.0f Mpx%s",
		        info->width, info->height,
		        image_frames(info) > 1 ? " x frames" : "", pixels / 1e6,
		        max / 1e6,
		        info->interlaced
		                ? " for progressive/interlaced images, which are decoded whole"
		                : "");
		return -E2BIG;
	}
	if (info->width > lim->max_dimension ||
	    info->height > lim->max_dimension) {
		snprintf(err, errlen,
		         "image is %dx%d, limit is %lld pixels a side",
		         info->width, info->height,
		         (long long)lim->max_dimension);
		return -E2BIG;
	}
	return 0;
}

/* Fields that are not metadata: what the pixels and animations need. */
static bool layout_field(const char *field)
{
	static const char *const keep[] = {
	        "page-height", "n-pages",  "delay", "loop",
	        "gif-delay",   "gif-loop", NULL};

	if (!strncmp(field, "vips-", 5))
		return true;
	for (int i = 0; keep[i]; i++)
		if (!strcmp(field, keep[i]))
			return true;
	return false;
}

/*
 * The default privacy step before the encoder ([limits] keep_metadata =
 * no): *out is in turned upright from its EXIF orientation, with every
 * metadata field removed but the ICC profile (EXIF, GPS, XMP, IPTC,
 * comments, camera makes and maker notes), and marked for the encoders
 * with IMGNODE_META_ICC_ONLY. A new reference, or -errno with a reason.
 */
static int clean_metadata(VipsImage *in, VipsImage **out, char *err,
                          size_t errlen)
{
	int page = vips_image_get_page_height(in);
	VipsImage *upright;
	gchar **fields;
	int r;

	if (vips_image_get_orientation(in) > 1 && page < in->Ysize) {
		snprintf(
		        err, errlen,
		        "cannot turn an animation (%d frames) upright from its EXIF orientation %d; set [limits] keep_metadata = yes to keep the tag instead",
		        in->Ysize / page, vips_image_get_orientation(in));
		return -ENOTSUP;
	}
	if (vips_autorot(in, &upright, NULL)) {
		vips_reason(err, errlen, "unable to turn the image upright");
		return -EINVAL;
	}
	r = vips_copy(upright, out, NULL);
	g_object_unref(upright);
	if (r) {
		vips_reason(err, errlen, "unable to copy the image");
		return -EINVAL;
	}
	fields = vips_image_get_fields(*out);
	for (int i = 0; fields[i]; i++)
		if (!layout_field(fields[i]) &&
		    strcmp(fields[i], VIPS_META_ICC_NAME) != 0)
			vips_image_remove(*out, fields[i]);
	g_strfreev(fields);
	vips_image_set_int(*out, IMGNODE_META_ICC_ONLY, 1);
	return 0;
}

/* Frames of im: an animation is one tall strip of page-height rows each. */
static int frames_of(VipsImage *im)
{
	int page = vips_image_get_page_height(im);

	return page < im->Ysize ? im->Ysize / page : 1;
}

/* Checks step i's real output, a strip of frames as libvips builds it. */
static int check_built(const struct pipeline *pl, size_t i, VipsImage *im,
                       const struct limits_conf *lim, char *err, size_t errlen)
{
	return cost_check_built(pl, i, im->Xsize,
	                        vips_image_get_page_height(im), frames_of(im),
	                        lim, err, errlen);
}

/*
 * For an encoder that cannot write animations (no IMGNODE_FILTER_FRAMES):
 * *img becomes its first frame, a still image. 0 or -errno with a reason.
 */
static int first_frame(VipsImage **img, char *err, size_t errlen)
{
	VipsImage *one, *still;
	int r;

	if (frames_of(*img) == 1)
		return 0;
	r = vips_crop(*img, &one, 0, 0, (*img)->Xsize,
	              vips_image_get_page_height(*img), NULL);
	if (!r) {
		r = vips_copy(one, &still, NULL);
		g_object_unref(one);
	}
	if (r) {
		vips_reason(err, errlen, "unable to take the first frame");
		return -EINVAL;
	}
	vips_image_remove(still, VIPS_META_PAGE_HEIGHT);
	g_object_unref(*img);
	*img = still;
	return 0;
}

static image_fetch_fn fetch_fn;
static void *fetch_arg;

void image_set_fetch(image_fetch_fn fn, void *arg)
{
	fetch_fn = fn;
	fetch_arg = arg;
}

/*
 * Applies step st to img into *next, with the images its
 * IMGNODE_ARG_IMAGE arguments name fetched first (image_set_fetch) and
 * held for the call. 0 or -errno with a reason (the step named).
 */
static int apply_step(const struct pipeline_step *st, VipsImage *img,
                      VipsImage **next, char *err, size_t errlen)
{
	union imgnode_value args[PIPELINE_MAX_ARGS];
	VipsImage *held[PIPELINE_MAX_ARGS] = {NULL};
	char why[512];
	size_t n = 0;
	int ret = 0;

	for (; n < PIPELINE_MAX_ARGS && st->ops->args[n].name; n++) {
		args[n] = st->args[n];
		if (st->ops->args[n].type != IMGNODE_ARG_IMAGE)
			continue;
		if (!fetch_fn) {
			snprintf(err, errlen,
			         "%s: stored images are not available here",
			         st->name);
			ret = -ENOTSUP;
			goto out_unref;
		}
		ret = fetch_fn(fetch_arg, st->args[n].s, &held[n], why,
		               sizeof(why));
		if (ret) {
			snprintf(err, errlen, "%s: %s", st->name, why);
			goto out_unref;
		}
		args[n].image = held[n];
	}
	ret = st->ops->apply(st->state, img, args, next, why, sizeof(why));
	if (ret)
		snprintf(err, errlen, "%s: %s", st->name, why);
out_unref:
	for (size_t k = 0; k < n; k++)
		if (held[k])
			g_object_unref(held[k]);
	return ret;
}

/* True if img's pixels are grey (one band, or grey + alpha). */
static bool grey(VipsImage *img)
{
	return img->Type == VIPS_INTERPRETATION_B_W ||
	       img->Type == VIPS_INTERPRETATION_GREY16 || img->Bands <= 2;
}

/*
 * The output's colours, before the encoder (IMGNODE_META_ICC_MODE, set by
 * the icc step; "srgb" without it): *out is in converted to sRGB -- CMYK
 * through its profile or libvips' own, colour with an embedded ICC profile
 * through lcms, 16-bit kept 16-bit -- without a profile ("srgb"), or with
 * an sRGB one ("embed", colour images only); "keep" leaves in as it is,
 * unless it is CMYK and format (the encoder's) cannot carry CMYK. A
 * profile lcms cannot use is dropped, the pixels left as they are. A new
 * reference, or -errno with a reason.
 */
static int output_colour(VipsImage *in, const char *format, VipsImage **out,
                         char *err, size_t errlen)
{
	const char *mode = "srgb";
	bool cmyk = in->Type == VIPS_INTERPRETATION_CMYK;
	/* formats that can carry CMYK: the others read it as RGBA */
	bool cmyk_ok =
	        format && (!strcmp(format, "jpeg") || !strcmp(format, "tiff"));
	bool icc = vips_image_get_typeof(in, VIPS_META_ICC_NAME) != 0;
	int depth = in->BandFmt == VIPS_FORMAT_USHORT ? 16 : 8;
	VipsImage *t = NULL;

	if (vips_image_get_typeof(in, IMGNODE_META_ICC_MODE))
		vips_image_get_string(in, IMGNODE_META_ICC_MODE, &mode);
	if (!strcmp(mode, "keep") && (!cmyk || cmyk_ok)) {
		*out = g_object_ref(in);
		return 0;
	}
	if ((icc && (cmyk || !grey(in))) &&
	    vips_icc_transform(in, &t, "srgb", "embedded", TRUE, "depth", depth,
	                       NULL)) {
		vips_error_clear(); /* an unusable profile */
		t = NULL;
	}
	if (!t && cmyk &&
	    vips_colourspace(in, &t,
	                     depth == 16 ? VIPS_INTERPRETATION_RGB16
	                                 : VIPS_INTERPRETATION_sRGB,
	                     NULL)) {
		vips_reason(err, errlen, "unable to convert CMYK to sRGB");
		return -EINVAL;
	}
	if (!t && !strcmp(mode, "embed") && !grey(in) &&
	    vips_icc_transform(in, &t, "srgb", "input_profile", "srgb", "depth",
	                       depth, NULL)) {
		vips_reason(err, errlen, "unable to embed an sRGB profile");
		return -EINVAL;
	}
	if (!t && vips_copy(in, &t, NULL)) {
		vips_reason(err, errlen, "unable to copy the image");
		return -EINVAL;
	}
	if (strcmp(mode, "embed") || grey(t))
		vips_image_remove(t, VIPS_META_ICC_NAME);
	*out = t;
	return 0;
}

static bool sequential_on = true;

void image_set_sequential(bool on)
{
	sequential_on = on;
}

bool image_sequential_ok(const struct pipeline *pl,
                         const struct plugin_set *set, size_t first,
                         const struct image_info *info,
                         const struct limits_conf *lim)
{
	const struct plugin *enc;

	if (!sequential_on)
		return false;
	/* turning upright from the EXIF orientation may read bottom-up */
	if (!lim->keep_metadata && info->orientation > 1)
		return false;
	for (size_t i = first; i < pl->n; i++)
		if (!(pl->steps[i].ops->flags & IMGNODE_FILTER_SEQUENTIAL))
			return false;
	if (pipeline_has_encoder(pl))
		return true;
	enc = pipeline_default_encoder(set, info->format);
	return enc &&
	       (((const struct imgnode_filter_ops *)enc->desc->ops)->flags &
	        IMGNODE_FILTER_SEQUENTIAL);
}

void image_load_options(const struct limits_conf *lim,
                        const struct image_info *info, bool sequential,
                        char *buf, size_t len)
{
	/* an animation is loaded whole: the steps work on every frame */
	snprintf(buf, len, "fail_on=%s%s%s", fail_on_names[lim->fail_on],
	         image_frames(info) > 1 ? ",n=-1" : "",
	         sequential ? ",access=sequential" : "");
}

int image_run(const struct pipeline *pl, const struct plugin_set *set,
              const void *buf, size_t len, const struct image_info *info,
              const struct limits_conf *lim, struct image_out *out, char *err,
              size_t errlen)
{
	char options[64], why[512];
	VipsImage *img = NULL;
	size_t first = 0;
	int ret;

	memset(out, 0, sizeof(*out));
	/* nothing is decoded before every step is known to fit */
	ret = cost_check(pl, set, info, lim, err, errlen);
	if (ret)
		return ret;
	vips_error_clear();
	if (pl->n > 0 && (pl->steps[0].ops->flags & IMGNODE_FILTER_LOADS)) {
		const struct pipeline_step *st = &pl->steps[0];
		image_load_options(lim, info, false, options, sizeof(options));
		ret = st->ops->load(st->state, buf, len, options, st->args,
		                    &img, why, sizeof(why));
		if (ret) {
			snprintf(err, errlen, "%s: %s", st->name, why);
			return ret;
		}
		first = 1;
		ret = check_built(pl, 0, img, lim, err, errlen);
		if (ret) {
			g_object_unref(img);
			return ret;
		}
	} else {
		image_load_options(lim, info,
		                   image_sequential_ok(pl, set, 0, info, lim),
		                   options, sizeof(options));
		img = vips_image_new_from_buffer(buf, len, options, NULL);
		if (!img) {
			vips_reason(why, sizeof(why), "cannot decode");
			snprintf(err, errlen, "corrupt %s: %s", info->format,
			         why);
			return -EINVAL;
		}
	}
	return image_run_steps(pl, set, img, first, info, lim, out, err,
	                       errlen);
}

int image_run_steps(const struct pipeline *pl, const struct plugin_set *set,
                    VipsImage *img, size_t first, const struct image_info *info,
                    const struct limits_conf *lim, struct image_out *out,
                    char *err, size_t errlen)
{
	char why[512];
	const struct imgnode_filter_ops *enc_ops;
	const union imgnode_value *enc_args;
	union imgnode_value defaults[16];
	const char *enc_name;
	void *enc_state;
	VipsImage *next;
	size_t last = pl->n;
	int ret;

	memset(out, 0, sizeof(*out));
	if (pipeline_has_encoder(pl)) {
		const struct pipeline_step *st = &pl->steps[pl->n - 1];
		enc_ops = st->ops;
		enc_args = st->args;
		enc_state = st->state;
		enc_name = st->name;
		last = pl->n - 1;
	} else {
		const struct plugin *p =
		        pipeline_default_encoder(set, info->format);
		if (!p) {
			g_object_unref(img);
			snprintf(
			        err, errlen,
			        "no encoder for %s, the input's format: end the pipeline with one (e.g. jpeg)",
			        info->format);
			return -EINVAL;
		}
		enc_ops = p->desc->ops;
		enc_state = p->state;
		enc_name = p->desc->name;
		if (pipeline_default_args(enc_ops->args, defaults, 16)) {
			g_object_unref(img);
			snprintf(err, errlen,
			         "encoder %s has a required argument",
			         enc_name);
			return -EINVAL;
		}
		enc_args = defaults;
	}
	for (size_t i = first; i < last; i++) {
		const struct pipeline_step *st = &pl->steps[i];
		ret = apply_step(st, img, &next, err, errlen);
		g_object_unref(img);
		if (ret)
			return ret;
		img = next;
		/* built, not computed: its size is known, its pixels not */
		ret = check_built(pl, i, img, lim, err, errlen);
		if (ret) {
			g_object_unref(img);
			return ret;
		}
	}
	if (!(enc_ops->flags & IMGNODE_FILTER_FRAMES)) {
		ret = first_frame(&img, err, errlen);
		if (ret) {
			g_object_unref(img);
			return ret;
		}
	}
	ret = output_colour(img, enc_ops->format, &next, why, sizeof(why));
	g_object_unref(img);
	if (ret) {
		snprintf(err, errlen, "%s", why);
		return ret;
	}
	img = next;
	if (!lim->keep_metadata) {
		ret = clean_metadata(img, &next, why, sizeof(why));
		g_object_unref(img);
		if (ret) {
			snprintf(err, errlen, "%s", why);
			return ret;
		}
		img = next;
	}
	out->width = vips_image_get_width(img);
	out->height = vips_image_get_page_height(img);
	out->frames = frames_of(img);
	ret = enc_ops->encode(enc_state, img, enc_args, &out->buf, &out->len,
	                      why, sizeof(why));
	g_object_unref(img);
	if (ret) {
		/* the loader runs inside the encoder: a damaged input
		 * shows up here, named by libvips */
		if (strstr(why, "Vips") || strstr(why, "load") ||
		    strstr(why, "Corrupt") || strstr(why, "Premature"))
			snprintf(err, errlen, "corrupt %s: %s", info->format,
			         why);
		else
			snprintf(err, errlen, "%s: %s", enc_name, why);
		return ret;
	}
	ret = cost_check_output(enc_name, out->len, lim, err, errlen);
	if (ret) {
		image_out_free(out);
		return ret;
	}
	out->mime = enc_ops->mime;
	out->format = enc_ops->format;
	out->encoder = enc_name;
	return 0;
}

int image_open_blob(VipsBlob *blob, const struct limits_conf *lim,
                    VipsImage **out, char *err, size_t errlen)
{
	char options[64];
	struct image_info info;
	VipsSource *src;
	size_t len;
	const void *data = vips_blob_get(blob, &len);
	int ret;

	ret = image_probe(data, len, lim, &info, err, errlen);
	if (ret)
		return ret;
	snprintf(options, sizeof(options), "fail_on=%s",
	         fail_on_names[lim->fail_on]);
	src = vips_source_new_from_blob(blob);
	if (!src) {
		vips_reason(err, errlen, "cannot read the image");
		return -ENOMEM;
	}
	*out = vips_image_new_from_source(src, options, NULL);
	g_object_unref(src);
	if (!*out) {
		char why[256];
		vips_reason(why, sizeof(why), "cannot decode");
		snprintf(err, errlen, "corrupt %s: %s", info.format, why);
		return -EINVAL;
	}
	return 0;
}

void image_out_free(struct image_out *out)
{
	g_free(out->buf);
	out->buf = NULL;
}
