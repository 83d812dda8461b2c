/*
 * Tests of the filter plugins (plugins/filter/): each is loaded as a worker
 * loads it (dlopen of $BUILD/plugins/NAME.so), its descriptor and argument
 * table checked, and real pipelines run through its ops on real images
 * from the corpus (test/data/README.md; build it with test/data/corpus).
 * Argument values are built from the tables' default texts, as the host's
 * pipeline parser does, with per-test overrides.
 *
 * Every result that matters is computed (encoded, or read back pixel by
 * pixel), since libvips builds pipelines lazily. After each test no libvips
 * object may be left alive (the operation cache is off, as in a worker).
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

#include "../../plugins/filter/filter.h" /* filter_markup_escape */
#include "filterkit.h"
#include "host.h"

static const char *const names[] = {
        "thumbnail",  "resize",    "crop", "smartcrop", "rotate",
        "autorotate", "flip",      "blur", "sharpen",   "grayscale",
        "strip",      "watermark", "jpeg", "png",       "webp",
        "avif",       "gif",       "tiff", NULL};
#define NFILTERS (sizeof(names) / sizeof(names[0]) - 1)

static const char *const encoders[] = {"jpeg", "png",  "webp", "avif",
                                       "gif",  "tiff", NULL};

/* ---- running steps */

/* Applies filter name to in; its "name=value" arguments end with END. */
static int try_apply(const char *name, VipsImage *in, VipsImage **out,
                     char *err, size_t errlen, ...)
{
	union imgnode_value v[MAX_ARGS];
	struct filter *f = filter_of(name);
	va_list ap;

	va_start(ap, errlen);
	make_args(f->ops, v, ap);
	va_end(ap);
	err[0] = '\0';
	return f->ops->apply(f->state, in, v, out, err, errlen);
}

/* As try_apply, but the step must succeed; returns its new image. */
static VipsImage *step(const char *name, VipsImage *in, ...)
{
	union imgnode_value v[MAX_ARGS];
	struct filter *f = filter_of(name);
	VipsImage *out = NULL;
	char err[512] = "";
	va_list ap;

	va_start(ap, in);
	make_args(f->ops, v, ap);
	va_end(ap);
	if (f->ops->apply(f->state, in, v, &out, err, sizeof(err)))
		fail_msg("%s failed: %s", name, err);
	return out;
}

/* The thumbnail's load as the first step of a pipeline. */
static int try_load(const void *buf, size_t len, const char *options,
                    VipsImage **out, char *err, size_t errlen, ...)
{
	union imgnode_value v[MAX_ARGS];
	struct filter *f = filter_of("thumbnail");
	va_list ap;

	va_start(ap, errlen);
	make_args(f->ops, v, ap);
	va_end(ap);
	err[0] = '\0';
	return f->ops->load(f->state, buf, len, options, v, out, err, errlen);
}

static int try_encode(const char *name, VipsImage *in, void **buf, size_t *len,
                      char *err, size_t errlen, ...)
{
	union imgnode_value v[MAX_ARGS];
	struct filter *f = filter_of(name);
	va_list ap;

	va_start(ap, errlen);
	make_args(f->ops, v, ap);
	va_end(ap);
	err[0] = '\0';
	return f->ops->encode(f->state, in, v, buf, len, err, errlen);
}

/* Decodes buf fully (options: a load option string), or fails the test. */
static VipsImage *decode(const void *buf, size_t len, const char *options)
{
	VipsImage *lazy, *img;

	lazy = vips_image_new_from_buffer(buf, len, options, NULL);
	if (!lazy)
		fail_msg("output does not decode: %s", vips_error_buffer());
	img = vips_image_copy_memory(lazy);
	g_object_unref(lazy);
	if (!img)
		fail_msg("output does not decode: %s", vips_error_buffer());
	return img;
}

/* Encodes in with encoder name and default arguments, decodes the result. */
static VipsImage *roundtrip(const char *name, VipsImage *in,
                            const char *options)
{
	char err[512];
	VipsImage *back;
	void *buf;
	size_t len;

	if (try_encode(name, in, &buf, &len, err, sizeof(err), END))
		fail_msg("%s failed: %s", name, err);
	back = decode(buf, len, options);
	g_free(buf);
	return back;
}

static const char *loader_of(VipsImage *img)
{
	const char *loader = "";

	if (vips_image_get_typeof(img, "vips-loader"))
		vips_image_get_string(img, "vips-loader", &loader);
	return loader;
}

static double deviation(VipsImage *img)
{
	double d;

	assert_int_equal(vips_deviate(img, &d, NULL), 0);
	return d;
}

/* ---- predictions (the predict hook, ABI 1.1) */

/*
 * How far a prediction may be off, in pixels a side: none, except for
 * thumbnail, where shrink-on-load (JPEG DCT scaling by 2, 4 or 8) rounds
 * the image before libvips works out the rest of the shrink.
 */
static long slack(const char *name)
{
	return strcmp(name, "thumbnail") ? 0 : 1;
}

/* Runs name's predict on in with values v, as the host does. */
static struct imgnode_geometry predict_with(struct filter *f,
                                            const struct imgnode_geometry *in,
                                            const union imgnode_value *v)
{
	struct imgnode_geometry out = *in;
	char err[512] = "";

	out.work_width = out.work_height = out.min_bytes = 0;
	assert_non_null(f->ops->predict);
	if (f->ops->predict(f->state, in, v, &out, err, sizeof(err)))
		fail_msg("%s: predict failed: %s", f->plugin->name, err);
	return out;
}

/*
 * Applies filter name to in with "name=value" arguments (ending with END)
 * and checks that its predict said the size and bands libvips built
 * (before computing anything). Returns the predicted shape.
 */
static struct imgnode_geometry predicted_apply(const char *name, VipsImage *in,
                                               ...)
{
	union imgnode_value v[MAX_ARGS];
	struct filter *f = filter_of(name);
	struct imgnode_geometry g = geometry_of(in), p;
	VipsImage *out = NULL;
	char err[512] = "";
	va_list ap;

	va_start(ap, in);
	make_args(f->ops, v, ap);
	va_end(ap);
	p = predict_with(f, &g, v);
	if (f->ops->apply(f->state, in, v, &out, err, sizeof(err)))
		fail_msg("%s failed: %s", name, err);
	if (labs((long)(p.width - out->Xsize)) > slack(name) ||
	    labs((long)(p.height - out->Ysize)) > slack(name) ||
	    p.bands != out->Bands)
		fail_msg(
		        "%s on %dx%d: predicted %lldx%lld, %d bands; libvips made %dx%d, %d bands",
		        name, in->Xsize, in->Ysize, (long long)p.width,
		        (long long)p.height, p.bands, out->Xsize, out->Ysize,
		        out->Bands);
	g_object_unref(out);
	return p;
}

/* thumbnail as the first step on corpus file rel: predicted == loaded. */
static void predicted_load(const char *rel, int width, int height,
                           const char *crop, const char *size)
{
	union imgnode_value v[MAX_ARGS];
	struct filter *f = filter_of("thumbnail");
	struct imgnode_geometry g, p;
	char a[4][64], err[512] = "";
	VipsImage *head, *out;
	size_t len;
	char *buf = read_corpus(rel, &len);

	snprintf(a[0], sizeof(a[0]), "width=%d", width);
	snprintf(a[1], sizeof(a[1]), "height=%d", height);
	snprintf(a[2], sizeof(a[2]), "crop=%s", crop);
	snprintf(a[3], sizeof(a[3]), "size=%s", size);
	/* make_args takes a va_list: go through try_load's path */
	{
		const char *kv[] = {a[0], a[1], a[2], a[3]};
		for (size_t k = 0; f->ops->args[k].name; k++) {
			const char *text = f->ops->args[k].def;
			for (size_t j = 0; j < 4; j++)
				if (!strncmp(kv[j], f->ops->args[k].name,
				             strlen(f->ops->args[k].name)) &&
				    kv[j][strlen(f->ops->args[k].name)] == '=')
					text = strchr(kv[j], '=') + 1;
			assert_true(parse_value(&f->ops->args[k], text, &v[k]));
		}
	}
	head = vips_image_new_from_buffer(buf, len, "", NULL);
	assert_non_null(head);
	g = geometry_of(head);
	g_object_unref(head);
	p = predict_with(f, &g, v);
	if (f->ops->load(f->state, buf, len, "fail_on=none", v, &out, err,
	                 sizeof(err)))
		fail_msg("%s: load failed: %s", rel, err);
	if (labs((long)(p.width - out->Xsize)) > slack("thumbnail") ||
	    labs((long)(p.height - out->Ysize)) > slack("thumbnail"))
		fail_msg(
		        "%s thumbnail(%d,%d,%s,%s): predicted %lldx%lld, libvips made %dx%d",
		        rel, width, height, crop, size, (long long)p.width,
		        (long long)p.height, out->Xsize, out->Ysize);
	assert_int_equal(p.orientation, 1);
	g_object_unref(out);
	g_free(buf);
}

/* ---- setup */

static int setup(void **state)
{
	(void)state;
	return filterkit_setup("test_filters", names, "photos/kleiber.jpg");
}

/* ---- tests */

static bool is_encoder(const char *name)
{
	for (int i = 0; encoders[i]; i++)
		if (!strcmp(encoders[i], name))
			return true;
	return false;
}

/* Each descriptor is well formed, its defaults parse, its self-test passes. */
static void test_descriptors(void **state)
{
	(void)state;
	for (size_t i = 0; i < NFILTERS; i++) {
		struct filter *f = filter_of(names[i]);
		const struct imgnode_plugin *p = f->plugin;
		const struct imgnode_filter_ops *ops = f->ops;
		char err[512] = "";

		assert_int_equal(p->magic, IMGNODE_PLUGIN_MAGIC);
		assert_int_equal(p->abi_major, IMGNODE_ABI_MAJOR);
		assert_int_equal(p->abi_minor, IMGNODE_ABI_MINOR);
		assert_int_equal(p->kind, IMGNODE_KIND_FILTER);
		assert_string_equal(p->name, names[i]);
		/* resize 2.0 took sizes and fit modes */
		assert_string_equal(p->version,
		                    strcmp(names[i], "resize") ? "1.0" : "2.0");
		assert_true(p->description && *p->description);
		assert_non_null(ops);
		assert_non_null(ops->args);
		if (is_encoder(names[i])) {
			/* every encoder reads its input top to bottom */
			assert_int_equal(ops->flags & ~IMGNODE_FILTER_FRAMES,
			                 IMGNODE_FILTER_ENCODER |
			                         IMGNODE_FILTER_SEQUENTIAL);
			assert_non_null(ops->encode);
			assert_null(ops->apply);
			assert_int_equal(strncmp(ops->mime, "image/", 6), 0);
			assert_true(ops->format && *ops->format);
		} else {
			assert_non_null(ops->apply);
			assert_null(ops->encode);
			assert_null(ops->mime);
			assert_int_equal(
			        ops->flags & ~(IMGNODE_FILTER_FRAMES |
			                       IMGNODE_FILTER_SEQUENTIAL),
			        strcmp(names[i], "thumbnail") &&
			                        strcmp(names[i], "resize")
			                ? 0
			                : IMGNODE_FILTER_LOADS);
			assert_true(!(ops->flags & IMGNODE_FILTER_LOADS) ==
			            !ops->load);
		}
		for (size_t k = 0; ops->args[k].name; k++) {
			const struct imgnode_arg *a = &ops->args[k];
			union imgnode_value v;
			assert_true(k < MAX_ARGS);
			assert_true(a->help && *a->help);
			if (a->type == IMGNODE_ARG_ENUM)
				assert_true(a->choices && a->choices[0]);
			if (a->def && !parse_value(a, a->def, &v))
				fail_msg("%s: default %s=%s does not parse",
				         names[i], a->name, a->def);
		}
		/* Only the descriptor is exported. */
		assert_null(dlsym(f->dl, "filter_fail"));
		{
			char hook[64];
			snprintf(hook, sizeof(hook), "%s_%s", names[i],
			         ops->encode ? "encode" : "apply");
			assert_null(dlsym(f->dl, hook));
		}
		assert_non_null(ops->selftest);
		if (ops->selftest(f->state, err, sizeof(err)))
			fail_msg("%s: self-test: %s", names[i], err);
	}
	assert_string_equal(ops_of("avif")->format, "heif");
}

/* thumbnail as the first step: shrink-on-load to a width, aspect kept. */
static void test_thumbnail_load(void **state)
{
	VipsImage *img, *back;
	char err[512];
	size_t len;
	char *buf = read_corpus("photos/kleiber.jpg", &len); /* 6028x3391 */

	(void)state;
	assert_int_equal(try_load(buf, len, "fail_on=truncated", &img, err,
	                          sizeof(err), "width=800", END),
	                 0);
	assert_int_equal(img->Xsize, 800);
	assert_int_equal(img->Ysize, 450); /* 3391 * 800 / 6028 = 450.03 */
	back = roundtrip("jpeg", img, "");
	assert_int_equal(back->Xsize, 800);
	assert_int_equal(back->Ysize, 450);
	g_object_unref(back);
	g_object_unref(img);

	/* A box: the whole image fits in 300x100. */
	assert_int_equal(try_load(buf, len, "", &img, err, sizeof(err),
	                          "width=300", "height=100", END),
	                 0);
	assert_int_equal(img->Ysize, 100);
	assert_int_equal(img->Xsize, 178);
	g_object_unref(img);

	/* crop fills the box; without a height the box is square. */
	assert_int_equal(try_load(buf, len, "", &img, err, sizeof(err),
	                          "width=300", "height=200", "crop=attention",
	                          END),
	                 0);
	assert_int_equal(img->Xsize, 300);
	assert_int_equal(img->Ysize, 200);
	g_object_unref(img);
	assert_int_equal(try_load(buf, len, "", &img, err, sizeof(err),
	                          "width=120", "crop=centre", END),
	                 0);
	assert_int_equal(img->Xsize, 120);
	assert_int_equal(img->Ysize, 120);
	g_object_unref(img);
	g_free(buf);

	/* Portrait (EXIF orientation 6, 640x428 stored): turned upright, and
	 * 200 wide, not squeezed into 200x200. */
	buf = read_corpus("formats/jpeg-exif-orient6.jpg", &len);
	assert_int_equal(try_load(buf, len, "", &img, err, sizeof(err),
	                          "width=200", END),
	                 0);
	assert_int_equal(img->Xsize, 200);
	assert_int_equal(img->Ysize, 299);
	back = roundtrip("png", img, "");
	assert_int_equal(back->Ysize, 299);
	g_object_unref(back);
	g_object_unref(img);
	g_free(buf);

	/* size=down (the default) never enlarges; size=both does. */
	buf = read_corpus("formats/tiny.png", &len);
	assert_int_equal(try_load(buf, len, "", &img, err, sizeof(err),
	                          "width=800", END),
	                 0);
	assert_int_equal(img->Xsize, 32);
	g_object_unref(img);
	assert_int_equal(try_load(buf, len, "", &img, err, sizeof(err),
	                          "width=64", "size=both", END),
	                 0);
	assert_int_equal(img->Xsize, 64);
	assert_int_equal(img->Ysize, 64);
	g_object_unref(img);
	g_free(buf);
}

/* thumbnail later in a pipeline works on the image so far. */
static void test_thumbnail_apply(void **state)
{
	VipsImage *in = open_image("photos/bridge.jpg", "shrink=2");
	VipsImage *square, *thumb, *back;
	char w[32], h[32];
	int side = VIPS_MIN(in->Xsize, in->Ysize);

	(void)state;
	thumb = step("thumbnail", in, "width=400", END);
	assert_int_equal(thumb->Xsize, 400);
	assert_int_equal(thumb->Ysize, 225); /* 1224 * 400 / 2176 */
	g_object_unref(thumb);

	/* crop | thumbnail | png: the thumbnail of the cut-out square */
	snprintf(w, sizeof(w), "width=%d", side);
	snprintf(h, sizeof(h), "height=%d", side);
	square = step("crop", in, "left=0", "top=0", w, h, END);
	thumb = step("thumbnail", square, "width=100", END);
	back = roundtrip("png", thumb, "");
	assert_int_equal(back->Xsize, 100);
	assert_int_equal(back->Ysize, 100);
	g_object_unref(back);
	g_object_unref(thumb);
	g_object_unref(square);
	g_object_unref(in);
}

/* Animations survive thumbnail and the GIF and WebP encoders. */
static void test_animation(void **state)
{
	VipsImage *src =
	        open_image("formats/gif-anim-circular-table.gif", NULL);
	VipsImage *img, *lazy, *back;
	int pages = vips_image_get_n_pages(src);
	char err[512];
	size_t len;
	char *buf = read_corpus("formats/gif-anim-circular-table.gif", &len);

	(void)state;
	assert_true(pages > 1);
	assert_int_equal(try_load(buf, len, "n=-1", &img, err, sizeof(err),
	                          "width=32", "size=both", END),
	                 0);
	assert_int_equal(img->Xsize, 32);
	assert_int_equal(vips_image_get_page_height(img) * pages, img->Ysize);
	lazy = img;
	img = vips_image_copy_memory(lazy); /* encoded twice below */
	g_object_unref(lazy);
	for (int i = 0; i < 2; i++) {
		back = roundtrip(i ? "webp" : "gif", img, "n=-1");
		assert_string_equal(loader_of(back),
		                    i ? "webpload_buffer" : "gifload_buffer");
		assert_int_equal(vips_image_get_n_pages(back), pages);
		assert_int_equal(back->Xsize, 32);
		g_object_unref(back);
	}

	/* Steps keep the frames (test_filters_anim.c); smartcrop refuses. */
	back = step("grayscale", img, END);
	assert_int_equal(vips_image_get_page_height(back),
	                 vips_image_get_page_height(img));
	g_object_unref(back);
	back = NULL;
	assert_int_equal(try_apply("smartcrop", img, &back, err, sizeof(err),
	                           "width=16", "height=16", END),
	                 -ENOTSUP);
	assert_null(back);
	if (strcmp(err,
	           "cannot work on animations (9 frames); use frame(N) first"))
		fail_msg("unclear reason: %s", err);
	g_object_unref(img);
	g_free(buf);
	g_object_unref(src);
}

/* A truncated JPEG fails with a reason when the host asks for it. */
static void test_truncated(void **state)
{
	const char *files[] = {"photos/kleiber.jpg", "photos/picture-1a.jpg",
	                       "corrupt/premature-end.jpg", NULL};

	(void)state;
	for (int i = 0; files[i]; i++) {
		VipsImage *img;
		char err[512];
		size_t len;
		char *buf = read_corpus(files[i], &len);
		void *out;
		size_t outlen;
		int r;

		if (i < 2)
			len /= 3; /* cut the file */
		/* The failure may come at load or, since libvips is lazy,
		 * when the encoder runs the pipeline. */
		r = try_load(buf, len, "fail_on=truncated", &img, err,
		             sizeof(err), "width=300", END);
		if (!r) {
			r = try_encode("jpeg", img, &out, &outlen, err,
			               sizeof(err), END);
			g_object_unref(img);
		}
		assert_int_equal(r, -EINVAL);
		/* libvips 8.18 (make VIPS=bundled) says "premature end" */
		if (!strcasestr(err, "premature end") &&
		    !strstr(err, "truncated"))
			fail_msg("%s: unclear reason: %s", files[i], err);
		assert_null(strchr(err, '\n'));
		assert_string_equal(vips_error_buffer(), "");

		/* Without the option libvips pads the image out instead. */
		if (i < 2) {
			assert_int_equal(try_load(buf, len, "", &img, err,
			                          sizeof(err), "width=300",
			                          END),
			                 0);
			assert_int_equal(try_encode("jpeg", img, &out, &outlen,
			                            err, sizeof(err), END),
			                 0);
			g_free(out);
			g_object_unref(img);
		}
		g_free(buf);
	}
}

/* Bytes that are no image: a clean reason, libvips' buffer cleared. */
static void test_not_an_image(void **state)
{
	static const char junk[] = "this is not an image, just some text";
	VipsImage *img, *tiny = open_image("formats/tiny.png", NULL);
	char err[512];

	(void)state;
	/* Decoding an AVIF from memory succeeds but leaves "source: bad
	 * seek" in libvips' error buffer: no step may report that. */
	img = roundtrip("avif", tiny, "");
	g_object_unref(img);
	g_object_unref(tiny);
	assert_int_equal(try_load(junk, sizeof(junk), "", &img, err,
	                          sizeof(err), "width=100", END),
	                 -EINVAL);
	assert_int_equal(strncmp(err, "unable to load the image: ", 26), 0);
	assert_null(strchr(err, '\n'));
	assert_null(strstr(err, "bad seek"));
	assert_string_equal(vips_error_buffer(), "");

	/* Some PNG failures leave libvips' buffer empty: still a reason. */
	{
		size_t len;
		char *png = read_corpus("corrupt/xd0n2c08.png", &len);
		assert_int_equal(try_load(png, len, "fail_on=truncated", &img,
		                          err, sizeof(err), "width=100", END),
		                 -EINVAL);
		assert_int_equal(strncmp(err, "unable to load the image", 24),
		                 0);
		g_free(png);
	}
}

static void test_crop(void **state)
{
	VipsImage *in = open_image("formats/jpeg-exif-orient6.jpg", NULL);
	VipsImage *out;
	char err[512];

	(void)state;
	assert_int_equal(in->Xsize, 640);
	out = step("crop", in, "left=10", "top=20", "width=100", "height=50",
	           END);
	assert_int_equal(out->Xsize, 100);
	assert_int_equal(out->Ysize, 50);
	assert_true(pixel(out, 5, 7, 1) == pixel(in, 15, 27, 1));
	g_object_unref(out);

	out = NULL;
	assert_int_equal(try_apply("crop", in, &out, err, sizeof(err),
	                           "left=600", "top=0", "width=100",
	                           "height=100", END),
	                 -EINVAL);
	assert_null(out);
	assert_non_null(strstr(err, "640x428"));
	assert_string_equal(err,
	                    "100x100 at 600,0 lies outside the 640x428 image");
	assert_int_equal(try_apply("crop", in, &out, err, sizeof(err), "left=0",
	                           "top=400", "width=640", "height=29", END),
	                 -EINVAL);
	out = step("crop", in, "left=0", "top=400", "width=640", "height=28",
	           END);
	assert_int_equal(out->Ysize, 28);
	g_object_unref(out);
	g_object_unref(in);
}

static void test_rotate_flip(void **state)
{
	VipsImage *in = open_image("formats/jpeg-exif-orient6.jpg", NULL);
	const struct imgnode_arg *angle = &ops_of("rotate")->args[0];
	int w = in->Xsize, h = in->Ysize;
	VipsImage *out;

	(void)state;
	/* "45" is refused by the host's parser: not a choice. */
	assert_string_equal(angle->choices[0], "90");
	assert_string_equal(angle->choices[1], "180");
	assert_string_equal(angle->choices[2], "270");
	assert_null(angle->choices[3]);

	out = step("rotate", in, "angle=90", END);
	assert_int_equal(out->Xsize, h);
	assert_int_equal(out->Ysize, w);
	/* clockwise: the bottom-left corner goes to the top-left */
	assert_true(pixel(out, 0, 0, 0) == pixel(in, 0, h - 1, 0));
	assert_true(pixel(out, 3, 5, 1) == pixel(in, 5, h - 1 - 3, 1));
	g_object_unref(out);
	out = step("rotate", in, "angle=180", END);
	assert_int_equal(out->Xsize, w);
	assert_true(pixel(out, 0, 0, 2) == pixel(in, w - 1, h - 1, 2));
	g_object_unref(out);
	out = step("rotate", in, "angle=270", END);
	assert_int_equal(out->Xsize, h);
	assert_true(pixel(out, 0, 0, 0) == pixel(in, w - 1, 0, 0));
	g_object_unref(out);

	out = step("flip", in, "direction=horizontal", END);
	assert_int_equal(out->Xsize, w);
	assert_int_equal(out->Ysize, h);
	assert_true(pixel(out, 0, 9, 0) == pixel(in, w - 1, 9, 0));
	g_object_unref(out);
	out = step("flip", in, "direction=vertical", END);
	assert_true(pixel(out, 9, 0, 0) == pixel(in, 9, h - 1, 0));
	g_object_unref(out);
	g_object_unref(in);
}

static void test_autorotate(void **state)
{
	VipsImage *in = open_image("formats/jpeg-exif-orient6.jpg", NULL);
	VipsImage *ref = open_image("formats/jpeg-exif-orient6.ref.png", NULL);
	VipsImage *out, *same;

	(void)state;
	assert_int_equal(vips_image_get_orientation(in), 6);
	out = step("autorotate", in, END);
	assert_int_equal(out->Xsize, 428);
	assert_int_equal(out->Ysize, 640);
	assert_int_equal(vips_image_get_orientation(out), 1);
	assert_int_equal(ref->Xsize, 428);
	assert_true(mean_diff(out, ref) < 2.0);
	/* Upright already: unchanged, and not turned twice. */
	same = step("autorotate", out, END);
	assert_int_equal(same->Xsize, 428);
	g_object_unref(same);
	g_object_unref(out);
	g_object_unref(ref);
	g_object_unref(in);
}

static void test_grayscale(void **state)
{
	VipsImage *in = open_image("photos/bridge.jpg", "shrink=8");
	VipsImage *small = step("resize", in, "scale=0.5", END);
	VipsImage *out, *back;

	(void)state;
	out = step("grayscale", small, END);
	assert_int_equal(out->Bands, 1);
	back = roundtrip("jpeg", out, "");
	assert_int_equal(back->Bands, 1);
	g_object_unref(back);
	g_object_unref(out);
	g_object_unref(small);
	g_object_unref(in);

	in = open_image("formats/pngsuite-basn6a08.png", NULL); /* RGBA */
	out = step("grayscale", in, END);
	assert_int_equal(out->Bands, 2);
	assert_true(pixel(out, 7, 3, 1) == pixel(in, 7, 3, 3)); /* alpha */
	back = roundtrip("png", out, "");
	assert_int_equal(back->Bands, 2);
	g_object_unref(back);
	g_object_unref(out);
	g_object_unref(in);

	in = open_image("formats/pngsuite-basn6a16.png", NULL); /* RGBA 16 */
	out = step("grayscale", in, END);
	assert_int_equal(out->Bands, 2);
	assert_int_equal(out->BandFmt, VIPS_FORMAT_USHORT);
	g_object_unref(out);
	g_object_unref(in);
}

static void test_strip(void **state)
{
	VipsImage *in = open_image("formats/jpeg-exif-orient6.jpg", "shrink=2");
	VipsImage *out, *back;

	(void)state;
	assert_true(vips_image_get_typeof(in, VIPS_META_EXIF_NAME));
	/* Without strip an encoder keeps the metadata. */
	back = roundtrip("jpeg", in, "");
	assert_true(vips_image_get_typeof(back, VIPS_META_EXIF_NAME));
	g_object_unref(back);

	out = step("strip", in, END);
	assert_false(vips_image_get_typeof(out, VIPS_META_EXIF_NAME));
	assert_false(vips_image_get_typeof(out, VIPS_META_ORIENTATION));
	assert_false(vips_image_get_typeof(out, "exif-ifd0-Orientation"));
	assert_int_equal(out->Xsize, 214); /* turned upright first */
	assert_string_equal(loader_of(out), "jpegload");
	for (int i = 0; encoders[i]; i++) {
		back = roundtrip(encoders[i], out, "");
		if (vips_image_get_typeof(back, VIPS_META_EXIF_NAME) ||
		    vips_image_get_typeof(back, VIPS_META_XMP_NAME) ||
		    vips_image_get_typeof(back, VIPS_META_ICC_NAME))
			fail_msg("%s wrote metadata after strip", encoders[i]);
		assert_int_equal(back->Xsize, 214);
		g_object_unref(back);
	}
	g_object_unref(out);
	g_object_unref(in);

	/* An ICC profile goes too, after the colours were made sRGB. */
	in = open_image("formats/jpeg-icc.jpg", NULL);
	assert_true(vips_image_get_typeof(in, VIPS_META_ICC_NAME));
	out = step("strip", in, END);
	assert_false(vips_image_get_typeof(out, VIPS_META_ICC_NAME));
	back = roundtrip("png", out, "");
	assert_false(vips_image_get_typeof(back, VIPS_META_ICC_NAME));
	assert_int_equal(back->Bands, in->Bands);
	g_object_unref(back);
	g_object_unref(out);
	g_object_unref(in);

	/* An animation stays one. */
	in = open_image("formats/gif-anim-circular-table.gif", "n=-1");
	out = step("strip", in, END);
	assert_int_equal(vips_image_get_page_height(out),
	                 vips_image_get_page_height(in));
	assert_true(vips_image_get_page_height(out) < out->Ysize);
	g_object_unref(out);
	g_object_unref(in);
}

/*
 * The contract of IMGNODE_META_ICC_ONLY (plugin.h): given an image the host
 * left with its ICC profile alone, every encoder writes no EXIF (not even
 * the block libvips builds from the header), XMP or IPTC; JPEG, PNG, WebP
 * and TIFF keep the profile, AVIF and GIF are sRGB without one. Without the
 * mark the same image keeps what it carries.
 */
static void test_icc_only(void **state)
{
	VipsImage *photo =
	        open_image("formats/jpeg-exif-orient6.jpg", "shrink=4");
	VipsImage *icc = open_image("formats/jpeg-icc.jpg", NULL);
	VipsImage *in, *back;
	const void *profile;
	size_t plen;
	gchar **fields;

	(void)state;
	assert_int_equal(
	        vips_image_get_blob(icc, VIPS_META_ICC_NAME, &profile, &plen),
	        0);
	assert_int_equal(vips_copy(photo, &in, NULL), 0);
	fields = vips_image_get_fields(in);
	for (int i = 0; fields[i]; i++)
		if (strncmp(fields[i], "vips-", 5))
			vips_image_remove(in, fields[i]);
	g_strfreev(fields);
	vips_image_set_blob_copy(in, VIPS_META_ICC_NAME, profile, plen);
	vips_image_set_int(in, IMGNODE_META_ICC_ONLY, 1);
	for (int i = 0; encoders[i]; i++) {
		bool keeps = strcmp(encoders[i], "avif") != 0 &&
		             strcmp(encoders[i], "gif") != 0;
		back = roundtrip(encoders[i], in, "");
		if (vips_image_get_typeof(back, VIPS_META_EXIF_NAME) ||
		    vips_image_get_typeof(back, VIPS_META_XMP_NAME) ||
		    vips_image_get_typeof(back, VIPS_META_IPTC_NAME))
			fail_msg("%s wrote EXIF, XMP or IPTC", encoders[i]);
		if ((vips_image_get_typeof(back, VIPS_META_ICC_NAME) != 0) !=
		    keeps)
			fail_msg("%s: ICC profile %s", encoders[i],
			         keeps ? "lost" : "kept");
		assert_int_equal(back->Xsize, in->Xsize);
		g_object_unref(back);
	}
	g_object_unref(in);

	/* Unmarked, the metadata the image carries is written. */
	back = roundtrip("jpeg", photo, "");
	assert_true(vips_image_get_typeof(back, VIPS_META_EXIF_NAME));
	assert_int_equal(vips_image_get_orientation(back), 6);
	g_object_unref(back);
	g_object_unref(icc);
	g_object_unref(photo);
}

static void test_watermark(void **state)
{
	VipsImage *in = open_image("photos/bridge.jpg", "shrink=4");
	VipsImage *small = step("resize", in, "scale=0.5", END);
	VipsImage *out, *corner[2], *src[2];
	int w = small->Xsize, h = small->Ysize;
	char err[512], long_text[300];

	(void)state;
	out = step("watermark", small, "text=imgnode <b>&</b> © 2024",
	           "size=24", "opacity=0.8", END);
	assert_int_equal(out->Xsize, w);
	assert_int_equal(out->Ysize, h);
	assert_int_equal(out->Bands, 3);
	assert_int_equal(out->BandFmt, VIPS_FORMAT_UCHAR);
	/* The south-east corner changed, the north-west did not. */
	assert_int_equal(
	        vips_crop(out, &corner[0], w / 2, h - 40, w / 2, 40, NULL), 0);
	assert_int_equal(
	        vips_crop(small, &src[0], w / 2, h - 40, w / 2, 40, NULL), 0);
	assert_int_equal(vips_crop(out, &corner[1], 0, 0, w / 2, h / 2, NULL),
	                 0);
	assert_int_equal(vips_crop(small, &src[1], 0, 0, w / 2, h / 2, NULL),
	                 0);
	assert_true(mean_diff(corner[0], src[0]) > 1.0);
	assert_true(mean_diff(corner[1], src[1]) == 0.0);
	for (int i = 0; i < 2; i++) {
		g_object_unref(corner[i]);
		g_object_unref(src[i]);
	}
	g_object_unref(out);

	/* Bad text: a reason, no crash. */
	memset(long_text, 'x', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	assert_int_equal(try_apply("watermark", small, &out, err, sizeof(err),
	                           "text=", END),
	                 -EINVAL);
	assert_non_null(strstr(err, "the text must be"));
	assert_int_equal(try_apply("watermark", small, &out, err, sizeof(err),
	                           "text=\xff\xfe", END),
	                 -EINVAL);
	{
		char kv[310];
		snprintf(kv, sizeof(kv), "text=%s", long_text);
		assert_int_equal(try_apply("watermark", small, &out, err,
		                           sizeof(err), kv, END),
		                 -EINVAL);
	}
	g_object_unref(small);
	g_object_unref(in);

	/* RGBA keeps its alpha. */
	in = open_image("formats/pngsuite-basn6a08.png", NULL);
	out = step("watermark", in, "text=hi", "gravity=centre", END);
	assert_int_equal(out->Bands, 4);
	assert_true(mean_diff(out, in) > 0.0);
	g_object_unref(out);
	g_object_unref(in);
}

/* Every encoder's output decodes to its format, at the right size. */
static void test_encoders(void **state)
{
	VipsImage *photo, *lazy, *rgba, *back;
	char err[512];
	size_t len;
	char *buf = read_corpus("photos/fossa.jpg", &len);

	(void)state;
	assert_int_equal(try_load(buf, len, "fail_on=truncated", &lazy, err,
	                          sizeof(err), "width=320", END),
	                 0);
	/* A sequential pipeline runs once; this test encodes many times. */
	photo = vips_image_copy_memory(lazy);
	g_object_unref(lazy);
	g_free(buf);
	rgba = open_image("formats/pngsuite-basn6a08.png", NULL);
	for (int i = 0; encoders[i]; i++) {
		const struct imgnode_filter_ops *ops = ops_of(encoders[i]);
		back = roundtrip(encoders[i], photo, "");
		if (strncmp(loader_of(back), ops->format, strlen(ops->format)))
			fail_msg("%s: decodes with %s", encoders[i],
			         loader_of(back));
		assert_int_equal(back->Xsize, photo->Xsize);
		assert_int_equal(back->Ysize, photo->Ysize);
		g_object_unref(back);

		back = roundtrip(encoders[i], rgba, "");
		assert_int_equal(back->Xsize, 32);
		/* JPEG has no alpha; the others keep it. */
		assert_int_equal(vips_image_hasalpha(back),
		                 strcmp(encoders[i], "jpeg") != 0);
		g_object_unref(back);
	}
	g_object_unref(rgba);

	/* JPEG flattens transparency onto white. */
	{
		VipsImage *black, *clear;
		assert_int_equal(vips_black(&black, 8, 8, "bands", 4, NULL), 0);
		assert_int_equal(vips_copy(black, &clear, "interpretation",
		                           VIPS_INTERPRETATION_sRGB, NULL),
		                 0);
		back = roundtrip("jpeg", clear, "");
		assert_int_equal(back->Bands, 3);
		assert_true(pixel(back, 4, 4, 0) > 250);
		g_object_unref(back);
		g_object_unref(clear);
		g_object_unref(black);
	}

	/* The arguments reach the encoder. */
	{
		void *lo, *hi;
		size_t nlo, nhi;
		assert_int_equal(try_encode("jpeg", photo, &lo, &nlo, err,
		                            sizeof(err), "q=20", END),
		                 0);
		assert_int_equal(try_encode("jpeg", photo, &hi, &nhi, err,
		                            sizeof(err), "q=95",
		                            "progressive=true", END),
		                 0);
		assert_true(nlo < nhi);
		back = decode(hi, nhi, "");
		assert_int_equal(vips_image_get_typeof(back, "interlaced") != 0,
		                 1);
		g_object_unref(back);
		g_free(lo);
		g_free(hi);
		/* a smaller setting gives a smaller file, for each encoder */
		static const struct {
			const char *enc, *small, *big;
		} pairs[] = {
		        {"webp", "q=20", "lossless=true"},
		        {"png", "compression=9", "compression=0"},
		        {"avif", "q=10", "q=90"},
		};
		for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
			assert_int_equal(try_encode(pairs[i].enc, photo, &lo,
			                            &nlo, err, sizeof(err),
			                            pairs[i].small, END),
			                 0);
			assert_int_equal(try_encode(pairs[i].enc, photo, &hi,
			                            &nhi, err, sizeof(err),
			                            pairs[i].big, END),
			                 0);
			if (nlo >= nhi)
				fail_msg("%s: %s gave %zu bytes, %s %zu",
				         pairs[i].enc, pairs[i].small, nlo,
				         pairs[i].big, nhi);
			g_free(lo);
			g_free(hi);
		}
	}
	g_object_unref(photo);
}

static void test_smartcrop(void **state)
{
	VipsImage *in = open_image("photos/friends.jpg", "shrink=4");
	VipsImage *small = step("resize", in, "scale=0.5", END);
	VipsImage *out, *back;
	int w = small->Xsize;

	(void)state;
	out = step("smartcrop", small, "width=200", "height=100", END);
	assert_int_equal(out->Xsize, 200);
	assert_int_equal(out->Ysize, 100);
	back = roundtrip("webp", out, "");
	assert_int_equal(back->Xsize, 200);
	g_object_unref(back);
	g_object_unref(out);
	/* Larger than the image: clipped to it. */
	out = step("smartcrop", small, "width=100000", "height=50",
	           "interesting=entropy", END);
	assert_int_equal(out->Xsize, w);
	assert_int_equal(out->Ysize, 50);
	g_object_unref(out);
	g_object_unref(small);
	g_object_unref(in);
}

static void test_resize_blur_sharpen(void **state)
{
	VipsImage *in = open_image("photos/bridge.jpg", "shrink=4");
	VipsImage *small = step("resize", in, "scale=0.25", END);
	VipsImage *out, *rgba;

	(void)state;
	assert_int_equal(in->Xsize, 1088);
	assert_int_equal(in->Ysize, 612);
	assert_int_equal(small->Xsize, 272);
	assert_int_equal(small->Ysize, 153);
	out = step("blur", small, "sigma=3", END);
	assert_int_equal(out->Xsize, small->Xsize);
	assert_int_equal(out->BandFmt, VIPS_FORMAT_UCHAR);
	assert_true(deviation(out) < deviation(small));
	g_object_unref(out);
	out = step("sharpen", small, END);
	assert_int_equal(out->Xsize, small->Xsize);
	assert_int_equal(out->Bands, 3);
	assert_true(mean_diff(out, small) > 0.1);
	g_object_unref(out);
	g_object_unref(small);
	g_object_unref(in);

	/* With alpha: premultiplied, back to 8-bit RGBA. */
	rgba = open_image("formats/pngsuite-basn6a08.png", NULL);
	out = step("resize", rgba, "scale=2", END);
	assert_int_equal(out->Xsize, 64);
	assert_int_equal(out->Bands, 4);
	assert_int_equal(out->BandFmt, VIPS_FORMAT_UCHAR);
	assert_true(deviation(out) > 0);
	g_object_unref(out);
	out = step("blur", rgba, "sigma=1.5", END);
	assert_int_equal(out->Bands, 4);
	assert_int_equal(out->BandFmt, VIPS_FORMAT_UCHAR);
	assert_true(deviation(out) > 0);
	g_object_unref(out);
	out = step("sharpen", rgba, "sigma=1", END);
	assert_int_equal(out->Bands, 4);
	assert_true(deviation(out) > 0);
	g_object_unref(out);
	g_object_unref(rgba);
}

/* thumbnail's predict says the size libvips makes, loading or later. */
static void test_predict_thumbnail(void **state)
{
	static const char *const files[] = {"photos/bridge.jpg",
	                                    "formats/jpeg-exif-orient6.jpg",
	                                    "formats/png-rgba-3840x2160.png",
	                                    "formats/tiny.png",
	                                    "formats/webp-lossy.webp",
	                                    "formats/tiff-deflate.tiff"};
	static const int widths[] = {1, 33, 200, 801};
	static const int heights[] = {0, 1, 150};
	static const char *const crops[] = {"none", "centre"};
	static const char *const sizes[] = {"down", "up", "both"};
	VipsImage *in;

	(void)state;
	for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++)
		for (size_t w = 0; w < 4; w++)
			for (size_t h = 0; h < 3; h++)
				for (size_t c = 0; c < 2; c++)
					for (size_t z = 0; z < 3; z++)
						predicted_load(
						        files[f], widths[w],
						        heights[h], crops[c],
						        sizes[z]);
	/* attention crops are computed while loading: a few */
	predicted_load("formats/tiny.png", 300, 0, "attention", "up");
	predicted_load("formats/jpeg-exif-orient6.jpg", 64, 40, "attention",
	               "both");
	/* later in a pipeline, on an image that still carries its EXIF
	 * orientation */
	in = open_image("formats/jpeg-exif-orient6.jpg", NULL);
	predicted_apply("thumbnail", in, "width=50", END);
	predicted_apply("thumbnail", in, "width=500", "size=up", END);
	predicted_apply("thumbnail", in, "width=70", "height=20", END);
	predicted_apply("thumbnail", in, "width=70", "crop=centre", "size=both",
	                END);
	g_object_unref(in);
}

/* The other filters' predict hooks against what libvips builds. */
static void test_predict_filters(void **state)
{
	VipsImage *photo = open_image("photos/bridge.jpg", "shrink=8");
	VipsImage *turned = open_image("formats/jpeg-exif-orient6.jpg", NULL);
	VipsImage *rgba = open_image("formats/pngsuite-basn6a08.png", NULL);
	struct imgnode_geometry p;

	(void)state;
	predicted_apply("resize", photo, "scale=0.37", END);
	predicted_apply("resize", photo, "scale=2.5", END);
	predicted_apply("resize", rgba, "scale=3.3", END);
	predicted_apply("resize", rgba, "scale=0.001", END);
	predicted_apply("crop", photo, "left=3", "top=4", "width=50",
	                "height=20", END);
	predicted_apply("smartcrop", photo, "width=100", "height=5000", END);
	predicted_apply("rotate", photo, "angle=90", END);
	predicted_apply("rotate", photo, "angle=180", END);
	p = predicted_apply("autorotate", turned, END);
	assert_int_equal(p.orientation, 1);
	assert_int_equal(p.width, turned->Ysize);
	predicted_apply("strip", turned, END);
	predicted_apply("grayscale", photo, END);
	predicted_apply("grayscale", rgba, END);
	predicted_apply("watermark", photo, "text=hi", END);
	/* filters without the hook keep the shape, which the host assumes */
	assert_null(ops_of("blur")->predict);
	assert_null(ops_of("sharpen")->predict);
	assert_null(ops_of("flip")->predict);
	g_object_unref(rgba);
	g_object_unref(turned);
	g_object_unref(photo);
}

/*
 * watermark's work is the text block vips_text draws (before it is cut to
 * the image): the estimate is never smaller than the real block.
 */
static void test_predict_watermark_text(void **state)
{
	static const char *const texts[] = {
	        "hi",
	        "imgnode © 2026",
	        "WW WW WW WW WW WW WW WW WW WW WW WW",
	        "iiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii",
	        "MMMMMMMMMMMMMMMMMMMMMMMMMMMMMM",
	        "one\ntwo\nthree\nfour",
	        "æ¼¢å­æ¼¢å­æ¼¢"
	        "å­æ¼¢å­æ¼¢å­",
	        "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed "
	        "do eiusmod tempor incididunt ut labore et dolore magna"};
	static const int sizes[] = {12, 40, 100};
	struct filter *f = filter_of("watermark");

	(void)state;
	for (size_t t = 0; t < sizeof(texts) / sizeof(texts[0]); t++)
		for (size_t z = 0; z < 3; z++) {
			struct imgnode_geometry in = {600, 400, 3, 1, 1,
			                              0,   0,   0, 1};
			union imgnode_value v[4] = {{.s = texts[t]},
			                            {.n = 0.5},
			                            {.e = 0},
			                            {.i = sizes[z]}};
			struct imgnode_geometry p = predict_with(f, &in, v);
			int margin = sizes[z] / 2;
			char *markup = filter_markup_escape(texts[t]);
			char font[64];
			VipsImage *text;

			snprintf(font, sizeof(font), "sans bold %d", sizes[z]);
			assert_int_equal(vips_text(&text, markup, "font", font,
			                           "dpi", 72, "width",
			                           600 - 2 * margin, NULL),
			                 0);
			if (p.work_width < text->Xsize + 2 * margin ||
			    p.work_height < text->Ysize + 2 * margin)
				fail_msg(
				        "\"%s\" at %d: predicted %lldx%lld, drawn %dx%d",
				        texts[t], sizes[z],
				        (long long)p.work_width,
				        (long long)p.work_height,
				        text->Xsize + 2 * margin,
				        text->Ysize + 2 * margin);
			assert_int_equal(p.width, 600);
			g_object_unref(text);
			g_free(markup);
		}
}

/* png(compression=0) holds every pixel: its least size is known. */
static void test_predict_png_bytes(void **state)
{
	VipsImage *photo = open_image("photos/bridge.jpg", "shrink=8");
	VipsImage *rgba16 = open_image("formats/pngsuite-basn6a16.png", NULL);
	VipsImage *imgs[] = {photo, rgba16};
	struct filter *f = filter_of("png");

	(void)state;
	for (size_t i = 0; i < 2; i++) {
		struct imgnode_geometry g = geometry_of(imgs[i]), p;
		/* compression, palette, colours (256) */
		union imgnode_value v[3] = {{.i = 0}, {.b = false}, {.e = 3}};
		char err[512];
		void *buf;
		size_t len;

		p = predict_with(f, &g, v);
		assert_int_equal(f->ops->encode(f->state, imgs[i], v, &buf,
		                                &len, err, sizeof(err)),
		                 0);
		if (p.min_bytes > (int64_t)len ||
		    (int64_t)len > p.min_bytes + p.min_bytes / 50 + 4096)
			fail_msg(
			        "png(compression=0) of %dx%d: predicted %lld bytes, made %zu",
			        imgs[i]->Xsize, imgs[i]->Ysize,
			        (long long)p.min_bytes, len);
		g_free(buf);
		v[0].i = 6;
		assert_int_equal(predict_with(f, &g, v).min_bytes, 0);
	}
	g_object_unref(rgba16);
	g_object_unref(photo);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_teardown(test_descriptors, no_leaks),
	        cmocka_unit_test_teardown(test_thumbnail_load, no_leaks),
	        cmocka_unit_test_teardown(test_thumbnail_apply, no_leaks),
	        cmocka_unit_test_teardown(test_animation, no_leaks),
	        cmocka_unit_test_teardown(test_truncated, no_leaks),
	        cmocka_unit_test_teardown(test_not_an_image, no_leaks),
	        cmocka_unit_test_teardown(test_crop, no_leaks),
	        cmocka_unit_test_teardown(test_rotate_flip, no_leaks),
	        cmocka_unit_test_teardown(test_autorotate, no_leaks),
	        cmocka_unit_test_teardown(test_grayscale, no_leaks),
	        cmocka_unit_test_teardown(test_strip, no_leaks),
	        cmocka_unit_test_teardown(test_icc_only, no_leaks),
	        cmocka_unit_test_teardown(test_watermark, no_leaks),
	        cmocka_unit_test_teardown(test_encoders, no_leaks),
	        cmocka_unit_test_teardown(test_smartcrop, no_leaks),
	        cmocka_unit_test_teardown(test_resize_blur_sharpen, no_leaks),
	        cmocka_unit_test_teardown(test_predict_thumbnail, no_leaks),
	        cmocka_unit_test_teardown(test_predict_filters, no_leaks),
	        cmocka_unit_test_teardown(test_predict_watermark_text,
	                                  no_leaks),
	        cmocka_unit_test_teardown(test_predict_png_bytes, no_leaks),
	};

	return cmocka_run_group_tests(tests, setup, filterkit_teardown);
}
