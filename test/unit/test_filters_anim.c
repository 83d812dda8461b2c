/*
 * Animations and overlays through the host's image path (image_run: the
 * cost check, the loader told n=-1, the steps, the encoder), with the real
 * filter plugins (dlopen of $BUILD/plugins/NAME.so) on a real animated GIF
 * of the corpus: each frame of a step's output is compared with the same
 * libvips operation on that frame of the input, through lossless WebP. And
 * the worker's overlay cache (overlays.c) on a real fs store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <imgnode/plugin.h>
#include <vips/vips.h>

#include "filterkit.h"
#include "harness.h"
#include "host.h"
#include "node/cost.h"
#include "node/image.h"
#include "node/node_conf.h"
#include "node/overlays.h"
#include "node/pipeline.h"
#include "plugin.h"

/* 640x360, 9 frames of 50 ms, looping for ever */
#define GIF "formats/gif-anim-circular-table.gif"
#define FRAMES 9

static const char *const names[] = {"thumbnail", "crop",      "rotate",  "flip",
                                    "frame",     "smartcrop", "overlay", "gif",
                                    "webp",      "png",       NULL};
#define NPLUGINS (sizeof(names) / sizeof(names[0]) - 1)

static struct plugin plugins[NPLUGINS];
static struct plugin_set set;
static struct limits_conf lim;
static char *gif;
static size_t gif_len;
static VipsImage *input; /* every frame of the GIF, decoded */

/* ---- running pipelines as a worker does */

/* Runs text on buf; 0 or image_run's -errno with err. */
static int run(const char *text, const void *buf, size_t len,
               struct image_out *out, char *err, size_t errlen)
{
	struct image_info info;
	struct pipeline *pl = pipeline_parse(text, &set, err, errlen);
	int ret;

	if (!pl)
		fail_msg("%s: %s", text, err);
	ret = image_probe(buf, len, &lim, &info, err, errlen);
	if (!ret)
		ret = image_run(pl, &set, buf, len, &info, &lim, out, err,
		                errlen);
	pipeline_free(pl);
	return ret;
}

/* Runs text on the GIF, which must work; the result decoded whole. */
static VipsImage *run_ok(const char *text)
{
	struct image_out out;
	char err[1024];
	VipsImage *lazy, *img;

	if (run(text, gif, gif_len, &out, err, sizeof(err)))
		fail_msg("%s: %s", text, err);
	lazy = vips_image_new_from_buffer(
	        out.buf, out.len, strcmp(out.format, "png") ? "n=-1" : "",
	        NULL);
	assert_non_null(lazy);
	img = vips_image_copy_memory(lazy);
	g_object_unref(lazy);
	image_out_free(&out);
	assert_non_null(img);
	return img;
}

static int pages(VipsImage *im)
{
	return im->Ysize / vips_image_get_page_height(im);
}

/* Frame i of im, as a new image. */
static VipsImage *frame(VipsImage *im, int i)
{
	int page = vips_image_get_page_height(im);
	VipsImage *f;

	assert_int_equal(vips_crop(im, &f, 0, i * page, im->Xsize, page, NULL),
	                 0);
	return f;
}

/* The largest difference between two images of one size in any colour
 * band (an opaque image may come back without its alpha). */
static double max_diff(VipsImage *a, VipsImage *b)
{
	VipsImage *ca, *cb, *d, *abs;
	double m;

	assert_int_equal(a->Xsize, b->Xsize);
	assert_int_equal(a->Ysize, b->Ysize);
	assert_int_equal(vips_extract_band(a, &ca, 0, "n", 3, NULL), 0);
	assert_int_equal(vips_extract_band(b, &cb, 0, "n", 3, NULL), 0);
	assert_int_equal(vips_subtract(ca, cb, &d, NULL), 0);
	assert_int_equal(vips_abs(d, &abs, NULL), 0);
	assert_int_equal(vips_max(abs, &m, NULL), 0);
	g_object_unref(abs);
	g_object_unref(d);
	g_object_unref(cb);
	g_object_unref(ca);
	return m;
}

/* An operation applied to one frame, as the test expects a step to. */
typedef int (*frame_op_fn)(VipsImage *in, VipsImage **out);

static int crop_op(VipsImage *in, VipsImage **out)
{
	return vips_crop(in, out, 10, 20, 100, 50, NULL);
}

static int rot90_op(VipsImage *in, VipsImage **out)
{
	return vips_rot(in, out, VIPS_ANGLE_D90, NULL);
}

static int flip_op(VipsImage *in, VipsImage **out)
{
	return vips_flip(in, out, VIPS_DIRECTION_VERTICAL, NULL);
}

/* text made every frame as op makes it from the input's frame. */
static void assert_per_frame(const char *text, frame_op_fn op)
{
	VipsImage *out = run_ok(text);
	int *delay, n, loop = -1;

	assert_int_equal(pages(out), FRAMES);
	assert_int_equal(vips_image_get_array_int(out, "delay", &delay, &n), 0);
	assert_int_equal(n, FRAMES);
	for (int i = 0; i < FRAMES; i++)
		assert_int_equal(delay[i], 50);
	assert_int_equal(vips_image_get_int(out, "loop", &loop), 0);
	assert_int_equal(loop, 0);
	for (int i = 0; i < FRAMES; i++) {
		VipsImage *in_f = frame(input, i), *want, *got = frame(out, i);
		assert_int_equal(op(in_f, &want), 0);
		if (max_diff(got, want) != 0)
			fail_msg("%s: frame %d differs", text, i);
		g_object_unref(want);
		g_object_unref(got);
		g_object_unref(in_f);
	}
	g_object_unref(out);
}

/* ---- tests */

/* crop, rotate and flip work frame by frame; the timing is kept. */
static void test_steps_per_frame(void **state)
{
	(void)state;
	assert_per_frame("crop(10,20,100,50)|webp(lossless=true)", crop_op);
	assert_per_frame("rotate(90)|webp(lossless=true)", rot90_op);
	assert_per_frame("flip(vertical)|webp(lossless=true)", flip_op);
}

/* thumbnail keeps every frame, to GIF too. */
static void test_thumbnail_gif(void **state)
{
	VipsImage *out = run_ok("thumbnail(64)|gif");

	(void)state;
	assert_int_equal(pages(out), FRAMES);
	assert_int_equal(out->Xsize, 64);
	assert_int_equal(vips_image_get_page_height(out), 36);
	g_object_unref(out);
}

/* frame(N) is frame N; an encoder without animations gets frame 0. */
static void test_frame(void **state)
{
	VipsImage *out, *want;

	(void)state;
	out = run_ok("frame(4)|png");
	assert_int_equal(pages(out), 1);
	want = frame(input, 4);
	assert_true(max_diff(out, want) == 0);
	g_object_unref(want);
	g_object_unref(out);
	out = run_ok("png");
	want = frame(input, 0);
	assert_true(max_diff(out, want) == 0);
	g_object_unref(want);
	g_object_unref(out);
}

/* What cannot work on frames, or does not fit, is refused before
 * decoding, naming the step and the limit. */
static void test_refusals(void **state)
{
	struct image_out out;
	char err[1024];

	(void)state;
	assert_int_equal(run("smartcrop(50,50)|gif", gif, gif_len, &out, err,
	                     sizeof(err)),
	                 -ENOTSUP);
	assert_string_equal(
	        err,
	        "step 1 smartcrop(height=50,interesting=attention,width=50): cannot work on animations (9 frames); use frame(N) first");
	assert_int_equal(
	        run("frame(9)|png", gif, gif_len, &out, err, sizeof(err)),
	        -EINVAL);
	assert_string_equal(
	        err,
	        "step 1 frame(index=9): no frame 9: the image has 9 (0 to 8)");
	/* max_pixels counts every frame: 9 x 640x360 is 2.07 Mpx */
	lim.max_pixels = 2000000;
	assert_int_equal(
	        run("thumbnail(640)|gif", gif, gif_len, &out, err, sizeof(err)),
	        -E2BIG);
	assert_non_null(
	        strstr(err, "640x360 x frames (2 Mpx), limit is 2 Mpx"));
	lim.max_pixels = 3000000;
	assert_int_equal(run("thumbnail(800,size=up)|gif", gif, gif_len, &out,
	                     err, sizeof(err)),
	                 -E2BIG);
	assert_string_equal(
	        err,
	        "step 1 thumbnail(crop=none,height=0,size=up,width=800): output 800x450 x 9 frames (3.24 Mpx) is over max_pixels (3 Mpx)");
	lim.max_pixels = 100000000;
	lim.max_frames = 8;
	assert_int_equal(run("gif", gif, gif_len, &out, err, sizeof(err)),
	                 -E2BIG);
	assert_string_equal(err,
	                    "image has 9 frames, over [limits] max_frames (8)");
	lim.max_frames = 100;
}

/* A fetch of stored images for image_run: one red 20x10 square, "a" x 32;
 * other ids are not stored. */
static int fake_fetch(void *arg, const char *id, VipsImage **out, char *err,
                      size_t errlen)
{
	VipsImage *black, *red;

	(void)arg;
	if (strcmp(id, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")) {
		snprintf(err, errlen, "no image %s", id);
		return -ENOENT;
	}
	assert_int_equal(vips_black(&black, 20, 10, "bands", 3, NULL), 0);
	assert_int_equal(vips_linear1(black, &red, 1, 0, "uchar", TRUE, NULL),
	                 0);
	g_object_unref(black);
	double c[] = {255, 0, 0};
	assert_int_equal(vips_linear(red, out, (double[]){1, 1, 1}, c, 3,
	                             "uchar", TRUE, NULL),
	                 0);
	g_object_unref(red);
	(*out)->Type = VIPS_INTERPRETATION_sRGB;
	return 0;
}

/* overlay: the logo on every frame where gravity puts it; an unknown
 * image fails with the host's reason. */
static void test_overlay(void **state)
{
	VipsImage *out;
	struct image_out res;
	char err[1024];
	double *v;
	int n;

	(void)state;
	image_set_fetch(fake_fetch, NULL);
	out = run_ok("overlay(aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,x=5,y=7,"
	             "opacity=0.5)|webp(lossless=true)");
	assert_int_equal(pages(out), FRAMES);
	for (int i = 0; i < FRAMES; i++) {
		VipsImage *f = frame(out, i), *in_f = frame(input, i);
		double *w;
		int m;
		/* south-east: the logo's last pixel 5 in, 7 up */
		assert_int_equal(
		        vips_getpoint(f, &v, &n, 640 - 6, 360 - 8, NULL), 0);
		assert_int_equal(
		        vips_getpoint(in_f, &w, &m, 640 - 6, 360 - 8, NULL), 0);
		assert_true(fabs(v[0] - (255 + w[0]) / 2) <= 1);
		assert_true(fabs(v[1] - w[1] / 2) <= 1);
		g_free(v);
		g_free(w);
		/* beside it, the frame as it was */
		VipsImage *a, *b;
		assert_int_equal(vips_crop(f, &a, 0, 0, 600, 300, NULL), 0);
		assert_int_equal(vips_crop(in_f, &b, 0, 0, 600, 300, NULL), 0);
		assert_true(max_diff(a, b) == 0);
		g_object_unref(a);
		g_object_unref(b);
		g_object_unref(f);
		g_object_unref(in_f);
	}
	g_object_unref(out);
	assert_int_equal(run("overlay(bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb)|png",
	                     gif, gif_len, &res, err, sizeof(err)),
	                 -ENOENT);
	assert_string_equal(
	        err, "overlay: no image bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	image_set_fetch(NULL, NULL);
	assert_int_equal(run("overlay(aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa)|png",
	                     gif, gif_len, &res, err, sizeof(err)),
	                 -ENOTSUP);
	assert_string_equal(err,
	                    "overlay: stored images are not available here");
}

static int put(struct plugin *store, const char *key, const void *data,
               size_t len)
{
	const struct imgnode_storage_ops *ops = store->desc->ops;

	return ops->put(store->state, key, data, len);
}

/* A storage that is away. */
static int get_timeout(void *state, const char *key, size_t max, void **data,
                       size_t *len)
{
	(void)state, (void)key, (void)max, (void)data, (void)len;
	return -ETIMEDOUT;
}

static const struct imgnode_storage_ops away_ops = {.get = get_timeout};
static const struct imgnode_plugin away_desc = {.name = "away",
                                                .ops = &away_ops};
static struct plugin away = {.desc = &away_desc};

/* overlays.c on a real fs store: read once, then from memory; a missing
 * or too big image is named; what is stored is checked as an upload. */
static void test_overlay_store(void **state)
{
	char dir[] = "/tmp/imgnode-anim-XXXXXX", ini[128], path[256];
	char err[CONF_ERR_MAX] = "", *png;
	const char *id = "0123456789abcdef0123456789abcdef";
	struct conf *conf = NULL;
	struct overlays *ov;
	struct plugin store = {0};
	void *cbuf, *dl;
	VipsImage *img, *logo;
	size_t len;
	FILE *fp;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(ini, sizeof(ini), "%s/imgnode.ini", dir);
	fp = fopen(ini, "w");
	assert_non_null(fp);
	fprintf(fp, "[node]\nstate_dir = %s\n[storage]\nplugin = fs\n", dir);
	assert_int_equal(fclose(fp), 0);
	store.desc = harness_load("fs", IMGNODE_KIND_STORAGE, &dl);
	assert_non_null(store.desc);
	cbuf = harness_configure(store.desc, ini, "storage", &conf, err,
	                         sizeof(err));
	if (!cbuf)
		fail_msg("%s", err);
	assert_int_equal(store.desc->init(host_table(), cbuf, &store.state), 0);
	set.storage = &store;
	ov = overlays_new(&set, &lim);
	assert_non_null(ov);

	assert_int_equal(overlays_fetch(ov, id, &img, err, sizeof(err)),
	                 -ENOENT);
	assert_string_equal(
	        err,
	        "no image 0123456789abcdef0123456789abcdef (store it with POST /v1/images)");
	logo = frame(input, 2);
	assert_int_equal(vips_pngsave_buffer(logo, (void **)&png, &len, NULL),
	                 0);
	snprintf(path, sizeof(path), "img/%s", id);
	assert_int_equal(put(&store, path, png, len), 0);
	assert_int_equal(overlays_fetch(ov, id, &img, err, sizeof(err)), 0);
	assert_true(max_diff(img, logo) == 0);
	g_object_unref(img);
	/* from memory now: gone from the store, still there */
	snprintf(path, sizeof(path), "%s/store/img/%s", dir, id);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(overlays_fetch(ov, id, &img, err, sizeof(err)), 0);
	g_object_unref(img);
	overlays_free(ov);
	/* a fresh cache reads it again: too big now, or not an image */
	lim.max_overlay = 1024;
	ov = overlays_new(&set, &lim);
	snprintf(path, sizeof(path), "img/%s", id);
	assert_int_equal(put(&store, path, png, len), 0);
	assert_int_equal(overlays_fetch(ov, id, &img, err, sizeof(err)),
	                 -EFBIG);
	assert_string_equal(
	        err,
	        "image 0123456789abcdef0123456789abcdef is over [limits] max_overlay (1024 bytes)");
	lim.max_overlay = 4 << 20;
	assert_int_equal(put(&store, path, "not an image", 12), 0);
	overlays_free(ov);
	ov = overlays_new(&set, &lim);
	assert_int_equal(overlays_fetch(ov, id, &img, err, sizeof(err)),
	                 -EPROTONOSUPPORT);
	assert_non_null(strstr(err, "unsupported format"));
	overlays_free(ov);
	/* the storage's trouble: the job is to wait, not fail */
	set.storage = &away;
	ov = overlays_new(&set, &lim);
	assert_int_equal(overlays_fetch(ov, id, &img, err, sizeof(err)),
	                 -EAGAIN);
	assert_string_equal(
	        err,
	        "cannot read image 0123456789abcdef0123456789abcdef: Connection timed out");
	overlays_free(ov);

	g_free(png);
	g_object_unref(logo);
	store.desc->fini(store.state);
	set.storage = NULL;
	harness_release(store.desc, &cbuf, &conf);
	dlclose(dl);
	harness_rm_tree(dir);
}

/* ---- setup */

static int setup(void **state)
{
	const char *build = getenv("BUILD");
	static char *formats[] = {"gif", "webp", "png", "jpeg"};
	char path[1200], err[512];

	(void)state;
	if (image_init(1, err, sizeof(err)))
		return -1;
	lim = (struct limits_conf){
	        .max_pixels = 100000000,
	        .max_pixels_interlaced = 30000000,
	        .max_dimension = 30000,
	        .max_frames = 100,
	        .max_overlay = 4 << 20,
	        .max_output = 100 << 20,
	        .fail_on = 1,
	        .formats = {4, formats},
	        .keep_metadata = true,
	};
	if (filterkit_corpus(GIF))
		return -1;
	gif = read_corpus(GIF, &gif_len);
	input = vips_image_new_from_buffer(gif, gif_len, "n=-1", NULL);
	if (!input || vips_image_wio_input(input))
		return -1;
	for (size_t i = 0; i < NPLUGINS; i++) {
		struct plugin *p = &plugins[i];
		snprintf(path, sizeof(path), "%s/plugins/%s.so",
		         build && *build ? build : "build", names[i]);
		if (!(p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL)) ||
		    !(p->desc = dlsym(p->dl, IMGNODE_PLUGIN_SYMBOL))) {
			fprintf(stderr, "%s: %s\n", path, dlerror());
			return -1;
		}
		p->next = i + 1 < NPLUGINS ? &plugins[i + 1] : NULL;
	}
	set.head = &plugins[0];
	set.n = NPLUGINS;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	g_object_unref(input);
	g_free(gif);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_steps_per_frame),
	        cmocka_unit_test(test_thumbnail_gif),
	        cmocka_unit_test(test_frame),
	        cmocka_unit_test(test_refusals),
	        cmocka_unit_test(test_overlay),
	        cmocka_unit_test(test_overlay_store),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
