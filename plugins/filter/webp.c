/*
 * webp([q][, lossless][, effort][, near_lossless][, smart_subsample]
 *      [, max_bytes]): the WebP encoder, last in a pipeline. It runs the
 * pipeline once into one buffer (vips_webpsave_buffer), keeping alpha and
 * animation (an image loaded with all its pages). effort trades encoding
 * time for size (0 fastest, 6 smallest); near_lossless is lossless coding
 * after a preprocessing whose strength q sets; smart_subsample keeps
 * colour edges sharper (slower); max_bytes searches the highest quality
 * up to q that fits (fit.h; not with lossless). It writes what metadata
 * the image still has (EXIF, XMP, ICC), none if strip ran, and only the
 * ICC profile if the host stripped the rest (the default).
 *
 * libvips 8.14.1 (Debian 12) ignores strip=TRUE in webpsave (fixed in
 * 8.14.2) and writes an EXIF block it builds from the image header even
 * when the image has no metadata left, so after strip, or when the host
 * stripped the image, this plugin removes the EXIF and XMP chunks from the
 * file itself.
 */
#include <stdint.h>
#include <string.h>

#include <vips/vips.h>

#include "filter.h"
#include "fit.h"

enum {
	ARG_Q,
	ARG_LOSSLESS,
	ARG_EFFORT,
	ARG_NEAR_LOSSLESS,
	ARG_SMART_SUBSAMPLE,
	ARG_MAX_BYTES
};

static const struct imgnode_arg args[] = {
        {"q", IMGNODE_ARG_INT, "80", 1, 100, NULL,
         "Quality of lossy WebP: 1 is smallest, 100 best."},
        {"lossless", IMGNODE_ARG_BOOL, "false", 0, 0, NULL,
         "Lossless WebP (q is then ignored)."},
        {"effort", IMGNODE_ARG_INT, "4", 0, 6, NULL,
         "CPU effort to make the file smaller: 0 fastest, 6 smallest."},
        {"near_lossless", IMGNODE_ARG_BOOL, "false", 0, 0, NULL,
         "Lossless coding after a preprocessing whose strength q sets (100: none)."},
        {"smart_subsample", IMGNODE_ARG_BOOL, "false", 0, 0, NULL,
         "Sharper colour edges in lossy WebP (slower)."},
        {"max_bytes", IMGNODE_ARG_INT, "0", 0, FIT_MAX_BYTES, NULL,
         "At most this many bytes: the highest quality up to q that fits (0: no limit; lossy only)."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static uint32_t get_le32(const unsigned char *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

/*
 * Removes the EXIF and XMP chunks from the RIFF container of a WebP file
 * in buf, in place, and clears their flags in the VP8X header; *len
 * shrinks. A malformed file is left as far as it can be parsed.
 */
static void drop_metadata_chunks(unsigned char *buf, size_t *len)
{
	size_t pos = 12, end = *len;
	unsigned char *vp8x = NULL;

	if (end < 12 || memcmp(buf, "RIFF", 4) || memcmp(buf + 8, "WEBP", 4))
		return;
	while (pos + 8 <= end) {
		uint32_t size = get_le32(buf + pos + 4);
		size_t chunk = 8 + (size_t)size + (size & 1);
		if (chunk > end - pos)
			break;
		if (!memcmp(buf + pos, "EXIF", 4) ||
		    !memcmp(buf + pos, "XMP ", 4)) {
			memmove(buf + pos, buf + pos + chunk,
			        end - pos - chunk);
			end -= chunk;
			continue;
		}
		if (!memcmp(buf + pos, "VP8X", 4) && size >= 10)
			vp8x = buf + pos + 8;
		pos += chunk;
	}
	if (vp8x)
		vp8x[0] &= (unsigned char)~(0x08 | 0x04); /* EXIF, XMP flags */
	put_le32(buf + 4, (uint32_t)(end - 8));
	*len = end;
}

/* max_bytes searches the quality: lossy WebP only. */
static int check_args(const union imgnode_value *args, char *err, size_t errlen)
{
	if (!args[ARG_MAX_BYTES].i ||
	    !(args[ARG_LOSSLESS].b || args[ARG_NEAR_LOSSLESS].b))
		return 0;
	snprintf(err, errlen,
	         "max_bytes works on lossy WebP only, not with %s=true",
	         args[ARG_LOSSLESS].b ? "lossless" : "near_lossless");
	return -EINVAL;
}

/* One encode at quality q (fit_save_fn). */
static int webp_save(VipsImage *in, const union imgnode_value *args, int q,
                     void **buf, size_t *len, char *err, size_t errlen)
{
	if (vips_webpsave_buffer(in, buf, len, "Q", q, "lossless",
	                         args[ARG_LOSSLESS].b, "effort",
	                         (int)args[ARG_EFFORT].i, "near_lossless",
	                         args[ARG_NEAR_LOSSLESS].b, "smart_subsample",
	                         args[ARG_SMART_SUBSAMPLE].b, "strip",
	                         filter_stripped(in), NULL))
		return filter_fail(err, errlen, "unable to encode");
	if (filter_stripped(in) || filter_icc_only(in))
		drop_metadata_chunks(*buf, len);
	return 0;
}

static int webp_encode(void *state, VipsImage *in,
                       const union imgnode_value *args, void **buf, size_t *len,
                       char *err, size_t errlen)
{
	int r;

	(void)state;
	filter_start();
	if ((r = check_args(args, err, errlen)))
		return r;
	return fit_encode(in, args, (int)args[ARG_Q].i, args[ARG_MAX_BYTES].i,
	                  webp_save, buf, len, err, errlen);
}

/* Refuses max_bytes with lossless at submission; the shape is kept. */
static int webp_predict(void *state, const struct imgnode_geometry *in,
                        const union imgnode_value *args,
                        struct imgnode_geometry *out, char *err, size_t errlen)
{
	(void)state, (void)in, (void)out;
	return check_args(args, err, errlen);
}

static int webp_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.i = 80},    {.b = false}, {.i = 4},
	                                 {.b = false}, {.b = true},  {.i = 0}};

	(void)state;
	return filter_selftest_encode(webp_encode, a, "webp", err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_ENCODER | IMGNODE_FILTER_FRAMES |
                 IMGNODE_FILTER_SEQUENTIAL,
        .encode = webp_encode,
        .mime = "image/webp",
        .format = "webp",
        .selftest = webp_selftest,
        .predict = webp_predict,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "webp",
        .version = "1.0",
        .description = "Encode as WebP, lossy or lossless.",
        .ops = &ops,
};
