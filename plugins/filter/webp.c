/*
 * webp([q][, lossless]): the WebP encoder, last in a pipeline. It runs the
 * pipeline once into one buffer (vips_webpsave_buffer), keeping alpha and
 * animation (an image loaded with all its pages). It writes what metadata
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

enum { ARG_Q, ARG_LOSSLESS };

static const struct imgnode_arg args[] = {
        {"q", IMGNODE_ARG_INT, "80", 1, 100, NULL,
         "Quality of lossy WebP: 1 is smallest, 100 best."},
        {"lossless", IMGNODE_ARG_BOOL, "false", 0, 0, NULL,
         "Lossless WebP (q is then ignored)."},
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

static int webp_encode(void *state, VipsImage *in,
                       const union imgnode_value *args, void **buf, size_t *len,
                       char *err, size_t errlen)
{
	(void)state;
	filter_start();
	if (vips_webpsave_buffer(in, buf, len, "Q", (int)args[ARG_Q].i,
	                         "lossless", args[ARG_LOSSLESS].b, "strip",
	                         filter_stripped(in), NULL))
		return filter_fail(err, errlen, "unable to encode");
	if (filter_stripped(in) || filter_icc_only(in))
		drop_metadata_chunks(*buf, len);
	return 0;
}

static int webp_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {{.i = 80}, {.b = false}};

	(void)state;
	return filter_selftest_encode(webp_encode, a, "webp", err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_ENCODER | IMGNODE_FILTER_SEQUENTIAL,
        .encode = webp_encode,
        .mime = "image/webp",
        .format = "webp",
        .selftest = webp_selftest,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "webp",
        .version = "1.0",
        .description = "Encode as WebP, lossy or lossless.",
        .ops = &ops,
};
