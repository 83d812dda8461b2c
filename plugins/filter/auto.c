/*
 * auto: the encoder the node picks per request. It names no format: where
 * the upload's header is known (the ingress, imgnodectl process), the host
 * replaces it with the concrete encoder step, e.g. webp(q=80), from the
 * client's Accept header, the image (alpha, animation) and [formats]
 * (core/node/negotiate.h), before the job is recorded and keyed. So this
 * plugin's encode only runs for a host that did not negotiate, and says
 * so rather than guess.
 */
#include <vips/vips.h>

#include "filter.h"

static const struct imgnode_arg args[] = {
        {NULL, 0, NULL, 0, 0, NULL, NULL},
};

static int auto_encode(void *state, VipsImage *in,
                       const union imgnode_value *args, void **buf, size_t *len,
                       char *err, size_t errlen)
{
	(void)state, (void)in, (void)args, (void)buf, (void)len;
	snprintf(
	        err, errlen,
	        "the host did not pick a format for auto (it is replaced by an encoder when the job is submitted); name one: jpeg, webp, avif, png, gif");
	return -ENOTSUP;
}

static const struct imgnode_filter_ops ops = {
        .args = args,
        .flags = IMGNODE_FILTER_ENCODER,
        .encode = auto_encode,
        .mime = "application/octet-stream",
};

IMGNODE_PLUGIN = {
        IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER),
        .name = "auto",
        .version = "1.0",
        .description = "Encode in the best format the client accepts "
                       "(chosen per request).",
        .ops = &ops,
};
