/*
 * Tests of renditions (core/node/renditions.c) and of sequential access
 * (image.c, IMGNODE_FILTER_SEQUENTIAL), with the real filter plugins of
 * $BUILD/plugins on real images of the corpus ($IMGNODE_CORPUS, else
 * build/corpus): splitting ?renditions=, picking an output of a record,
 * every output made from one decode with the sizes single jobs make, and
 * outputs byte for byte the same with and without sequential access.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vips/vips.h>

#include "config.h"
#include "filterkit.h"
#include "node/image.h"
#include "node/node_conf.h"
#include "node/pipeline.h"
#include "node/renditions.h"
#include "plugin.h"

static struct plugin_set set;
static struct conf *conf;
static struct limits_conf lim; /* the defaults */

static void test_split(void **state)
{
	char **parts, err[256];
	int n;

	(void)state;
	n = renditions_split(" png ; watermark(\"a;b\\\";c\")|jpeg;webp", 8,
	                     &parts, err, sizeof(err));
	assert_int_equal(n, 3);
	assert_string_equal(parts[0], "png");
	assert_string_equal(parts[1], "watermark(\"a;b\\\";c\")|jpeg");
	assert_string_equal(parts[2], "webp");
	renditions_parts_free(parts, (size_t)n);
	n = renditions_split("png", 1, &parts, err, sizeof(err));
	assert_int_equal(n, 1);
	renditions_parts_free(parts, (size_t)n);
	assert_int_equal(
	        renditions_split("png;png", 1, &parts, err, sizeof(err)),
	        -E2BIG);
	assert_non_null(strstr(err, "max_renditions"));
	assert_int_equal(
	        renditions_split("png; ;png", 8, &parts, err, sizeof(err)),
	        -EINVAL);
	assert_string_equal(err, "rendition 2 is empty");
	assert_int_equal(renditions_split("png;", 8, &parts, err, sizeof(err)),
	                 -EINVAL);
}

static void test_pick(void **state)
{
	json_t *single = json_pack("{s:s}", "result", "out/a");
	json_t *rec = json_pack("{s:[s,s], s:s, s:[{s:s, s:s}, {s:s, s:s}]}",
	                        "renditions", "png", "jpeg", "result", "out/a",
	                        "results", "key", "out/a", "mime", "image/png",
	                        "key", "out/b", "mime", "image/jpeg");

	(void)state;
	assert_int_equal(renditions_count(single), 0);
	assert_int_equal(renditions_pick(single, 0), 0);
	assert_int_equal(renditions_pick(single, 1), -ENOENT);
	assert_int_equal(renditions_count(rec), 2);
	assert_int_equal(renditions_pick(rec, 2), -ENOENT);
	assert_int_equal(renditions_pick(rec, 1), 0);
	assert_string_equal(json_string_value(json_object_get(rec, "result")),
	                    "out/b");
	assert_string_equal(json_string_value(json_object_get(
	                            json_object_get(rec, "output"), "mime")),
	                    "image/jpeg");
	json_decref(single);
	json_decref(rec);
}

/*
 * pipeline texts on rel, each made alone (image_run) and as renditions
 * of one job: the same formats and sizes, up to slack pixels (a thumbnail
 * derived from the shared decode rounds as predict does, where a
 * loader's shrink-on-load may make one pixel less), and one decode.
 */
static void check_renditions(const char *rel, const char *const *texts,
                             size_t n, int slack)
{
	struct rendition rs[8] = {{0}};
	struct image_info info;
	char err[1024];
	size_t len;
	char *buf = read_corpus(rel, &len);
	int decodes = -1;

	assert_int_equal(image_probe(buf, len, &lim, &info, err, sizeof(err)),
	                 0);
	for (size_t i = 0; i < n; i++)
		rs[i].pl = parse_in(&set, texts[i]);
	if (renditions_run(rs, n, &set, buf, len, &info, &lim, &decodes, err,
	                   sizeof(err)))
		fail_msg("%s: %s", rel, err);
	assert_int_equal(decodes, 1);
	for (size_t i = 0; i < n; i++) {
		struct image_out alone;

		if (image_run(rs[i].pl, &set, buf, len, &info, &lim, &alone,
		              err, sizeof(err)))
			fail_msg("%s alone: %s", texts[i], err);
		if (abs(alone.width - rs[i].out.width) > slack ||
		    abs(alone.height - rs[i].out.height) > slack ||
		    strcmp(alone.format, rs[i].out.format) != 0)
			fail_msg("%s: alone %dx%d %s, as a rendition %dx%d %s",
			         texts[i], alone.width, alone.height,
			         alone.format, rs[i].out.width,
			         rs[i].out.height, rs[i].out.format);
		image_out_free(&alone);
	}
	renditions_out_free(rs, n);
	for (size_t i = 0; i < n; i++)
		pipeline_free(rs[i].pl);
	g_free(buf);
}

static void test_outputs_match_single_jobs(void **state)
{
	const char *const thumbs[] = {
	        "thumbnail(300)|webp", "thumbnail(120, crop=centre)|jpeg",
	        "thumbnail(64)|png", "thumbnail(50, 80)|webp",
	        /* a loading step that does not keep the aspect ratio */
	        "resize(60, 200, fit=fill)|png"};
	const char *const mixed[] = {"sharpen|png", "thumbnail(50)|jpeg",
	                             "grayscale", "rotate(90)|thumbnail(40)"};

	(void)state;
	check_renditions("photos/kleiber.jpg", thumbs, 5, 1);
	check_renditions("formats/jpeg-exif-orient6.jpg", thumbs, 5, 1);
	check_renditions("formats/jpeg-gray.jpg", thumbs, 5, 1);
	check_renditions("formats/jpeg-gray.jpg", mixed, 4, 1);
	check_renditions("formats/pngsuite-basn6a08.png", mixed, 4, 1);
}

static void test_stored_outputs_are_not_made(void **state)
{
	struct rendition rs[2] = {{0}};
	struct image_info info;
	char err[512];
	size_t len;
	char *buf = read_corpus("formats/jpeg-gray.jpg", &len);
	int decodes = -1;

	(void)state;
	assert_int_equal(image_probe(buf, len, &lim, &info, err, sizeof(err)),
	                 0);
	rs[0].pl = parse_in(&set, "thumbnail(20)|png");
	rs[1].pl = parse_in(&set, "thumbnail(30)|png");
	rs[0].stored = rs[1].stored = true;
	assert_int_equal(renditions_run(rs, 2, &set, buf, len, &info, &lim,
	                                &decodes, err, sizeof(err)),
	                 0);
	assert_int_equal(decodes, 0);
	assert_null(rs[0].out.buf);
	rs[1].stored = false; /* the cost check names the rendition */
	lim.max_pixels = 10;
	assert_int_equal(renditions_run(rs, 2, &set, buf, len, &info, &lim,
	                                &decodes, err, sizeof(err)),
	                 -E2BIG);
	lim.max_pixels = 100000000;
	assert_non_null(strstr(err, "rendition 2 thumbnail("));
	assert_int_equal(decodes, 0);
	pipeline_free(rs[0].pl);
	pipeline_free(rs[1].pl);
	g_free(buf);
}

/* text on rel with and without sequential access: the same bytes, and
 * sequential access used when want says it may be. */
static void check_sequential(const char *rel, const char *text, bool want)
{
	struct image_out seq, rnd;
	struct image_info info;
	struct pipeline *pl = parse_in(&set, text);
	char err[512];
	size_t len;
	char *buf = read_corpus(rel, &len);

	assert_int_equal(image_probe(buf, len, &lim, &info, err, sizeof(err)),
	                 0);
	image_set_sequential(true);
	if (image_sequential_ok(pl, &set, 0, &info, &lim) != want)
		fail_msg("%s on %s: sequential access %s", text, rel,
		         want ? "not used" : "used");
	if (image_run(pl, &set, buf, len, &info, &lim, &seq, err, sizeof(err)))
		fail_msg("%s on %s, sequential: %s", text, rel, err);
	image_set_sequential(false);
	assert_false(image_sequential_ok(pl, &set, 0, &info, &lim));
	if (image_run(pl, &set, buf, len, &info, &lim, &rnd, err, sizeof(err)))
		fail_msg("%s on %s, random: %s", text, rel, err);
	image_set_sequential(true);
	if (seq.len != rnd.len || memcmp(seq.buf, rnd.buf, seq.len) != 0)
		fail_msg("%s on %s: %zu bytes sequential, %zu random, differ",
		         text, rel, seq.len, rnd.len);
	image_out_free(&seq);
	image_out_free(&rnd);
	pipeline_free(pl);
	g_free(buf);
}

static void test_sequential_same_output(void **state)
{
	(void)state;
	check_sequential("photos/kleiber.jpg", "sharpen|grayscale|webp", true);
	check_sequential("formats/jpeg-gray.jpg",
	                 "blur(2)|crop(10, 20, 300, 200)|png", true);
	check_sequential("formats/png-icc-rgba.png",
	                 "sepia|strip|watermark(hi)|jpeg", true);
	check_sequential("formats/pngsuite-basn6a08.png", "blur(1)", true);
	check_sequential("formats/jpeg-gray.jpg", "grayscale|tiff", true);
	check_sequential("formats/gif-anim-17x17.gif", "grayscale|gif", true);
	check_sequential("formats/gif-anim-party.gif",
	                 "crop(10,10,60,40)|sharpen|webp", true);
	check_sequential("formats/pngsuite-basn6a08.png", "sharpen|avif", true);
	/* steps that read out of order, and an EXIF turn: random access */
	check_sequential("formats/jpeg-gray.jpg", "rotate(90)|png", false);
	check_sequential("formats/jpeg-gray.jpg", "flip(vertical)|png", false);
	check_sequential("formats/jpeg-exif-orient6.jpg", "sharpen|png", false);
}

static int setup(void **state)
{
	const char *build = getenv("BUILD");
	char path[1200], err[512], ini[] = "/tmp/imgnode-renditions-XXXXXX";
	int fd;

	(void)state;
	if (filterkit_corpus("photos/kleiber.jpg"))
		return -1;
	if (image_init(1, err, sizeof(err))) {
		fprintf(stderr, "image_init: %s\n", err);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/plugins", build ? build : "build");
	if (plugin_set_load(&set, path, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	/* the defaults of every key: the limits and the filters' sections */
	fd = mkstemp(ini);
	if (fd < 0 || close(fd))
		return -1;
	node_conf_register();
	conf = conf_load(ini, err, sizeof(err));
	unlink(ini);
	if (!conf || plugin_set_configure(&set, conf, err, sizeof(err))) {
		fprintf(stderr, "config: %s\n", err);
		return -1;
	}
	for (struct plugin *p = set.head; p; p = p->next)
		if (p->desc->kind == IMGNODE_KIND_FILTER &&
		    plugin_start(p, err, sizeof(err))) {
			fprintf(stderr, "%s: %s\n", p->desc->name, err);
			return -1;
		}
	lim = conf->app->limits;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	plugin_set_free(&set);
	conf_free(conf);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_split),
	        cmocka_unit_test(test_pick),
	        cmocka_unit_test(test_outputs_match_single_jobs),
	        cmocka_unit_test(test_stored_outputs_are_not_made),
	        cmocka_unit_test(test_sequential_same_output),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
