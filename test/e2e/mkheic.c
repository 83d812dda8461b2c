/*
 * mkheic: writes IN as HEIC (HEIF with HEVC, as phones save photos) at
 * OUT, for the end-to-end tests of HEIC uploads: no Debian package ships
 * a HEIC photo, and this libvips (Debian's: libheif with its x265 encoder)
 * can make one from a corpus photo. Exit 0; 3 if this libvips cannot write
 * HEVC (sharp's bundled one: AV1 only), saying so; 1 on another failure.
 *
 *   mkheic IN OUT
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <vips/vips.h>

int main(int argc, char **argv)
{
	VipsImage *in;
	int ret;

	if (argc != 3) {
		fprintf(stderr, "usage: mkheic IN OUT\n");
		return 1;
	}
	if (VIPS_INIT(argv[0]))
		return 1;
	in = vips_image_new_from_file(argv[1], NULL);
	if (!in) {
		fprintf(stderr, "mkheic: %s", vips_error_buffer());
		return 1;
	}
	ret = vips_heifsave(in, argv[2], "compression",
	                    VIPS_FOREIGN_HEIF_COMPRESSION_HEVC, "Q", 70, NULL);
	g_object_unref(in);
	if (ret) {
		const char *why = vips_error_buffer();
		bool no_hevc = strstr(why, "not been built in") ||
		               strstr(why, "Unsupported compression");

		fprintf(stderr, "mkheic: %s", why);
		return no_hevc ? 3 : 1;
	}
	return 0;
}
