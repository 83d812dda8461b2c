/*
 * The start of every node child: its own copy of the plugin generation,
 * loaded and started after the fork (never in the supervisor).
 */
#include "child.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../base.h"
#include "../config.h"
#include "../host.h"
#include "image.h"
#include "pipeline.h"

int child_open(struct plugin_set *set, struct conf *conf, bool filters,
               char *err, size_t errlen)
{
	int ret;

	host_set_conf(conf);
	ret = plugin_set_load(set, conf->node.plugin_dir, err, errlen);
	if (!ret)
		ret = plugin_set_configure(set, conf, err, errlen);
	if (!ret)
		ret = plugin_start(set->storage, err, errlen);
	if (!ret)
		ret = plugin_start(set->transport, err, errlen);
	for (struct plugin *p = set->head; !ret && filters && p; p = p->next)
		if (p->desc->kind == IMGNODE_KIND_FILTER)
			ret = plugin_start(p, err, errlen);
	return ret;
}

void child_versions(const struct pipeline *pl, const struct plugin_set *set,
                    const char *format, bool keep_metadata, char *buf,
                    size_t len)
{
	const struct plugin *enc = NULL;
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < pl->n && off < len; i++) {
		int n = snprintf(buf + off, len - off, "%s%s=%s", i ? "," : "",
		                 pl->steps[i].name,
		                 pl->steps[i].version ? pl->steps[i].version
		                                      : "?");
		if (n < 0)
			return;
		off += (size_t)n;
	}
	if (set && format && !pipeline_has_encoder(pl))
		enc = image_default_encoder(set, format);
	if (enc && off < len) {
		int n = snprintf(buf + off, len - off, "%s%s=%s",
		                 off ? "," : "", enc->desc->name,
		                 enc->desc->version ? enc->desc->version : "?");
		if (n < 0)
			return;
		off += (size_t)n;
	}
	/* results made before metadata was stripped keep their keys */
	if (!keep_metadata && off < len)
		snprintf(buf + off, len - off, "%smetadata=stripped",
		         off ? "," : "");
}

int child_exit_code(int ret)
{
	switch (-ret) {
	case ETIMEDOUT:
	case ECONNREFUSED:
	case ECONNRESET:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case ENOTCONN:
	case EAGAIN:
	case EINTR:
	case ENOMEM:
	case EIO: return EXIT_TEMPORARY;
	default: return EXIT_PERMANENT;
	}
}
