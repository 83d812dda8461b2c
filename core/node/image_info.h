/*
 * What an input's header tells, read before anything is decoded: filled by
 * image_probe (image.c, in the ingress's probers and the workers), read by
 * the cost check (cost.c), the ingress and the worker. A type only, so the
 * modules that read it need not include the libvips side.
 */
#ifndef IMGNODE_IMAGE_INFO_H
#define IMGNODE_IMAGE_INFO_H

#include <stdbool.h>

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

#endif
