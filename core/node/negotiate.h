/*
 * Format negotiation: the `auto` encoder step names no format; the node
 * picks one per request, from the client's Accept header and the image
 * (alpha, animation), with each format's default quality from [formats].
 * The choice is made once, where the upload's header is known (the
 * ingress, or imgnodectl process), and written into the pipeline as the
 * concrete encoder step, so that the job record, the result key and the
 * result name the chosen format, and the worker never sees `auto`.
 *
 * Rules, in order:
 *   - animation (more than one frame): WebP if the client names it, else
 *     GIF;
 *   - otherwise, among AVIF (unless [formats] auto_avif = no, or no avif
 *     plugin), WebP and JPEG (PNG if the image has alpha): the highest q
 *     the client gives; on a tie, AVIF > WebP > JPEG/PNG.
 *   - AVIF and WebP count only when the client names them (image/avif,
 *     image/webp): a wildcard (all types, or image/ and a star) is sent by clients that
 *     decode neither, so it accepts only JPEG, PNG and GIF.
 *   - q=0 excludes a type; no Accept header, or one that accepts none of
 *     the candidates, picks by the image alone: JPEG, PNG with alpha, GIF
 *     for an animation.
 */
#ifndef IMGNODE_NEGOTIATE_H
#define IMGNODE_NEGOTIATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct image_info;
struct pipeline;
struct plugin_set;

/* [formats]: what `auto` may pick, and at what quality. */
struct formats_conf {
	int64_t avif_quality;
	int64_t webp_quality;
	int64_t jpeg_quality;
	bool auto_avif; /* auto may pick AVIF (slow to encode) */
};

/* The formats auto picks from, as bits of an `available` mask. */
enum negotiate_format {
	NEGOTIATE_AVIF,
	NEGOTIATE_WEBP,
	NEGOTIATE_JPEG,
	NEGOTIATE_PNG,
	NEGOTIATE_GIF,
	NEGOTIATE_FORMATS
};

/* What of the image decides. */
struct negotiate_image {
	bool alpha;
	bool animated;
};

/*
 * The weight (0..1000, q x 1000) the Accept header text gives the media
 * type mime (e.g. "image/webp"), from its most specific matching range;
 * -1 if no range matches (or accept is NULL). *exact (may be NULL) is set
 * if the matching range names the type itself. Malformed ranges are
 * skipped.
 */
int negotiate_accept_q(const char *accept, const char *mime, bool *exact);

/*
 * Picks the encoder for an `auto` step: writes its step text ("avif(q=50)",
 * "webp(q=80)", "jpeg(q=80)", "png", "gif") into step (len bytes) and
 * returns the format (enum negotiate_format). accept may be NULL (no
 * header); available is a mask of (1 << NEGOTIATE_*) of the encoders
 * loaded. A pure function: no I/O, nothing kept. -ENOENT if no candidate
 * encoder is available at all.
 */
int negotiate_encoder(const char *accept, const struct negotiate_image *img,
                      const struct formats_conf *fc, unsigned available,
                      char *step, size_t len);

/* True if pl ends with the `auto` step. */
bool negotiate_wanted(const struct pipeline *pl);

/*
 * If *pl ends with `auto`, replaces *pl by the same pipeline ending with
 * the encoder negotiate_encoder picks for accept (may be NULL) and the
 * image described by info (its bands and pages), parsed against set; the
 * old pipeline is freed. Nothing happens to a pipeline without `auto`.
 * 0, or -errno with a reason in err (*pl unchanged). The one place every
 * submit path (POST /v1/jobs, variants by URL, imgnodectl process) calls.
 */
int negotiate_pipeline(struct pipeline **pl, const struct plugin_set *set,
                       const char *accept, const struct image_info *info,
                       const struct formats_conf *fc, char *err, size_t errlen);

#endif
