/*
 * jpeg([q][, progressive][, subsample][, optimize_coding][, max_bytes]):
 * the JPEG encoder, last in a pipeline. It runs the pipeline once into one
 * buffer (vips_jpegsave_buffer). subsample=auto halves the chroma
 * resolution (4:2:0) below q=90, as libvips does; on and off force it.
 * optimize_coding computes Huffman tables for the image (a few percent
 * smaller, a little slower). max_bytes searches the highest quality up to
 * q that fits (fit.h). mozjpeg's trellis quantisation is not offered: the
 * libvips of Debian 12 is built on libjpeg-turbo and ignores it ("ignoring
 * trellis_quant"). It writes what
 * metadata the image still has (EXIF, XMP, IPTC, ICC), none if strip ran,
 * and only the ICC profile if the host stripped the rest (the default):
 * libvips 8.14 then still writes an EXIF block it builds from the header
 * (resolution, orientation 1), which this plugin cuts out of the file.
 * JPEG has no alpha: an alpha band is flattened onto white, as transparent
 * pixels usually show on web pages, rather than libvips' default black.
 */
#include <string.h>

#include <vips/vips.h>

#include "filter.h"
#include "fit.h"

enum {
	ARG_Q,
	ARG_PROGRESSIVE,
	ARG_SUBSAMPLE,
	ARG_OPTIMIZE_CODING,
	ARG_MAX_BYTES
};

static const char *const subsamples[] = {"auto", "on", "off", NULL};
static const VipsForeignSubsample subsample_modes[] = {
        VIPS_FOREIGN_SUBSAMPLE_AUTO, VIPS_FOREIGN_SUBSAMPLE_ON,
        VIPS_FOREIGN_SUBSAMPLE_OFF};

static const struct imgnode_arg args[] = {
        {"q", IMGNODE_ARG_INT, "80", 1, 100, NULL,
         "Quality: 1 is smallest, 100 best."},
        {"progressive", IMGNODE_ARG_BOOL, "false", 0, 0, NULL,
         "Progressive (interlaced) JPEG."},
        {"subsample", IMGNODE_ARG_ENUM, "auto", 0, 0, subsamples,
         "Chroma subsampling (4:2:0): auto (below q=90), on or off."},
        {"optimize_coding", IMGNODE_ARG_BOOL, "false", 0, 0, NULL,
         "Huffman tables computed for the image: a little smaller."},
        {"max_bytes", IMGNODE_ARG_INT, "0", 0, FIT_MAX_BYTES, NULL,
         "At most this many bytes: the highest quality up to q that fits (0: no limit)."},
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

/*
 * Removes the EXIF segments (APP1 "Exif\0\0") before the first scan of the
 * JPEG file in buf, in place; *len shrinks. A malformed file is left as far
 * as it can be parsed.
 */
static void drop_exif(unsigned char *buf, size_t *len)
{
	size_t pos = 2, end = *len;

	if (end < 4 || buf[0] != 0xff || buf[1] != 0xd8)
		return;
	while (pos + 4 <= end && buf[pos] == 0xff) {
		unsigned char marker = buf[pos + 1];
		size_t seg;

		if (marker == 0xff) { /* fill byte */
			pos++;
			continue;
		}
		if (marker == 0xda || marker == 0xd9) /* SOS, EOI */
			return;
		if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
			pos += 2; /* no length */
			continue;
		}
		seg = 2 + ((size_t)buf[pos + 2] << 8 | buf[pos + 3]);
		if (seg < 4 || seg > end - pos)
			return;
		if (marker == 0xe1 && seg >= 10 &&
		    !memcmp(buf + pos + 4, "Exif\0\0", 6)) {
			memmove(buf + pos, buf + pos + seg, end - pos - seg);
			end -= seg;
			*len = end;
			continue;
		}
		pos += seg;
	}
}

/* One encode at quality q (fit_save_fn). */
static int jpeg_save(VipsImage *in, const union imgnode_value *args, int q,
                     void **buf, size_t *len, char *err, size_t errlen)
{
	double white = in->BandFmt == VIPS_FORMAT_USHORT ? 65535 : 255;
	VipsArrayDouble *background = vips_array_double_newv(1, white);
	int r;

	r = vips_jpegsave_buffer(
	        in, buf, len, "Q", q, "interlace", args[ARG_PROGRESSIVE].b,
	        "subsample_mode", subsample_modes[args[ARG_SUBSAMPLE].e],
	        "optimize_coding", args[ARG_OPTIMIZE_CODING].b, "strip",
	        filter_stripped(in), "background", background, NULL);
	vips_area_unref(VIPS_AREA(background));
	if (r)
		return filter_fail(err, errlen, "unable to encode");
	if (filter_icc_only(in))
		drop_exif(*buf, len);
	return 0;
}

static int jpeg_encode(void *state, VipsImage *in,
                       const union imgnode_value *args, void **buf, size_t *len,
                       char *err, size_t errlen)
{
	(void)state;
	filter_start();
	return fit_encode(in, args, (int)args[ARG_Q].i, args[ARG_MAX_BYTES].i,
	                  jpeg_save, buf, len, err, errlen);
}

static int jpeg_selftest(void *state, char *err, size_t errlen)
{
	const union imgnode_value a[] = {
	        {.i = 80}, {.b = true}, {.e = 0}, {.b = true}, {.i = 0}};

	(void)state;
	return filter_selftest_encode(jpeg_encode, a, "jpeg", err, errlen);
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_ENCODER | IMGNODE_FILTER_SEQUENTIAL,
        .encode = jpeg_encode,
        .mime = "image/jpeg",
        .format = "jpeg",
        .selftest = jpeg_selftest,
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "jpeg",
        .version = "1.0",
        .description = "Encode as JPEG.",
        .ops = &ops,
};
