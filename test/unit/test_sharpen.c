/*
 * Tests of the sharpen filter's conversion cache (plugins/filter/sharpen.c):
 * on real images of the corpus, its pixels are byte for byte those of a
 * plain vips_sharpen, read in strips or in tiles (rotate), with one thread
 * or several, and it reads each input pixel of an image in memory about
 * once, where a plain vips_sharpen reads it twice (it converts to LabS for
 * two readers, whose reads do not line up). The reads are counted over a
 * fixed image, not timed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vips/vips.h>

#include "filterkit.h"

static const char *const names[] = {"sharpen", NULL};

/* The sharpen filter on in, with sigma given as text (NULL: default). */
static VipsImage *filter_sharpen(VipsImage *in, const char *sigma)
{
	union imgnode_value v[MAX_ARGS];
	struct filter *f = filter_of("sharpen");
	VipsImage *out = NULL;
	char err[512] = "";

	if (sigma) {
		assert_true(parse_value(&f->ops->args[0], sigma, &v[0]));
	} else {
		assert_true(parse_value(&f->ops->args[0], f->ops->args[0].def,
		                        &v[0]));
	}
	if (f->ops->apply(f->state, in, v, &out, err, sizeof(err)))
		fail_msg("sharpen failed: %s", err);
	return out;
}

/* True if a and b, computed, have the same header and bytes. */
static bool same_pixels(VipsImage *a, VipsImage *b)
{
	size_t na, nb;
	void *pa, *pb;
	bool same;

	if (a->Xsize != b->Xsize || a->Ysize != b->Ysize ||
	    a->Bands != b->Bands || a->BandFmt != b->BandFmt ||
	    a->Type != b->Type)
		return false;
	pa = vips_image_write_to_memory(a, &na);
	pb = vips_image_write_to_memory(b, &nb);
	assert_non_null(pa);
	assert_non_null(pb);
	same = na == nb && memcmp(pa, pb, na) == 0;
	g_free(pa);
	g_free(pb);
	return same;
}

/* The filter and a plain vips_sharpen agree on in, read in strips and in
 * tiles (rotated a quarter turn). */
static void assert_as_libvips(VipsImage *in, const char *sigma)
{
	VipsImage *mine = filter_sharpen(in, sigma), *plain, *r1, *r2;
	double s = sigma ? atof(sigma) : 0.5;

	assert_int_equal(vips_sharpen(in, &plain, "sigma", s, NULL), 0);
	assert_true(same_pixels(mine, plain));
	assert_int_equal(vips_rot(mine, &r1, VIPS_ANGLE_D90, NULL), 0);
	assert_int_equal(vips_rot(plain, &r2, VIPS_ANGLE_D90, NULL), 0);
	assert_true(same_pixels(r1, r2));
	g_object_unref(r1);
	g_object_unref(r2);
	g_object_unref(mine);
	g_object_unref(plain);
}

static void test_same_pixels(void **state)
{
	static const struct {
		const char *rel, *options, *sigma;
	} cases[] = {
	        {"photos/bridge.jpg", "shrink=4", NULL}, /* 1088x612 */
	        {"photos/bridge.jpg", "shrink=8", "2"},
	        {"formats/jpeg-cmyk.jpg", NULL, NULL},
	        {"formats/jpeg-gray.jpg", NULL, NULL},
	        {"formats/pngsuite-basn6a16.png", NULL, "1"}, /* RGBA 16 */
	        {"formats/tiff-gray16.tiff", NULL, NULL},
	        {"formats/png-icc-rgba.png", NULL, NULL},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		VipsImage *in = memory_image(cases[i].rel, cases[i].options);

		assert_as_libvips(in, cases[i].sigma);
		g_object_unref(in);
	}
}

/* An animation: each frame as a plain vips_sharpen of it makes it. */
static void test_animation(void **state)
{
	VipsImage *in = memory_image("formats/gif-anim-17x17.gif", "n=-1");
	int page = vips_image_get_page_height(in), n = in->Ysize / page;
	VipsImage **frames = g_new0(VipsImage *, n), *mine, *plain;

	(void)state;
	assert_true(n > 1);
	for (int i = 0; i < n; i++) {
		VipsImage *one;

		assert_int_equal(
		        vips_crop(in, &one, 0, i * page, in->Xsize, page, NULL),
		        0);
		assert_int_equal(
		        vips_sharpen(one, &frames[i], "sigma", 0.5, NULL), 0);
		g_object_unref(one);
	}
	assert_int_equal(vips_arrayjoin(frames, &plain, n, "across", 1, NULL),
	                 0);
	mine = filter_sharpen(in, NULL);
	assert_int_equal(vips_image_get_page_height(mine), page);
	assert_true(same_pixels(mine, plain));
	for (int i = 0; i < n; i++)
		g_object_unref(frames[i]);
	g_free(frames);
	g_object_unref(plain);
	g_object_unref(mine);
	g_object_unref(in);
}

/* Several threads share the cache: still the same pixels. */
static void test_threads(void **state)
{
	VipsImage *in = memory_image("photos/bridge.jpg", "shrink=2");

	(void)state;
	vips_concurrency_set(4);
	assert_as_libvips(in, NULL);
	vips_concurrency_set(1);
	g_object_unref(in);
}

/* ---- counting the input's pixels a sharpen reads */

struct counter {
	GMutex lock;
	int64_t pixels;
};

static int count_gen(VipsRegion *out, void *seq, void *a, void *b,
                     gboolean *stop)
{
	VipsRegion *ir = seq;
	struct counter *c = b;

	(void)a;
	(void)stop;
	if (vips_region_prepare(ir, &out->valid) ||
	    vips_region_region(out, ir, &out->valid, out->valid.left,
	                       out->valid.top))
		return -1;
	g_mutex_lock(&c->lock);
	c->pixels += (int64_t)out->valid.width * out->valid.height;
	g_mutex_unlock(&c->lock);
	return 0;
}

/* in as a lazy image that adds the pixels read from it to c. */
static VipsImage *counted(VipsImage *in, struct counter *c)
{
	VipsImage *out = vips_image_new();

	assert_int_equal(vips_image_pipelinev(out, VIPS_DEMAND_STYLE_THINSTRIP,
	                                      in, NULL),
	                 0);
	assert_int_equal(vips_image_generate(out, vips_start_one, count_gen,
	                                     vips_stop_one, in, c),
	                 0);
	return out;
}

/* How many times over sharpen (the filter, or a plain vips_sharpen) reads
 * the pixels of in, computing the whole result in strips. */
static double reads(VipsImage *in, bool filter)
{
	struct counter c = {.pixels = 0};
	VipsImage *src, *out, *mem;

	g_mutex_init(&c.lock);
	src = counted(in, &c);
	if (filter)
		out = filter_sharpen(src, NULL);
	else
		assert_int_equal(vips_sharpen(src, &out, "sigma", 0.5, NULL),
		                 0);
	mem = vips_image_copy_memory(out);
	assert_non_null(mem);
	g_object_unref(mem);
	g_object_unref(out);
	g_object_unref(src);
	g_mutex_clear(&c.lock);
	return (double)c.pixels / ((double)in->Xsize * in->Ysize);
}

static void test_reads_once(void **state)
{
	VipsImage *in = memory_image("photos/bridge.jpg", "shrink=4");
	double mine = reads(in, true), plain = reads(in, false);

	(void)state;
	print_message("input pixels read: %.2f times (vips_sharpen: %.2f)\n",
	              mine, plain);
	assert_true(mine < 1.25);
	assert_true(mine < plain);
	vips_concurrency_set(4);
	mine = reads(in, true);
	vips_concurrency_set(1);
	assert_true(mine < 1.25);
	g_object_unref(in);
}

static int setup(void **state)
{
	(void)state;
	return filterkit_setup("test_sharpen", names, "photos/bridge.jpg");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_same_pixels, no_leaks),
	        cmocka_unit_test_teardown(test_animation, no_leaks),
	        cmocka_unit_test_teardown(test_threads, no_leaks),
	        cmocka_unit_test_teardown(test_reads_once, no_leaks),
	};
	return cmocka_run_group_tests(tests, setup, filterkit_teardown);
}
