/*
 * resize([width][, height][, fit][, gravity][, fx, fy][, background][, dpr])
 * or resize(scale=F): scales the image, turned upright first from its EXIF
 * orientation (as thumbnail does), with libvips' Lanczos3 kernel and alpha
 * premultiplied while resampling. The fit modes are sharp's:
 *
 *   cover    fill width x height, keeping the aspect, and cut off what
 *            sticks out, keeping the part gravity names (a compass point,
 *            attention or entropy as smartcrop, or fp: the focal point
 *            fx, fy, fractions of the width and height)
 *   contain  fit inside width x height, keeping the aspect, and fill the
 *            rest with background (placed by gravity)
 *   fill     exactly width x height, the aspect ignored
 *   inside   keep the aspect, no side larger than asked
 *   outside  keep the aspect, no side smaller than asked
 *
 * A width or height of 0 (or left out) is worked out from the other,
 * keeping the aspect. dpr (1 to 4) multiplies both, for screens of that
 * density. scale=F (0.001 to 10) scales by a factor instead, as resize
 * did before it took sizes: pipelines and queued jobs that say
 * resize(scale=0.5) keep working; resize(0.5) is refused with a reason
 * naming that form, since a width is a whole number of pixels.
 *
 * As the first step of a pipeline it decodes the upload itself, shrinking
 * a JPEG (by 2, 4 or 8) or a WebP without alpha while decoding when the
 * result is at least twice as small again (as libvips' thumbnail does),
 * then resamples the rest of the way: the same size as a full decode,
 * near-identical pixels, a fraction of the time and memory. An animation (libvips' page-height) is resized
 * frame by frame; gravity=attention|entropy is refused on one.
 */
#include <math.h>

#include <vips/vips.h>

#include "filter.h"

enum {
	ARG_WIDTH,
	ARG_HEIGHT,
	ARG_FIT,
	ARG_GRAVITY,
	ARG_FX,
	ARG_FY,
	ARG_BACKGROUND,
	ARG_DPR,
	ARG_SCALE
};

enum { FIT_COVER, FIT_CONTAIN, FIT_FILL, FIT_INSIDE, FIT_OUTSIDE };

static const char *const fits[] = {"cover",  "contain", "fill",
                                   "inside", "outside", NULL};

/* The compass points (0..8), then these. */
enum { GRAVITY_ATTENTION = FILTER_COMPASS_N, GRAVITY_ENTROPY, GRAVITY_FP };

static const char *const gravities[] = {FILTER_COMPASS_CHOICES, "attention",
                                        "entropy", "fp", NULL};

static const struct imgnode_arg args[] = {
        {"width", IMGNODE_ARG_NUMBER, "0", 0, VIPS_MAX_COORD, NULL,
         "Width in pixels; 0: from the height, keeping the aspect."},
        {"height", IMGNODE_ARG_NUMBER, "0", 0, VIPS_MAX_COORD, NULL,
         "Height in pixels; 0: from the width, keeping the aspect."},
        {"fit", IMGNODE_ARG_ENUM, "cover", 0, 0, fits,
         "cover (crop), contain (letterbox), fill (stretch), inside, "
         "outside."},
        {"gravity", IMGNODE_ARG_ENUM, "centre", 0, 0, gravities,
         "What cover keeps, where contain places: a compass point, "
         "attention, entropy, or fp (the focal point fx, fy)."},
        {"fx", IMGNODE_ARG_NUMBER, "0.5", 0, 1, NULL,
         "gravity=fp: the focal point's x, a fraction of the width."},
        {"fy", IMGNODE_ARG_NUMBER, "0.5", 0, 1, NULL,
         "gravity=fp: the focal point's y, a fraction of the height."},
        {"background", IMGNODE_ARG_STRING, "black", 0, 0, NULL,
         "fit=contain: the colour around the image, rrggbb[aa] or a name."},
        {"dpr", IMGNODE_ARG_NUMBER, "1", 1, 4, NULL,
         "Device pixel ratio: multiplies width and height."},
        {"scale", IMGNODE_ARG_NUMBER, "0", 0, 10, NULL,
         "Instead of a size: a factor (0.001 to 10); 0: not used."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/* What a resize does to an image of a given size. */
struct plan {
	int64_t rw, rh; /* resampled to */
	int64_t ow, oh; /* then cut or embedded to */
	int64_t x, y; /* cover: the cut's offset; contain: the image's */
	bool cut, embed;
	struct filter_colour background;
};

/* A size argument as pixels: a whole number, times dpr. */
static int pixels(const char *name, double v, double dpr, int64_t *out,
                  char *err, size_t errlen)
{
	if (v != floor(v)) {
		snprintf(
		        err, errlen,
		        "%s %g is not a whole number of pixels; to scale by a factor, write resize(scale=%g)",
		        name, v, v);
		return -EINVAL;
	}
	*out = (int64_t)rint(v * dpr);
	return 0;
}

/* x * num / den rounded, at least 1. */
static int64_t scaled(int64_t x, int64_t num, int64_t den)
{
	return VIPS_MAX(1, (int64_t)rint((double)x * num / den));
}

/*
 * Works out what resizing a W x H image (upright) does, checking the
 * arguments on the way: 0, or -EINVAL with a reason naming the argument.
 */
static int make_plan(int64_t W, int64_t H, const union imgnode_value *a,
                     struct plan *p, char *err, size_t errlen)
{
	double scale = a[ARG_SCALE].n, dpr = a[ARG_DPR].n;
	int fit = a[ARG_FIT].e, g = a[ARG_GRAVITY].e;
	int64_t w, h;
	bool by_width;

	memset(p, 0, sizeof(*p));
	if (pixels("width", a[ARG_WIDTH].n, dpr, &w, err, errlen) ||
	    pixels("height", a[ARG_HEIGHT].n, dpr, &h, err, errlen) ||
	    filter_parse_colour("background", a[ARG_BACKGROUND].s,
	                        &p->background, err, errlen))
		return -EINVAL;
	if (scale > 0 && (w || h)) {
		snprintf(err, errlen,
		         "give width and height, or scale, not both");
		return -EINVAL;
	}
	if (scale > 0 && scale < 0.001) {
		snprintf(err, errlen, "scale %g is out of range (0.001 to 10)",
		         scale);
		return -ERANGE;
	}
	if (!scale && !w && !h) {
		snprintf(
		        err, errlen,
		        "missing width or height, in pixels (or scale=F to scale by a factor)");
		return -EINVAL;
	}
	if (g != GRAVITY_FP && (a[ARG_FX].n != 0.5 || a[ARG_FY].n != 0.5)) {
		snprintf(err, errlen,
		         "fx and fy place a focal point: they need gravity=fp");
		return -EINVAL;
	}
	if ((g == GRAVITY_ATTENTION || g == GRAVITY_ENTROPY) &&
	    fit != FIT_COVER) {
		snprintf(
		        err, errlen,
		        "gravity=%s chooses what fit=cover keeps; fit=%s takes a compass point or fp",
		        gravities[g], fits[fit]);
		return -EINVAL;
	}
	if (scale > 0) {
		p->rw = VIPS_MAX(1, (int64_t)rint(W * scale * dpr));
		p->rh = VIPS_MAX(1, (int64_t)rint(H * scale * dpr));
	} else if (!h || (w && fit == FIT_FILL)) {
		p->rw = w;
		p->rh = h ? h : scaled(H, w, W);
	} else if (!w) {
		p->rw = scaled(W, h, H);
		p->rh = h;
	} else {
		/* the axis that decides: the one scaled least (inside,
		 * contain) or most (outside, cover) */
		by_width = (double)w / W <= (double)h / H;
		if (fit == FIT_OUTSIDE || fit == FIT_COVER)
			by_width = !by_width;
		p->rw = by_width ? w : scaled(W, h, H);
		p->rh = by_width ? scaled(H, w, W) : h;
	}
	p->ow = p->rw;
	p->oh = p->rh;
	if (!w || !h || scale > 0)
		return 0;
	if (fit == FIT_COVER && (p->rw > w || p->rh > h)) {
		p->cut = true;
		p->ow = w;
		p->oh = h;
		if (g < FILTER_COMPASS_N)
			filter_compass(g, true, p->rw, p->rh, w, h, &p->x,
			               &p->y);
		else if (g == GRAVITY_FP) {
			p->x = (int64_t)rint(a[ARG_FX].n * p->rw - w / 2.0);
			p->y = (int64_t)rint(a[ARG_FY].n * p->rh - h / 2.0);
			p->x = VIPS_CLIP(0, p->x, p->rw - w);
			p->y = VIPS_CLIP(0, p->y, p->rh - h);
		}
	} else if (fit == FIT_CONTAIN && (p->rw < w || p->rh < h)) {
		p->embed = true;
		p->ow = w;
		p->oh = h;
		if (g < FILTER_COMPASS_N)
			filter_compass(g, false, w, h, p->rw, p->rh, &p->x,
			               &p->y);
		else {
			p->x = (int64_t)rint(a[ARG_FX].n * (w - p->rw));
			p->y = (int64_t)rint(a[ARG_FY].n * (h - p->rh));
		}
	}
	return 0;
}

/* The resampling step: to the plan's rw x rh, whatever the input's size. */
struct resample {
	double hscale, vscale;
};

static int resample_op(VipsImage *in, VipsImage **out, const void *arg)
{
	const struct resample *r = arg;

	return vips_resize(in, out, r->hscale, "vscale", r->vscale, NULL);
}

/* What one frame goes through, for filter_frames. */
struct frame_job {
	const struct plan *plan;
	int gravity;
};

static int resize_frame(VipsImage *in, VipsImage **out, const void *arg,
                        char *err, size_t errlen)
{
	const struct frame_job *job = arg;
	const struct plan *p = job->plan;
	struct resample rs = {(double)p->rw / in->Xsize,
	                      (double)p->rh / in->Ysize};
	VipsImage *t;
	int r;

	if (p->rw == in->Xsize && p->rh == in->Ysize)
		r = vips_copy(in, &t, NULL);
	else
		r = filter_premultiplied(in, &t, resample_op, &rs);
	if (r)
		return filter_fail(err, errlen, NULL);
	if (t->Xsize != p->rw || t->Ysize != p->rh) {
		snprintf(err, errlen, "libvips resized to %dx%d, not %lldx%lld",
		         t->Xsize, t->Ysize, (long long)p->rw,
		         (long long)p->rh);
		g_object_unref(t);
		return -EPROTO;
	}
	if (p->cut && job->gravity == GRAVITY_ATTENTION)
		r = vips_smartcrop(t, out, (int)p->ow, (int)p->oh,
		                   "interesting", VIPS_INTERESTING_ATTENTION,
		                   NULL);
	else if (p->cut && job->gravity == GRAVITY_ENTROPY)
		r = vips_smartcrop(t, out, (int)p->ow, (int)p->oh,
		                   "interesting", VIPS_INTERESTING_ENTROPY,
		                   NULL);
	else if (p->cut)
		r = vips_crop(t, out, (int)p->x, (int)p->y, (int)p->ow,
		              (int)p->oh, NULL);
	else if (p->embed) {
		r = filter_embed_colour(t, (int)p->x, (int)p->y, (int)p->ow,
		                        (int)p->oh, &p->background, out, err,
		                        errlen);
		g_object_unref(t);
		return r;
	} else {
		*out = t;
		return 0;
	}
	g_object_unref(t);
	return r ? filter_fail(err, errlen, NULL) : 0;
}

/*
 * Turns in upright (a new reference in *out): steps after resize see the
 * box they asked for. An animation with an orientation is refused.
 */
static int upright(VipsImage *in, VipsImage **out, char *err, size_t errlen)
{
	int orientation = vips_image_get_orientation(in);

	if (orientation > 1 && vips_image_get_page_height(in) < in->Ysize) {
		snprintf(
		        err, errlen,
		        "cannot turn an animation upright (EXIF orientation %d)",
		        orientation);
		return -ENOTSUP;
	}
	if (vips_autorot(in, out, NULL))
		return filter_fail(err, errlen, "unable to turn it upright");
	return 0;
}

/*
 * Resizes in (upright) as planned for a frame of W x H; the plan is made
 * from the original's size, so that an image shrunk on load ends at the
 * same size as a full decode.
 */
static int resize_planned(VipsImage *in, int64_t W, int64_t H,
                          const union imgnode_value *args, VipsImage **out,
                          char *err, size_t errlen)
{
	struct plan p;
	struct frame_job job = {&p, args[ARG_GRAVITY].e};
	int r;

	if ((r = make_plan(W, H, args, &p, err, errlen)))
		return r;
	if (vips_image_get_page_height(in) < in->Ysize &&
	    (job.gravity == GRAVITY_ATTENTION ||
	     job.gravity == GRAVITY_ENTROPY)) {
		snprintf(
		        err, errlen,
		        "gravity=%s cannot work on an animation (each frame would be cut elsewhere); use a compass point or fp",
		        gravities[job.gravity]);
		return -ENOTSUP;
	}
	return filter_frames(in, out, resize_frame, &job, err, errlen);
}

static int resize_apply(void *state, VipsImage *in,
                        const union imgnode_value *args, VipsImage **out,
                        char *err, size_t errlen)
{
	VipsImage *up;
	int r;

	(void)state;
	filter_start();
	if ((r = upright(in, &up, err, errlen)))
		return r;
	r = resize_planned(up, up->Xsize, vips_image_get_page_height(up), args,
	                   out, err, errlen);
	g_object_unref(up);
	return r;
}

/*
 * The factor to shrink by while decoding (JPEG DCT scaling: 2, 4 or 8;
 * WebP would take any, given the same) for a shrink of shrink: the
 * largest that leaves at least 2x for Lanczos to resample, as libvips'
 * thumbnail chooses.
 */
static int load_shrink(double shrink)
{
	if (shrink >= 16)
		return 8;
	if (shrink >= 8)
		return 4;
	if (shrink >= 4)
		return 2;
	return 1;
}

/*
 * The first step: decodes buf, shrinking a JPEG while decoding when that
 * leaves the result the same (see the top of the file).
 */
static int resize_load(void *state, const void *buf, size_t len,
                       const char *options, const union imgnode_value *args,
                       VipsImage **out, char *err, size_t errlen)
{
	const char *loader = vips_foreign_find_load_buffer(buf, len);
	VipsAccess access = VIPS_ACCESS_SEQUENTIAL;
	VipsImage *head, *img, *up;
	int64_t W, H;
	struct plan p;
	int shrink = 1, r;
	bool jpeg, webp;

	(void)state;
	filter_start();
	if (!(head = vips_image_new_from_buffer(buf, len, options, NULL)))
		return filter_fail(err, errlen, "unable to load the image");
	W = head->Xsize;
	H = vips_image_get_page_height(head);
	if (filter_quarter_turn(vips_image_get_orientation(head)))
		VIPS_SWAP(int64_t, W, H);
	if ((r = make_plan(W, H, args, &p, err, errlen)))
		goto out_unref_head;
	/* smartcrop reads its input twice; a quarter turn reads columns */
	if (args[ARG_GRAVITY].e == GRAVITY_ATTENTION ||
	    args[ARG_GRAVITY].e == GRAVITY_ENTROPY ||
	    vips_image_get_orientation(head) > 1)
		access = VIPS_ACCESS_RANDOM;
	jpeg = loader && !strcmp(loader, "VipsForeignLoadJpegBuffer");
	/* libwebp scales alpha unpremultiplied: hidden colour would show */
	webp = loader && !strcmp(loader, "VipsForeignLoadWebpBuffer") &&
	       !vips_image_hasalpha(head);
	if (jpeg || webp)
		shrink = load_shrink(
		        VIPS_MIN((double)W / p.rw, (double)H / p.rh));
	if (shrink > 1 && jpeg)
		img = vips_image_new_from_buffer(buf, len, options, "access",
		                                 access, "shrink", shrink,
		                                 NULL);
	else if (shrink > 1)
		img = vips_image_new_from_buffer(buf, len, options, "access",
		                                 access, "scale", 1.0 / shrink,
		                                 NULL);
	else
		img = vips_image_new_from_buffer(buf, len, options, "access",
		                                 access, NULL);
	if (!img) {
		r = filter_fail(err, errlen, "unable to load the image");
		goto out_unref_head;
	}
	r = upright(img, &up, err, errlen);
	g_object_unref(img);
	if (!r) {
		r = resize_planned(up, W, H, args, out, err, errlen);
		g_object_unref(up);
	}
out_unref_head:
	g_object_unref(head);
	return r;
}

static int resize_predict(void *state, const struct imgnode_geometry *in,
                          const union imgnode_value *args,
                          struct imgnode_geometry *out, char *err,
                          size_t errlen)
{
	bool turn = filter_quarter_turn(in->orientation);
	struct plan p;
	int r;

	(void)state;
	r = make_plan(turn ? in->height : in->width,
	              turn ? in->width : in->height, args, &p, err, errlen);
	if (r)
		return r;
	out->width = p.ow;
	out->height = p.oh;
	out->orientation = 1;
	if (p.embed)
		out->bands =
		        filter_colour_bands(in->bands, &p.background, true);
	if (p.cut) {
		out->work_width = p.rw;
		out->work_height = p.rh;
	}
	return 0;
}

/* Every fit on the 64x48 test image, and the load path on a JPEG of it. */
static int resize_selftest(void *state, char *err, size_t errlen)
{
	static const struct {
		double width, height;
		int fit, w, h;
	} cases[] = {
	        {32, 32, FIT_COVER, 32, 32},   {32, 32, FIT_CONTAIN, 32, 32},
	        {32, 32, FIT_FILL, 32, 32},    {32, 32, FIT_INSIDE, 32, 24},
	        {32, 32, FIT_OUTSIDE, 43, 32}, {16, 0, FIT_COVER, 16, 12},
	};
	union imgnode_value a[] = {{.n = 0},          {.n = 0},   {.e = 0},
	                           {.e = 0},          {.n = 0.5}, {.n = 0.5},
	                           {.s = "ff000080"}, {.n = 1},   {.n = 0}};
	VipsImage *in, *img;
	void *jpeg;
	size_t len;
	int r;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		a[ARG_WIDTH].n = cases[i].width;
		a[ARG_HEIGHT].n = cases[i].height;
		a[ARG_FIT].e = cases[i].fit;
		r = filter_selftest_apply(resize_apply, a, cases[i].w,
		                          cases[i].h, err, errlen);
		if (r)
			return r;
	}
	if (!(in = filter_test_image()) ||
	    vips_jpegsave_buffer(in, &jpeg, &len, NULL)) {
		if (in)
			g_object_unref(in);
		return filter_fail(err, errlen, "self-test: no test image");
	}
	g_object_unref(in);
	a[ARG_WIDTH].n = 8;
	a[ARG_HEIGHT].n = 0;
	r = resize_load(NULL, jpeg, len, "fail_on=truncated", a, &img, err,
	                errlen);
	if (!r) {
		if (img->Xsize != 8 || img->Ysize != 6) {
			snprintf(err, errlen, "self-test loaded %dx%d, not 8x6",
			         img->Xsize, img->Ysize);
			r = -EPROTO;
		}
		g_object_unref(img);
	}
	g_free(jpeg);
	return r;
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_LOADS | IMGNODE_FILTER_FRAMES,
        .apply = resize_apply,
        .load = resize_load,
        .selftest = resize_selftest,
        .predict = resize_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "resize",
        .version = "2.0",
        .description = "Resize to a width and height with a fit mode "
                       "(cover, contain, fill, inside, outside), or by a "
                       "factor; shrinks while decoding when first.",
        .ops = &ops,
};
