/*
 * Format negotiation (core/node/negotiate.c): Accept parsing with q-values,
 * wildcards and q=0 exclusions; the choice of encoder for `auto` from the
 * Accept text, the image and [formats]; and the rewrite of a pipeline's
 * auto step, against the real filter plugins ($BUILD/plugins).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "node/image_info.h"
#include "node/negotiate.h"
#include "node/pipeline.h"
#include "plugin.h"

#define ALL                                                                    \
	(1u << NEGOTIATE_AVIF | 1u << NEGOTIATE_WEBP | 1u << NEGOTIATE_JPEG |  \
	 1u << NEGOTIATE_PNG | 1u << NEGOTIATE_GIF)

/* What Chrome, Firefox and Safari send for an <img>, and curl. */
#define CHROME                                                                 \
	"image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
#define FIREFOX "image/avif,image/webp,*/*"
#define SAFARI                                                                 \
	"image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
#define CURL "*/*"

static const struct formats_conf fc = {
        .avif_quality = 45,
        .webp_quality = 75,
        .jpeg_quality = 82,
        .auto_avif = true,
};
static const struct negotiate_image photo = {false, false};
static const struct negotiate_image alpha = {true, false};
static const struct negotiate_image anim = {false, true};

/* The step auto becomes. */
static const char *pick(const char *accept, const struct negotiate_image *img,
                        const struct formats_conf *c, unsigned available)
{
	static char step[64];

	if (negotiate_encoder(accept, img, c, available, step, sizeof(step)) <
	    0)
		return "(none)";
	return step;
}

static void test_accept_q(void **state)
{
	bool exact;

	(void)state;
	assert_int_equal(negotiate_accept_q(NULL, "image/webp", &exact), -1);
	assert_int_equal(negotiate_accept_q("", "image/webp", &exact), -1);
	assert_int_equal(negotiate_accept_q("image/webp", "image/webp", &exact),
	                 1000);
	assert_true(exact);
	/* case, spaces, parameters and q with up to three decimals */
	assert_int_equal(negotiate_accept_q(" Image/WebP ; charset=x ;q=0.5 ",
	                                    "image/webp", &exact),
	                 500);
	assert_int_equal(
	        negotiate_accept_q("image/webp;q=0.125", "image/webp", NULL),
	        125);
	assert_int_equal(
	        negotiate_accept_q("image/webp;q=1.0", "image/webp", NULL),
	        1000);
	/* wildcards match, less specifically, and say so */
	assert_int_equal(negotiate_accept_q("*/*;q=0.3", "image/jpeg", &exact),
	                 300);
	assert_false(exact);
	assert_int_equal(negotiate_accept_q("text/*,image/*;q=0.4,*/*;q=0.1",
	                                    "image/png", &exact),
	                 400);
	assert_false(exact);
	/* the most specific range wins, wherever it is in the list */
	assert_int_equal(negotiate_accept_q("image/webp;q=0.2,image/*,*/*",
	                                    "image/webp", &exact),
	                 200);
	assert_true(exact);
	assert_int_equal(
	        negotiate_accept_q("*/*,image/avif;q=0", "image/avif", &exact),
	        0);
	/* no match: other types, prefixes and near names */
	assert_int_equal(negotiate_accept_q("text/html,image/webpx,image/web",
	                                    "image/webp", NULL),
	                 -1);
	assert_int_equal(negotiate_accept_q("image", "image/webp", NULL), -1);
	/* a malformed q skips its range, not the header */
	assert_int_equal(negotiate_accept_q("image/webp;q=2,*/*;q=0.7",
	                                    "image/webp", &exact),
	                 700);
	assert_int_equal(
	        negotiate_accept_q("image/webp;q=abc", "image/webp", NULL), -1);
	assert_int_equal(
	        negotiate_accept_q("image/webp;q=0.1234", "image/webp", NULL),
	        -1);
}

static void test_browsers(void **state)
{
	(void)state;
	assert_string_equal(pick(CHROME, &photo, &fc, ALL), "avif(q=45)");
	assert_string_equal(pick(FIREFOX, &photo, &fc, ALL), "avif(q=45)");
	assert_string_equal(pick(SAFARI, &photo, &fc, ALL), "webp(q=75)");
	assert_string_equal(pick(SAFARI, &alpha, &fc, ALL), "webp(q=75)");
	/* curl and old browsers: a wildcard is no promise of AVIF or WebP */
	assert_string_equal(pick(CURL, &photo, &fc, ALL), "jpeg(q=82)");
	assert_string_equal(pick("image/*", &alpha, &fc, ALL), "png");
	assert_string_equal(pick(CURL, &anim, &fc, ALL), "gif");
}

static void test_image_alone(void **state)
{
	(void)state;
	/* no Accept (imgnodectl process, submit without one) */
	assert_string_equal(pick(NULL, &photo, &fc, ALL), "jpeg(q=82)");
	assert_string_equal(pick(NULL, &alpha, &fc, ALL), "png");
	assert_string_equal(pick(NULL, &anim, &fc, ALL), "gif");
	/* an Accept that takes none of them: the image decides too */
	assert_string_equal(pick("text/html", &photo, &fc, ALL), "jpeg(q=82)");
	assert_string_equal(pick("image/jpeg;q=0", &photo, &fc, ALL),
	                    "jpeg(q=82)");
}

static void test_rules(void **state)
{
	struct formats_conf no_avif = fc;

	(void)state;
	/* alpha never goes to JPEG */
	assert_string_equal(pick("image/jpeg", &alpha, &fc, ALL), "png");
	assert_string_equal(
	        pick("image/jpeg,image/webp;q=0.1", &alpha, &fc, ALL),
	        "webp(q=75)");
	/* animations: WebP if named, else GIF; never AVIF */
	assert_string_equal(pick("image/avif,image/webp", &anim, &fc, ALL),
	                    "webp(q=75)");
	assert_string_equal(pick("image/avif", &anim, &fc, ALL), "gif");
	/* the highest q wins; ties go to the smaller format */
	assert_string_equal(pick("image/avif;q=0.5,image/webp;q=0.9,*/*;q=0.8",
	                         &photo, &fc, ALL),
	                    "webp(q=75)");
	/* a wildcard's q counts for JPEG: here the client prefers it */
	assert_string_equal(pick("image/webp;q=0.9,*/*", &photo, &fc, ALL),
	                    "jpeg(q=82)");
	assert_string_equal(
	        pick("image/avif;q=0.1,image/jpeg", &photo, &fc, ALL),
	        "jpeg(q=82)");
	assert_string_equal(pick("image/webp,image/avif", &photo, &fc, ALL),
	                    "avif(q=45)");
	/* q=0 excludes */
	assert_string_equal(pick("image/avif;q=0,image/webp", &photo, &fc, ALL),
	                    "webp(q=75)");
	assert_string_equal(
	        pick("image/webp;q=0,image/avif;q=0,*/*", &photo, &fc, ALL),
	        "jpeg(q=82)");
	/* auto_avif = no, or no avif plugin: WebP at best */
	no_avif.auto_avif = false;
	assert_string_equal(pick(CHROME, &photo, &no_avif, ALL), "webp(q=75)");
	assert_string_equal(
	        pick(CHROME, &photo, &fc, ALL & ~(1u << NEGOTIATE_AVIF)),
	        "webp(q=75)");
	/* only what is loaded; nothing loaded is an error */
	assert_string_equal(pick(NULL, &photo, &fc, 1u << NEGOTIATE_WEBP),
	                    "webp(q=75)");
	assert_string_equal(pick(CHROME, &photo, &fc, 0), "(none)");
}

/* The rewrite, with the real plugins. */
static void test_pipeline(void **state)
{
	const char *build = getenv("BUILD");
	struct plugin_set set = {0};
	struct image_info photo_info = {.format = "jpeg",
	                                .width = 640,
	                                .height = 480,
	                                .pages = 1,
	                                .bands = 3,
	                                .band_bytes = 1,
	                                .orientation = 1};
	struct image_info rgba = photo_info;
	struct pipeline *pl, *same;
	char dir[1024], err[512];

	(void)state;
	rgba.bands = 4;
	snprintf(dir, sizeof(dir), "%s/plugins",
	         build && *build ? build : "build");
	assert_int_equal(plugin_set_load(&set, dir, err, sizeof(err)), 0);

	pl = pipeline_parse("thumbnail(200) | sharpen | auto", &set, err,
	                    sizeof(err));
	assert_non_null(pl);
	assert_true(negotiate_wanted(pl));
	assert_int_equal(negotiate_pipeline(&pl, &set, SAFARI, &photo_info, &fc,
	                                    err, sizeof(err)),
	                 0);
	assert_false(negotiate_wanted(pl));
	assert_non_null(strstr(pl->canonical, "|webp("));
	assert_non_null(strstr(pl->canonical, "q=75"));
	assert_string_equal(pl->steps[pl->n - 1].name, "webp");
	/* the text is canonical already: parsing it again changes nothing */
	same = pipeline_parse(pl->canonical, &set, err, sizeof(err));
	assert_non_null(same);
	assert_string_equal(same->canonical, pl->canonical);
	pipeline_free(same);
	pipeline_free(pl);

	pl = pipeline_parse("auto", &set, err, sizeof(err));
	assert_non_null(pl);
	assert_int_equal(negotiate_pipeline(&pl, &set, NULL, &rgba, &fc, err,
	                                    sizeof(err)),
	                 0);
	assert_string_equal(pl->steps[0].name, "png");
	pipeline_free(pl);

	/* without auto, nothing changes */
	pl = pipeline_parse("thumbnail(200)|jpeg(q=90)", &set, err,
	                    sizeof(err));
	assert_non_null(pl);
	same = pl;
	assert_int_equal(negotiate_pipeline(&pl, &set, CHROME, &photo_info, &fc,
	                                    err, sizeof(err)),
	                 0);
	assert_ptr_equal(pl, same);
	pipeline_free(pl);
	plugin_set_free(&set);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_accept_q),
	        cmocka_unit_test(test_browsers),
	        cmocka_unit_test(test_image_alone),
	        cmocka_unit_test(test_rules),
	        cmocka_unit_test(test_pipeline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
