/*
 * Tests of the geometry filters (plugins/filter/): resize with its fit
 * modes, gravity, focal point, background and dpr, its shrink-on-load as
 * a first step, and extend, pad, trim and flatten. Each plugin is loaded as
 * a worker loads it (dlopen of $BUILD/plugins/NAME.so) and run on real
 * images from the corpus (test/data/README.md; build it with
 * test/data/corpus): camera JPEGs, RGBA PNGs, an animated GIF. Results
 * that matter are computed (read back pixel by pixel), since libvips builds
 * pipelines lazily, and every built size is checked against the step's
 * predict, which the host's cost check trusts before decoding anything.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <imgnode/plugin.h>
#include <vips/vips.h>

#include "filterkit.h"
#include "host.h"

static const char *const names[] = {"resize", "extend",  "pad",
                                    "trim",   "flatten", NULL};

/* Fills v for filter name from "name=value" arguments ending with END. */
static void args_of(const char *name, union imgnode_value *v, ...)
{
	va_list ap;

	va_start(ap, v);
	make_args(filter_of(name)->ops, v, ap);
	va_end(ap);
}

/* Runs name's predict for in's shape; 0 or its error (reason in err). */
static int try_predict(const char *name, VipsImage *in,
                       struct imgnode_geometry *out, char *err, size_t errlen,
                       ...)
{
	union imgnode_value v[MAX_ARGS];
	struct filter *f = filter_of(name);
	struct imgnode_geometry g = geometry_of(in);
	va_list ap;

	va_start(ap, errlen);
	make_args(f->ops, v, ap);
	va_end(ap);
	*out = g;
	out->work_width = out->work_height = out->min_bytes = 0;
	err[0] = '\0';
	return f->ops->predict(f->state, &g, v, out, err, errlen);
}

/*
 * Applies name to in (must succeed), checks that predict said the size and
 * bands libvips built (per frame), and returns the result computed into
 * memory.
 */
static VipsImage *step(const char *name, VipsImage *in, ...)
{
	union imgnode_value v[MAX_ARGS];
	struct filter *f = filter_of(name);
	struct imgnode_geometry g = geometry_of(in), p = g;
	VipsImage *out = NULL, *mem;
	char err[512] = "";
	va_list ap;

	va_start(ap, in);
	make_args(f->ops, v, ap);
	va_end(ap);
	if (f->ops->predict(f->state, &g, v, &p, err, sizeof(err)))
		fail_msg("%s: predict failed: %s", name, err);
	if (f->ops->apply(f->state, in, v, &out, err, sizeof(err)))
		fail_msg("%s failed: %s", name, err);
	if (strcmp(name, "trim") &&
	    (p.width != out->Xsize ||
	     p.height != vips_image_get_page_height(out) ||
	     p.bands != out->Bands))
		fail_msg(
		        "%s on %dx%d: predicted %lldx%lld, %d bands; libvips made %dx%d, %d bands",
		        name, in->Xsize, in->Ysize, (long long)p.width,
		        (long long)p.height, p.bands, out->Xsize,
		        vips_image_get_page_height(out), out->Bands);
	if (!(mem = vips_image_copy_memory(out)))
		fail_msg("%s: %s", name, vips_error_buffer());
	g_object_unref(out);
	return mem;
}

/* A step that must fail with code and a reason starting with why. */
static void refused(const char *name, VipsImage *in, int code, const char *why,
                    ...)
{
	union imgnode_value v[MAX_ARGS];
	struct filter *f = filter_of(name);
	VipsImage *out = NULL;
	char err[512] = "";
	va_list ap;

	va_start(ap, why);
	make_args(f->ops, v, ap);
	va_end(ap);
	assert_int_equal(f->ops->apply(f->state, in, v, &out, err, sizeof(err)),
	                 code);
	assert_null(out);
	if (strncmp(err, why, strlen(why)))
		fail_msg("%s: unclear reason: %s", name, err);
}

/* ---- pixels */

/* The w x h rectangle of img at left, top, in memory. */
static VipsImage *region(VipsImage *img, int left, int top, int w, int h)
{
	VipsImage *c, *mem;

	assert_int_equal(vips_crop(img, &c, left, top, w, h, NULL), 0);
	mem = vips_image_copy_memory(c);
	g_object_unref(c);
	assert_non_null(mem);
	return mem;
}

/* ---- resize */

/*
 * Every fit on a 6028x3391 camera photo into a 300x200 box, by the rules
 * (sharp's): the kept side is the box's, the other follows the aspect.
 */
static void test_resize_fits(void **state)
{
	VipsImage *in = open_image("photos/kleiber.jpg", "");
	static const struct {
		const char *fit;
		int w, h;
	} want[] = {
	        {"fit=cover", 300, 200},   {"fit=contain", 300, 200},
	        {"fit=fill", 300, 200},    {"fit=inside", 300, 169},
	        {"fit=outside", 356, 200},
	};
	VipsImage *out;

	(void)state;
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		out = step("resize", in, "width=300", "height=200", want[i].fit,
		           END);
		if (out->Xsize != want[i].w || out->Ysize != want[i].h)
			fail_msg("%s: %dx%d, not %dx%d", want[i].fit,
			         out->Xsize, out->Ysize, want[i].w, want[i].h);
		assert_int_equal(out->Bands, 3);
		g_object_unref(out);
	}
	/* one side given: the other follows, whatever the fit */
	out = step("resize", in, "height=100", "fit=contain", END);
	assert_int_equal(out->Xsize, 178);
	assert_int_equal(out->Ysize, 100);
	g_object_unref(out);
	/* dpr multiplies the box */
	out = step("resize", in, "width=150", "height=100", "dpr=2", END);
	assert_int_equal(out->Xsize, 300);
	assert_int_equal(out->Ysize, 200);
	g_object_unref(out);
	/* the old form */
	out = step("resize", in, "scale=0.05", END);
	assert_int_equal(out->Xsize, 301);
	assert_int_equal(out->Ysize, 170);
	g_object_unref(out);
	/* enlarging works too */
	out = step("resize", in, "width=7000", "height=7000", "fit=inside",
	           END);
	assert_int_equal(out->Xsize, 7000);
	assert_int_equal(out->Ysize, 3938);
	g_object_unref(out);
	g_object_unref(in);
}

/*
 * cover keeps the part gravity names: on the same resized strip, north,
 * south, fp at the corners and a compass corner cut where they should.
 */
static void test_resize_gravity(void **state)
{
	VipsImage *in = open_image("formats/jpeg-icc.jpg", "");
	VipsImage *tall, *north, *south, *fp, *nw, *top, *bottom;

	(void)state;
	/* as tall as the image is made for a 100x30 box: cut above/below */
	tall = step("resize", in, "width=100", END);
	assert_true(tall->Ysize > 40);
	north = step("resize", in, "width=100", "height=30", "gravity=north",
	             END);
	south = step("resize", in, "width=100", "height=30", "gravity=south",
	             END);
	top = region(tall, 0, 0, 100, 30);
	bottom = region(tall, 0, tall->Ysize - 30, 100, 30);
	assert_true(mean_diff(north, top) < 0.5);
	assert_true(mean_diff(south, bottom) < 0.5);
	assert_true(mean_diff(north, south) > 5);
	/* the focal point at the top is north; northwest on a tall cut too */
	fp = step("resize", in, "width=100", "height=30", "gravity=fp", "fx=0",
	          "fy=0", END);
	nw = step("resize", in, "width=100", "height=30", "gravity=northwest",
	          END);
	assert_true(mean_diff(fp, top) < 0.5);
	assert_true(mean_diff(nw, top) < 0.5);
	g_object_unref(fp);
	g_object_unref(nw);
	/* attention and entropy cut somewhere, at the size asked */
	fp = step("resize", in, "width=100", "height=30", "gravity=attention",
	          END);
	assert_int_equal(fp->Ysize, 30);
	g_object_unref(fp);
	g_object_unref(top);
	g_object_unref(bottom);
	g_object_unref(north);
	g_object_unref(south);
	g_object_unref(tall);
	g_object_unref(in);
}

/*
 * contain letterboxes on the background, placed by gravity; a colour with
 * alpha adds an alpha band to a JPEG.
 */
static void test_resize_contain(void **state)
{
	VipsImage *in = open_image("photos/kleiber.jpg", "");
	VipsImage *inside, *box, *pic;

	(void)state;
	inside = step("resize", in, "width=200", "height=200", "fit=inside",
	              END);
	assert_int_equal(inside->Ysize, 113);
	box = step("resize", in, "width=200", "height=200", "fit=contain",
	           "background=ff000080", "gravity=south", END);
	assert_int_equal(box->Bands, 4);
	/* above the picture: the colour, half transparent */
	assert_true(pixel(box, 5, 5, 0) == 255 && pixel(box, 5, 5, 1) == 0 &&
	            pixel(box, 5, 5, 2) == 0 && pixel(box, 5, 5, 3) == 128);
	/* at the bottom (south): the picture, opaque */
	pic = region(box, 0, 87, 200, 113);
	assert_true(pixel(pic, 100, 50, 3) == 255);
	{
		VipsImage *rgb;
		assert_int_equal(vips_extract_band(pic, &rgb, 0, "n", 3, NULL),
		                 0);
		assert_true(mean_diff(rgb, inside) < 0.5);
		g_object_unref(rgb);
	}
	g_object_unref(pic);
	g_object_unref(box);
	/* a grey PNG with alpha on a colour becomes sRGB with alpha */
	g_object_unref(in);
	in = open_image("formats/pngsuite-basn4a08.png", "");
	box = step("resize", in, "width=64", "height=40", "fit=contain",
	           "background=blue", END);
	assert_int_equal(box->Bands, 4);
	assert_true(pixel(box, 0, 0, 2) == 255 && pixel(box, 0, 0, 0) == 0);
	g_object_unref(box);
	g_object_unref(inside);
	g_object_unref(in);
}

/*
 * Alpha is premultiplied while resampling: on the RGBA corpus PNG, the
 * colour of wholly transparent pixels does not leak into the result.
 * Checked against the same PNG with its transparent pixels' colour made
 * black: the results' visible pixels agree.
 */
static void test_resize_alpha(void **state)
{
	VipsImage *in = open_image("formats/pngsuite-basn6a08.png", "");
	VipsImage *alpha, *rgb, *zero, *black, *a, *b, *t[4];
	double diff;

	(void)state;
	assert_int_equal(in->Bands, 4);
	assert_int_equal(vips_extract_band(in, &alpha, 3, NULL), 0);
	assert_int_equal(vips_extract_band(in, &rgb, 0, "n", 3, NULL), 0);
	/* rgb where alpha > 0, else 0 */
	assert_int_equal(vips_moreeq_const1(alpha, &t[0], 1, NULL), 0);
	assert_int_equal(
	        vips_black(&zero, in->Xsize, in->Ysize, "bands", 3, NULL), 0);
	assert_int_equal(vips_ifthenelse(t[0], rgb, zero, &t[1], NULL), 0);
	assert_int_equal(vips_cast_uchar(t[1], &t[2], NULL), 0);
	assert_int_equal(vips_bandjoin2(t[2], alpha, &t[3], NULL), 0);
	assert_int_equal(vips_copy(t[3], &black, "interpretation",
	                           VIPS_INTERPRETATION_sRGB, NULL),
	                 0);
	a = step("resize", in, "width=13", "fit=fill", "height=11", END);
	b = step("resize", black, "width=13", "fit=fill", "height=11", END);
	diff = mean_diff(a, b);
	if (diff > 0.5)
		fail_msg("hidden colour leaked: mean difference %g", diff);
	g_object_unref(a);
	g_object_unref(b);
	g_object_unref(black);
	for (int i = 0; i < 4; i++)
		g_object_unref(t[i]);
	g_object_unref(zero);
	g_object_unref(rgb);
	g_object_unref(alpha);
	g_object_unref(in);
}

/* Bad arguments are refused naming the argument and what it takes. */
static void test_resize_errors(void **state)
{
	VipsImage *in = open_image("formats/tiny-alpha.png", "");
	struct imgnode_geometry g;
	char err[512];

	(void)state;
	refused("resize", in, -EINVAL,
	        "width 0.5 is not a whole number of pixels; to scale by a factor, write resize(scale=0.5)",
	        "width=0.5", END);
	refused("resize", in, -EINVAL, "missing width or height", END);
	refused("resize", in, -EINVAL, "give width and height, or scale",
	        "width=10", "scale=2", END);
	refused("resize", in, -EINVAL, "fx and fy place a focal point",
	        "width=10", "height=10", "fx=0.2", END);
	refused("resize", in, -EINVAL,
	        "gravity=attention chooses what fit=cover keeps", "width=10",
	        "height=10", "fit=contain", "gravity=attention", END);
	refused("resize", in, -EINVAL, "background \"orange\" is not a colour",
	        "width=10", "height=10", "fit=contain", "background=orange",
	        END);
	refused("resize", in, -EINVAL, "background \"#12345\" is not a colour",
	        "width=10", "background=#12345", END);
	/* predict says the same at submit, before anything is decoded */
	assert_int_equal(try_predict("resize", in, &g, err, sizeof(err),
	                             "height=7.5", END),
	                 -EINVAL);
	assert_non_null(strstr(err, "height 7.5 is not a whole number"));
	g_object_unref(in);
}

/*
 * The planner's path: resize as the first step decodes the upload itself,
 * shrinking the JPEG while decoding. Same size as a full decode and
 * resize, near-identical pixels, for every fit that shrinks, and for an
 * EXIF-turned JPEG (turned upright either way).
 */
static void test_resize_load(void **state)
{
	static const char *const files[] = {"photos/kleiber.jpg",
	                                    "formats/jpeg-exif-orient6.jpg",
	                                    "formats/webp-lossy.webp"};
	static const char *const fits[] = {"fit=cover", "fit=inside",
	                                   "fit=fill", "fit=contain"};
	struct filter *f = filter_of("resize");
	union imgnode_value v[MAX_ARGS];
	char err[512];

	(void)state;
	for (size_t i = 0; i < 3; i++) {
		size_t len;
		char *buf = read_corpus(files[i], &len);
		VipsImage *full = open_image(files[i], "");
		for (size_t k = 0; k < 4; k++) {
			VipsImage *loaded, *mem, *applied;
			double diff;
			applied = step("resize", full, "width=48", "height=36",
			               fits[k], END);
			args_of("resize", v, "width=48", "height=36", fits[k],
			        END);
			assert_int_equal(f->ops->load(f->state, buf, len,
			                              "fail_on=truncated", v,
			                              &loaded, err,
			                              sizeof(err)),
			                 0);
			mem = vips_image_copy_memory(loaded);
			g_object_unref(loaded);
			assert_non_null(mem);
			diff = mean_diff(mem, applied);
			if (diff > 2.5)
				fail_msg("%s %s: load and apply differ by %g",
				         files[i], fits[k], diff);
			g_object_unref(mem);
			g_object_unref(applied);
		}
		g_object_unref(full);
		g_free(buf);
	}
}

/* ---- extend, pad, trim, flatten */

static void test_extend(void **state)
{
	VipsImage *in = open_image("formats/jpeg-icc.jpg", "");
	VipsImage *out, *inner;

	(void)state;
	/* CSS shorthand: 10 above and below, 20 left and right */
	out = step("extend", in, "top=10", "right=20", "background=00ff00",
	           END);
	assert_int_equal(out->Xsize, in->Xsize + 40);
	assert_int_equal(out->Ysize, in->Ysize + 20);
	assert_true(pixel(out, 0, 0, 1) == 255 && pixel(out, 0, 0, 0) == 0);
	inner = region(out, 20, 10, in->Xsize, in->Ysize);
	assert_true(mean_diff(inner, in) == 0);
	g_object_unref(inner);
	g_object_unref(out);
	/* four sides, copy: the border repeats the edge pixels */
	out = step("extend", in, "top=1", "right=2", "bottom=3", "left=4",
	           "extend=copy", END);
	assert_int_equal(out->Xsize, in->Xsize + 6);
	assert_int_equal(out->Ysize, in->Ysize + 4);
	assert_true(pixel(out, 0, 1, 0) == pixel(in, 0, 0, 0));
	assert_true(pixel(out, out->Xsize - 1, out->Ysize - 1, 2) ==
	            pixel(in, in->Xsize - 1, in->Ysize - 1, 2));
	g_object_unref(out);
	/* mirror, and a transparent colour adding alpha */
	out = step("extend", in, "top=8", "extend=mirror", END);
	assert_int_equal(out->Bands, 3);
	g_object_unref(out);
	out = step("extend", in, "top=8", "background=transparent", END);
	assert_int_equal(out->Bands, 4);
	assert_true(pixel(out, 0, 0, 3) == 0);
	assert_true(pixel(out, 20, 20, 3) == 255);
	g_object_unref(out);
	g_object_unref(in);
}

static void test_pad(void **state)
{
	VipsImage *in = open_image("formats/png-rgba-3840x2160.png", "");
	VipsImage *small, *out, *inner;

	(void)state;
	small = step("resize", in, "width=96", END);
	assert_int_equal(small->Ysize, 54);
	out = step("pad", small, "width=100", "height=100", "gravity=southeast",
	           "background=ffffff", END);
	assert_int_equal(out->Xsize, 100);
	assert_int_equal(out->Ysize, 100);
	assert_int_equal(out->Bands, 4);
	assert_true(pixel(out, 0, 0, 0) == 255 && pixel(out, 0, 0, 3) == 255);
	inner = region(out, 4, 46, 96, 54);
	assert_true(mean_diff(inner, small) == 0);
	g_object_unref(inner);
	g_object_unref(out);
	/* 0: the image's own height */
	out = step("pad", small, "width=120", "height=0", END);
	assert_int_equal(out->Xsize, 120);
	assert_int_equal(out->Ysize, 54);
	g_object_unref(out);
	refused("pad", small, -EINVAL,
	        "the 96x54 image does not fit on a 50x50 canvas", "width=50",
	        "height=50", END);
	g_object_unref(small);
	g_object_unref(in);
}

/* A photo in a border of one colour comes back whole after trim. */
static void test_trim(void **state)
{
	VipsImage *in = open_image("formats/jpeg-exif-orient6.jpg", "");
	VipsImage *framed, *out, *rgba, *alpha;

	(void)state;
	framed = step("extend", in, "top=7", "right=3", "bottom=0", "left=12",
	              "background=magenta", END);
	out = step("trim", framed, END);
	assert_int_equal(out->Xsize, in->Xsize);
	assert_int_equal(out->Ysize, in->Ysize);
	assert_true(mean_diff(out, in) == 0);
	g_object_unref(out);
	/* an explicit colour that is not the border's: nothing to cut */
	out = step("trim", framed, "background=black", "threshold=1", END);
	assert_int_equal(out->Xsize, framed->Xsize);
	g_object_unref(out);
	g_object_unref(framed);
	/* transparent margins of an RGBA PNG */
	rgba = open_image("formats/pngsuite-basn6a08.png", "");
	framed = step("extend", rgba, "top=5", "background=transparent", END);
	out = step("trim", framed, "background=transparent", END);
	{
		/* the margins go, and what the PNG's own transparent
		 * columns give: as trimming the PNG alone */
		VipsImage *alone =
		        step("trim", rgba, "background=transparent", END);
		assert_int_equal(out->Xsize, alone->Xsize);
		assert_int_equal(out->Ysize, alone->Ysize);
		assert_true(out->Ysize <= 32 && out->Xsize <= 32);
		assert_true(mean_diff(out, alone) == 0);
		g_object_unref(alone);
	}
	g_object_unref(out);
	g_object_unref(framed);
	/* all one colour: left whole */
	assert_int_equal(vips_extract_band(rgba, &alpha, 3, NULL), 0);
	out = step("trim", alpha, "threshold=255", END);
	assert_int_equal(out->Xsize, 32);
	g_object_unref(out);
	g_object_unref(alpha);
	g_object_unref(rgba);
	g_object_unref(in);
}

static void test_flatten(void **state)
{
	VipsImage *in = open_image("formats/pngsuite-basn6a08.png", "");
	VipsImage *out, *grey;
	int tx = -1, ty = -1, ox = -1, oy = -1;

	(void)state;
	out = step("flatten", in, "background=ffffff", END);
	assert_int_equal(out->Bands, 3);
	/* find a transparent and an opaque pixel */
	for (int y = 0; y < in->Ysize; y++)
		for (int x = 0; x < in->Xsize; x++) {
			double a = pixel(in, x, y, 3);
			if (a == 0 && tx < 0)
				tx = x, ty = y;
			if (a == 255 && ox < 0)
				ox = x, oy = y;
		}
	assert_true(tx >= 0 && ox >= 0);
	assert_true(pixel(out, tx, ty, 0) == 255 &&
	            pixel(out, tx, ty, 1) == 255);
	for (int b = 0; b < 3; b++)
		assert_true(pixel(out, ox, oy, b) == pixel(in, ox, oy, b));
	g_object_unref(out);
	/* grey and alpha onto red: sRGB */
	grey = open_image("formats/pngsuite-basn4a08.png", "");
	out = step("flatten", grey, "background=red", END);
	assert_int_equal(out->Bands, 3);
	assert_int_equal(out->Type, VIPS_INTERPRETATION_sRGB);
	g_object_unref(out);
	/* no alpha: as it was */
	out = step("flatten", in, END);
	g_object_unref(out);
	g_object_unref(grey);
	g_object_unref(in);
}

/*
 * An animation (all frames loaded: page-height set) is resized, extended
 * and padded frame by frame; trim and attention refuse it with a reason.
 */
static void test_animation(void **state)
{
	VipsImage *in =
	        open_image("formats/gif-anim-circular-table.gif", "n=-1");
	int pages = vips_image_get_n_pages(in);
	VipsImage *out, *ext;

	(void)state;
	assert_true(pages > 1);
	out = step("resize", in, "width=40", "height=30", "fit=contain",
	           "background=transparent", END);
	assert_int_equal(out->Xsize, 40);
	assert_int_equal(vips_image_get_page_height(out), 30);
	assert_int_equal(out->Ysize, 30 * pages);
	ext = step("extend", out, "top=2", END);
	assert_int_equal(vips_image_get_page_height(ext), 34);
	assert_int_equal(ext->Ysize, 34 * pages);
	/* each frame got its own border: the top row of frame 2 */
	assert_true(pixel(ext, 20, 34, 3) == 255 || pixel(ext, 20, 34, 0) == 0);
	g_object_unref(ext);
	ext = step("pad", out, "width=50", "height=50", END);
	assert_int_equal(ext->Ysize, 50 * pages);
	g_object_unref(ext);
	g_object_unref(out);
	refused("trim", in, -ENOTSUP, "cannot work on animations", END);
	refused("resize", in, -ENOTSUP,
	        "gravity=attention cannot work on an animation", "width=10",
	        "height=10", "gravity=attention", END);
	g_object_unref(in);
}

/* Colours: every form the parser takes, read back from a pad. */
static void test_colours(void **state)
{
	static const struct {
		const char *text;
		double rgba[4];
	} cases[] = {
	        {"background=0f08", {0, 255, 0, 136}},
	        {"background=#FF800080", {255, 128, 0, 128}},
	        {"background=abc", {170, 187, 204, 255}},
	        {"background=magenta", {255, 0, 255, 255}},
	};
	VipsImage *in = open_image("formats/tiny-alpha.png", "");

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		VipsImage *out = step("pad", in, "width=40", "height=40",
		                      "gravity=northwest", cases[i].text, END);
		for (int b = 0; b < 4; b++)
			if (pixel(out, 39, 39, b) != cases[i].rgba[b])
				fail_msg("%s: band %d is %g", cases[i].text, b,
				         pixel(out, 39, 39, b));
		g_object_unref(out);
	}
	g_object_unref(in);
}

static int setup(void **state)
{
	(void)state;
	return filterkit_setup("test_filters_geometry", names,
	                       "photos/kleiber.jpg");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_resize_fits, no_leaks),
	        cmocka_unit_test_teardown(test_resize_gravity, no_leaks),
	        cmocka_unit_test_teardown(test_resize_contain, no_leaks),
	        cmocka_unit_test_teardown(test_resize_alpha, no_leaks),
	        cmocka_unit_test_teardown(test_resize_errors, no_leaks),
	        cmocka_unit_test_teardown(test_resize_load, no_leaks),
	        cmocka_unit_test_teardown(test_extend, no_leaks),
	        cmocka_unit_test_teardown(test_pad, no_leaks),
	        cmocka_unit_test_teardown(test_trim, no_leaks),
	        cmocka_unit_test_teardown(test_flatten, no_leaks),
	        cmocka_unit_test_teardown(test_animation, no_leaks),
	        cmocka_unit_test_teardown(test_colours, no_leaks),
	};

	return cmocka_run_group_tests(tests, setup, filterkit_teardown);
}
