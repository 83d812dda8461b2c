/*
 * Tests of the colour and tone filters (modulate, gamma, normalise, tint,
 * median, threshold, negate, icc), the encoders' controls (jpeg subsample,
 * optimize_coding; webp effort, near_lossless, smart_subsample; avif
 * bitdepth; png palette, colours; max_bytes; jxl) on real images of the
 * corpus (IMGNODE_CORPUS, else build/corpus). Steps are written as
 * pipeline text and parsed against the real plugins ($BUILD/plugins) by
 * the host's parser, then run through their ops as a worker runs them;
 * each step's predict is checked against what libvips built. Every result
 * that matters is computed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "filterkit.h"
#include "host.h"
#include "node/pipeline.h"
#include "plugin.h"

static struct plugin_set set;

/* A photo, 1/8 of its size: 544x306. */
static VipsImage *photo(void)
{
	return memory_image("photos/bridge.jpg", "shrink=8");
}

/*
 * Runs the one filter step of text on in: predict, apply, compute. Returns
 * 0 and the image in *out, or the step's -errno with its reason in err
 * (from predict or apply).
 */
static int try_step(const char *text, VipsImage *in, VipsImage **out, char *err,
                    size_t errlen)
{
	struct pipeline *pl = parse_in(&set, text);
	const struct pipeline_step *st = &pl->steps[0];
	struct imgnode_geometry g = geometry_of(in), p = g;
	VipsImage *lazy = NULL;
	int r = 0;

	err[0] = '\0';
	if (st->predict)
		r = st->predict(st->state, &g, st->args, &p, err, errlen);
	if (!r)
		r = st->ops->apply(st->state, in, st->args, &lazy, err, errlen);
	if (!r) {
		if (p.width != lazy->Xsize || p.height != lazy->Ysize ||
		    p.bands != lazy->Bands ||
		    p.band_bytes != (int)vips_format_sizeof(lazy->BandFmt))
			fail_msg(
			        "%s: predicted %lldx%lld, %d bands of %d bytes; built %dx%d, %d bands of %zu",
			        text, (long long)p.width, (long long)p.height,
			        p.bands, p.band_bytes, lazy->Xsize, lazy->Ysize,
			        lazy->Bands, vips_format_sizeof(lazy->BandFmt));
		*out = vips_image_copy_memory(lazy);
		g_object_unref(lazy);
		if (!*out)
			fail_msg("%s: %s", text, vips_error_buffer());
	}
	pipeline_free(pl);
	return r;
}

static VipsImage *step(const char *text, VipsImage *in)
{
	char err[512];
	VipsImage *out = NULL;

	if (try_step(text, in, &out, err, sizeof(err)))
		fail_msg("%s: %s", text, err);
	return out;
}

/* Encodes in with the encoder step text; 0 or -errno with err. */
static int try_encode(const char *text, VipsImage *in, void **buf, size_t *len,
                      char *err, size_t errlen)
{
	struct pipeline *pl = parse_in(&set, text);
	const struct pipeline_step *st = &pl->steps[0];
	struct imgnode_geometry g = geometry_of(in), p = g;
	int r = 0;

	err[0] = '\0';
	if (st->predict)
		r = st->predict(st->state, &g, st->args, &p, err, errlen);
	if (!r)
		r = st->ops->encode(st->state, in, st->args, buf, len, err,
		                    errlen);
	pipeline_free(pl);
	return r;
}

/* Encodes and decodes again (into memory); *len gets the encoded size. */
static VipsImage *roundtrip(const char *text, VipsImage *in, size_t *len)
{
	char err[512];
	VipsImage *lazy, *back;
	void *buf;
	size_t n;

	if (try_encode(text, in, &buf, &n, err, sizeof(err)))
		fail_msg("%s: %s", text, err);
	lazy = vips_image_new_from_buffer(buf, n, "", NULL);
	if (!lazy)
		fail_msg("%s: output does not decode: %s", text,
		         vips_error_buffer());
	back = vips_image_copy_memory(lazy);
	g_object_unref(lazy);
	g_free(buf);
	if (len)
		*len = n;
	return back;
}

static double avg(VipsImage *img)
{
	double a;

	assert_int_equal(vips_avg(img, &a, NULL), 0);
	return a;
}

/* Mean of band b. */
static double band_avg(VipsImage *img, int b)
{
	VipsImage *t;
	double a;

	assert_int_equal(vips_extract_band(img, &t, b, NULL), 0);
	a = avg(t);
	g_object_unref(t);
	return a;
}

/* Mean of |band i - band j|: 0 for a grey image. */
static double chroma(VipsImage *img)
{
	VipsImage *r, *g;
	double d;

	assert_int_equal(vips_extract_band(img, &r, 0, NULL), 0);
	assert_int_equal(vips_extract_band(img, &g, 1, NULL), 0);
	d = mean_diff(r, g);
	g_object_unref(r);
	g_object_unref(g);
	return d;
}

static double lightness(VipsImage *img)
{
	VipsImage *lab;
	double l;

	assert_int_equal(
	        vips_colourspace(img, &lab, VIPS_INTERPRETATION_LAB, NULL), 0);
	l = band_avg(lab, 0);
	g_object_unref(lab);
	return l;
}

static const char *string_of(VipsImage *img, const char *field)
{
	const char *s = "";

	if (vips_image_get_typeof(img, field))
		vips_image_get_string(img, field, &s);
	return s;
}

static int int_of(VipsImage *img, const char *field)
{
	int v = -1;

	if (vips_image_get_typeof(img, field))
		vips_image_get_int(img, field, &v);
	return v;
}

/* ---- setup */

static int setup(void **state)
{
	const char *build = getenv("BUILD");
	char path[1200], err[512];

	(void)state;
	setenv("VIPS_WARNING", "0", 0);
	if (VIPS_INIT("test_filters_tone"))
		return -1;
	vips_cache_set_max(0);
	vips_concurrency_set(1);
	if (filterkit_corpus("formats/jpeg-cmyk.jpg"))
		return -1;
	snprintf(path, sizeof(path), "%s/plugins",
	         build && *build ? build : "build");
	if (plugin_set_load(&set, path, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	/* the encoders with an init and no config (avif, jxl) check
	 * libvips there */
	for (struct plugin *p = set.head; p; p = p->next) {
		if (p->desc->kind != IMGNODE_KIND_FILTER || !p->desc->init ||
		    p->desc->conf_size)
			continue;
		p->running = !p->desc->init(host_table(), NULL, &p->state);
		if (!p->running)
			fprintf(stderr, "%s: init refused\n", p->desc->name);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (struct plugin *p = set.head; p; p = p->next)
		if (p->running && p->desc->fini)
			p->desc->fini(p->state);
	plugin_set_free(&set);
	vips_shutdown();
	return 0;
}

/* ---- filters */

static void test_selftests(void **state)
{
	static const char *const names[] = {
	        "modulate",  "gamma",  "normalise", "tint", "median",
	        "threshold", "negate", "icc",       "jpeg", "webp",
	        "avif",      "png",    "jxl",       NULL};
	char err[512];

	(void)state;
	for (int i = 0; names[i]; i++) {
		const struct plugin *p = set.head;
		while (p && strcmp(p->desc->name, names[i]))
			p = p->next;
		assert_non_null(p);
		const struct imgnode_filter_ops *ops = p->desc->ops;
		assert_non_null(ops->selftest);
		if (ops->selftest(p->state, err, sizeof(err)))
			fail_msg("%s: self-test: %s", names[i], err);
	}
}

static void test_modulate(void **state)
{
	VipsImage *in = photo(), *same, *grey, *dark, *turned;

	(void)state;
	same = step("modulate", in);
	assert_true(mean_diff(in, same) < 1.5);
	grey = step("modulate(saturation=0)", in);
	assert_true(chroma(in) > 5);
	assert_true(chroma(grey) < 1.0);
	dark = step("modulate(0.5)", in);
	assert_true(lightness(dark) < 0.6 * lightness(in));
	/* half a turn of hue: the photo's warm and cold swap sides */
	turned = step("modulate(hue=180)", in);
	assert_true((band_avg(in, 0) - band_avg(in, 2)) *
	                    (band_avg(turned, 0) - band_avg(turned, 2)) <
	            0);
	assert_true(fabs(lightness(turned) - lightness(in)) < 3);
	g_object_unref(turned);
	g_object_unref(dark);
	g_object_unref(grey);
	g_object_unref(same);
	g_object_unref(in);
}

/* Alpha passes untouched (at 8 bits if the step made 8 from 16). */
static void check_alpha_kept(const char *text, VipsImage *rgba)
{
	VipsImage *out = step(text, rgba), *a, *b, *a8;

	assert_int_equal(vips_extract_band(rgba, &a, rgba->Bands - 1, NULL), 0);
	assert_int_equal(vips_extract_band(out, &b, out->Bands - 1, NULL), 0);
	if (a->BandFmt != b->BandFmt) {
		assert_int_equal(vips_linear1(a, &a8, 1 / 257.0, 0, NULL), 0);
		g_object_unref(a);
		a = a8;
	}
	if (mean_diff(a, b) >= 0.5)
		fail_msg("%s changed the alpha band", text);
	g_object_unref(a);
	g_object_unref(b);
	g_object_unref(out);
}

static void test_gamma_negate_alpha_and_depth(void **state)
{
	VipsImage *in = photo(), *light, *dark, *neg, *back, *wide, *wneg;
	VipsImage *rgba = memory_image("formats/pngsuite-basn6a08.png", NULL);
	VipsImage *rgba16 = memory_image("formats/pngsuite-basn6a16.png", NULL);

	(void)state;
	light = step("gamma", in);
	dark = step("gamma(0.5)", in);
	assert_true(avg(light) > avg(in) + 10);
	assert_true(avg(dark) < avg(in) - 10);
	neg = step("negate", in);
	assert_true(fabs(avg(neg) - (255 - avg(in))) < 0.01);
	back = step("negate", neg);
	assert_true(mean_diff(back, in) == 0);
	for (int i = 0; i < 2; i++) {
		VipsImage *img = i ? rgba16 : rgba;
		check_alpha_kept("gamma", img);
		check_alpha_kept("negate", img);
		check_alpha_kept("modulate(1.1,1.5,30)", img);
		check_alpha_kept("normalise", img);
		check_alpha_kept("tint(red)", img);
		check_alpha_kept("threshold", img);
	}
	/* negate(alpha=true) inverts it too; 16 bits stay 16 bits */
	wide = step("negate(alpha=true)", rgba16);
	assert_int_equal(wide->BandFmt, VIPS_FORMAT_USHORT);
	wneg = step("negate", wide);
	assert_true(fabs(band_avg(wneg, 3) + band_avg(rgba16, 3) - 65535) <
	            0.01);
	g_object_unref(wneg);
	g_object_unref(wide);
	g_object_unref(rgba16);
	g_object_unref(rgba);
	g_object_unref(back);
	g_object_unref(neg);
	g_object_unref(dark);
	g_object_unref(light);
	g_object_unref(in);
}

static void test_normalise(void **state)
{
	VipsImage *in = photo(), *flat, *out, *grey;
	int lo, hi;

	(void)state;
	/* the photo squeezed into 96..159, then stretched back */
	assert_int_equal(vips_linear1(in, &grey, 0.25, 96, "uchar", TRUE, NULL),
	                 0);
	flat = vips_image_copy_memory(grey);
	g_object_unref(grey);
	out = step("normalise", flat);
	assert_int_equal(
	        vips_colourspace(out, &grey, VIPS_INTERPRETATION_B_W, NULL), 0);
	assert_int_equal(vips_percent(grey, 1, &lo, NULL), 0);
	assert_int_equal(vips_percent(grey, 99, &hi, NULL), 0);
	if (lo > 24 || hi < 235)
		fail_msg("normalise: 1%% and 99%% at %d and %d", lo, hi);
	assert_true(hi - lo > 200);
	g_object_unref(grey);
	g_object_unref(out);
	g_object_unref(flat);
	g_object_unref(in);
}

static void test_normalise_bad_range(void **state)
{
	VipsImage *in = photo(), *out = NULL;
	char err[512];

	(void)state;
	assert_int_equal(
	        try_step("normalise(60,40)", in, &out, err, sizeof(err)),
	        -EINVAL);
	assert_non_null(strstr(err, "lower (60) must be below upper (40)"));
	g_object_unref(in);
}

static void test_tint(void **state)
{
	VipsImage *in = memory_image("formats/jpeg-gray.jpg", NULL), *red,
	          *blue;
	VipsImage *out = NULL;
	static const char *const good[] = {"#ff8800", "FF8800", "#ff880080",
	                                   "#ABCDEF", "white",  "transparent",
	                                   "grey",    "f80",    NULL};
	static const char *const bad[] = {"#12345",  "#gg0000", "#ff88001",
	                                  "reddish", "",        NULL};
	char text[128], err[512];

	(void)state;
	red = step("tint(\"#ff0000\")", in);
	blue = step("tint(0000ff)", in);
	assert_int_equal(red->Bands, 3);
	assert_true(band_avg(red, 0) > band_avg(red, 2) + 20);
	assert_true(band_avg(blue, 2) > band_avg(blue, 0) + 20);
	/* lightness kept */
	assert_true(fabs(lightness(red) - lightness(in)) < 2);
	for (int i = 0; good[i]; i++) {
		snprintf(text, sizeof(text), "tint(\"%s\")", good[i]);
		assert_int_equal(try_step(text, in, &out, err, sizeof(err)), 0);
		g_object_unref(out);
	}
	for (int i = 0; bad[i]; i++) {
		snprintf(text, sizeof(text), "tint(\"%s\")", bad[i]);
		assert_int_equal(try_step(text, in, &out, err, sizeof(err)),
		                 -EINVAL);
		assert_non_null(strstr(err, "is not a colour: rrggbb"));
	}
	g_object_unref(blue);
	g_object_unref(red);
	g_object_unref(in);
}

/* The share of pixels of img more than 100 off in's in some band. */
static double speckled(VipsImage *img, VipsImage *in)
{
	VipsImage *d, *abs, *far, *any;
	double m;

	assert_int_equal(vips_subtract(img, in, &d, NULL), 0);
	assert_int_equal(vips_abs(d, &abs, NULL), 0);
	assert_int_equal(vips_more_const1(abs, &far, 100, NULL), 0);
	assert_int_equal(vips_bandor(far, &any, NULL), 0);
	m = avg(any) / 255;
	g_object_unref(any);
	g_object_unref(far);
	g_object_unref(abs);
	g_object_unref(d);
	return m;
}

static void test_median(void **state)
{
	VipsImage *in = photo(), *noisy, *noise, *clean, *anim, *out = NULL;
	char err[512];

	(void)state;
	/* speckle: a tenth of the pixels black or white */
	assert_int_equal(vips_gaussnoise(&noise, in->Xsize, in->Ysize, "sigma",
	                                 100.0, "mean", 0.0, NULL),
	                 0);
	{
		VipsImage *hi, *lo, *nlo, *w, *t;
		assert_int_equal(vips_moreeq_const1(noise, &hi, 165, NULL), 0);
		assert_int_equal(vips_lesseq_const1(noise, &lo, -165, NULL), 0);
		assert_int_equal(vips_eorimage_const1(lo, &nlo, 255, NULL), 0);
		assert_int_equal(vips_orimage(in, hi, &w, NULL), 0);
		assert_int_equal(vips_andimage(w, nlo, &t, NULL), 0);
		noisy = vips_image_copy_memory(t);
		g_object_unref(t);
		g_object_unref(w);
		g_object_unref(nlo);
		g_object_unref(lo);
		g_object_unref(hi);
	}
	g_object_unref(noise);
	clean = step("median(3)", noisy);
	if (!(speckled(noisy, in) > 0.05 && speckled(clean, in) < 0.01))
		fail_msg("median(3): %.3f of the pixels speckled, %.3f after",
		         speckled(noisy, in), speckled(clean, in));
	assert_int_equal(try_step("median(4)", in, &out, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "size=4: must be odd"));
	anim = memory_image("formats/gif-anim-17x17.gif", "n=-1");
	assert_int_equal(try_step("median", anim, &out, err, sizeof(err)),
	                 -ENOTSUP);
	assert_non_null(strstr(err, "cannot work on animations"));
	g_object_unref(anim);
	g_object_unref(clean);
	g_object_unref(noisy);
	g_object_unref(in);
}

/* Every value of img is 0 or 255. */
static void check_binary(VipsImage *img)
{
	VipsImage *zero, *full, *either;
	double m;

	assert_int_equal(vips_equal_const1(img, &zero, 0, NULL), 0);
	assert_int_equal(vips_equal_const1(img, &full, 255, NULL), 0);
	assert_int_equal(vips_orimage(zero, full, &either, NULL), 0);
	assert_int_equal(vips_min(either, &m, NULL), 0);
	assert_true(m == 255);
	g_object_unref(either);
	g_object_unref(full);
	g_object_unref(zero);
}

static void test_threshold(void **state)
{
	VipsImage *in = photo(), *bw, *colour, *wide, *dark, *rgb16;

	(void)state;
	bw = step("threshold", in);
	assert_int_equal(bw->Bands, 1);
	check_binary(bw);
	/* about the share of the photo's grey at or above 128 */
	{
		/* white where the photo's grey is at least 128 */
		VipsImage *grey, *want;
		assert_int_equal(vips_colourspace(in, &grey,
		                                  VIPS_INTERPRETATION_B_W,
		                                  NULL),
		                 0);
		assert_int_equal(vips_moreeq_const1(grey, &want, 128, NULL), 0);
		assert_true(mean_diff(want, bw) < 0.5);
		g_object_unref(want);
		g_object_unref(grey);
	}
	colour = step("threshold(100, grayscale=false)", in);
	assert_int_equal(colour->Bands, 3);
	check_binary(colour);
	dark = step("threshold(255)", in);
	assert_true(avg(dark) < avg(bw));
	/* 16-bit in, compared at its scale; 8-bit 0/255 out */
	rgb16 = memory_image("formats/tiff-rgb16.tiff", NULL);
	wide = step("threshold", rgb16);
	assert_int_equal(wide->BandFmt, VIPS_FORMAT_UCHAR);
	check_binary(wide);
	g_object_unref(wide);
	g_object_unref(rgb16);
	g_object_unref(dark);
	g_object_unref(colour);
	g_object_unref(bw);
	g_object_unref(in);
}

static void test_icc_mark(void **state)
{
	VipsImage *in = photo(), *out;

	(void)state;
	out = step("icc(keep)", in);
	assert_string_equal(string_of(out, IMGNODE_META_ICC_MODE), "keep");
	g_object_unref(out);
	out = step("icc", in);
	assert_string_equal(string_of(out, IMGNODE_META_ICC_MODE), "srgb");
	g_object_unref(out);
	g_object_unref(in);
}

/* ---- encoders */

static void test_jpeg_controls(void **state)
{
	VipsImage *in = photo(), *back;
	size_t plain, optimized;

	(void)state;
	back = roundtrip("jpeg(subsample=off, progressive=true)", in, NULL);
	assert_string_equal(string_of(back, "jpeg-chroma-subsample"), "4:4:4");
	assert_int_equal(int_of(back, "interlaced"), 1);
	g_object_unref(back);
	back = roundtrip("jpeg(q=95, subsample=on)", in, &plain);
	assert_string_equal(string_of(back, "jpeg-chroma-subsample"), "4:2:0");
	g_object_unref(back);
	back = roundtrip("jpeg(q=95)", in, NULL); /* auto: none at q >= 90 */
	assert_string_equal(string_of(back, "jpeg-chroma-subsample"), "4:4:4");
	g_object_unref(back);
	back = roundtrip("jpeg(q=95, subsample=on, optimize_coding=true)", in,
	                 &optimized);
	assert_true(optimized < plain);
	g_object_unref(back);
	g_object_unref(in);
}

static void test_webp_avif_png_controls(void **state)
{
	VipsImage *in = photo(), *back;
	size_t fast, small, plain, pal, pal16;

	(void)state;
	back = roundtrip("webp(effort=0)", in, &fast);
	g_object_unref(back);
	back = roundtrip("webp(effort=6, smart_subsample=true)", in, &small);
	assert_true(small < fast);
	assert_true(mean_diff(back, in) < 6);
	g_object_unref(back);
	back = roundtrip("webp(near_lossless=true, q=60)", in, NULL);
	assert_true(mean_diff(back, in) < 4);
	g_object_unref(back);
	back = roundtrip("avif(bitdepth=12, effort=2)", in, NULL);
	assert_int_equal(int_of(back, "heif-bitdepth"), 12);
	g_object_unref(back);
	back = roundtrip("avif(effort=2)", in, NULL);
	assert_int_equal(int_of(back, "heif-bitdepth"), 8);
	g_object_unref(back);
	back = roundtrip("png", in, &plain);
	g_object_unref(back);
	back = roundtrip("png(palette=true)", in, &pal);
	assert_int_equal(int_of(back, "palette-bit-depth"), 8);
	assert_true(pal < plain / 2);
	assert_true(mean_diff(back, in) < 8);
	g_object_unref(back);
	back = roundtrip("png(palette=true, colours=16)", in, &pal16);
	assert_int_equal(int_of(back, "palette-bit-depth"), 4);
	assert_true(pal16 < pal);
	g_object_unref(back);
	g_object_unref(in);
}

static void test_max_bytes(void **state)
{
	static const char *const encoders[] = {"jpeg", "webp", "avif"};
	VipsImage *in = photo(), *back;
	char text[128], err[512];
	void *buf;
	size_t len, full;
	int tries;

	(void)state;
	for (int i = 0; i < 3; i++) {
		snprintf(text, sizeof(text), "%s(q=90)", encoders[i]);
		back = roundtrip(text, in, &full);
		g_object_unref(back);
		/* a third of what q=90 makes: fits, at a lower quality */
		snprintf(text, sizeof(text), "%s(q=90, max_bytes=%zu)",
		         encoders[i], full / 3);
		back = roundtrip(text, in, &len);
		if (len > full / 3 || len < full / 12)
			fail_msg("%s: %zu bytes (q=90: %zu)", text, len, full);
		g_object_unref(back);
		/* what q=90 makes already fits: q=90 itself */
		snprintf(text, sizeof(text), "%s(q=90, max_bytes=%zu)",
		         encoders[i], full);
		back = roundtrip(text, in, &len);
		assert_int_equal(len, full);
		g_object_unref(back);
		/* nothing fits 100 bytes: refused, naming the sizes */
		snprintf(text, sizeof(text), "%s(max_bytes=100)", encoders[i]);
		assert_int_equal(
		        try_encode(text, in, &buf, &len, err, sizeof(err)),
		        -EFBIG);
		assert_non_null(strstr(err, "max_bytes=100: even the lowest "
		                            "quality is too big"));
		assert_non_null(strstr(err, "q=1 "));
		assert_non_null(strstr(err, " encodes)"));
		tries = (int)strtol(strrchr(err, ';') + 1, NULL, 10);
		assert_true(tries >= 2 && tries <= 6);
	}
	/* lossless has no quality to search: refused at submission */
	assert_int_equal(try_encode("webp(lossless=true, max_bytes=5000)", in,
	                            &buf, &len, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "max_bytes works on lossy WebP only"));
	g_object_unref(in);
}

static void test_jxl(void **state)
{
	VipsImage *in = photo();
	char err[512];
	void *buf;
	size_t len, lossless;

	(void)state;
	/* a libvips built without libjxl (make VIPS=bundled: sharp's) has no
	 * jxlsave: the job fails saying so, and nothing is written */
	if (!vips_type_find("VipsOperation", "jxlsave_buffer")) {
		assert_int_equal(try_encode("jxl(q=60, effort=3)", in, &buf,
		                            &len, err, sizeof(err)),
		                 -EOPNOTSUPP);
		assert_non_null(strstr(err, "cannot save JPEG XL"));
		assert_non_null(strstr(err, vips_version_string()));
		g_object_unref(in);
		return;
	}
	assert_int_equal(try_encode("jxl(q=60, effort=3)", in, &buf, &len, err,
	                            sizeof(err)),
	                 0);
	/* a bare codestream */
	assert_true(len > 100 && ((unsigned char *)buf)[0] == 0xff &&
	            ((unsigned char *)buf)[1] == 0x0a);
	g_free(buf);
	assert_int_equal(try_encode("jxl(lossless=true, effort=3)", in, &buf,
	                            &lossless, err, sizeof(err)),
	                 0);
	assert_true(lossless > len);
	g_free(buf);
	g_object_unref(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_selftests),
	        cmocka_unit_test(test_modulate),
	        cmocka_unit_test(test_gamma_negate_alpha_and_depth),
	        cmocka_unit_test(test_normalise),
	        cmocka_unit_test(test_normalise_bad_range),
	        cmocka_unit_test(test_tint),
	        cmocka_unit_test(test_median),
	        cmocka_unit_test(test_threshold),
	        cmocka_unit_test(test_icc_mark),
	        cmocka_unit_test(test_jpeg_controls),
	        cmocka_unit_test(test_webp_avif_png_controls),
	        cmocka_unit_test(test_max_bytes),
	        cmocka_unit_test(test_jxl),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
