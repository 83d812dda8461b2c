/*
 * What an input's header tells, read before anything is decoded: filled by
 * image_probe (image.c, in the ingress's probers and the workers), read by
 * the cost check (cost.c), the ingress and the worker. A type only, so the
 * modules that read it need not include the libvips side.
 */
#ifndef IMGNODE_IMAGE_INFO_H
#define IMGNODE_IMAGE_INFO_H

#include <stdbool.h>
#include <string.h>

struct image_info {
	char format[16]; /* jpeg, png, gif, webp, tiff, heif */
	int width;
	int height;
	int pages;
	bool interlaced; /* progressive JPEG, interlaced PNG */
	int bands; /* as libvips loads it (a palette PNG as RGB) */
	int band_bytes; /* 1, 2 (16-bit) or 4 */
	int orientation; /* EXIF, 1..8 */
};

/*
 * Frames a job works on: an animated GIF or WebP is loaded with all its
 * pages (pages, from the header), any other input as one image (a TIFF's
 * or HEIF's other pages are not read).
 */
static inline int image_frames(const struct image_info *info)
{
	bool animated =
	        !strcmp(info->format, "gif") || !strcmp(info->format, "webp");

	return animated && info->pages > 1 ? info->pages : 1;
}

#endif
