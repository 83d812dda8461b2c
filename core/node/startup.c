/*
 * A node process's start-up (startup.h): its own copy of the plugin
 * generation, loaded and started after the fork (never in the
 * supervisor), and the exit code if that fails.
 */
#include "startup.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../base.h"
#include "../config.h"
#include "../host.h"

int startup_plugins(struct plugin_set *set, struct conf *conf, bool filters,
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

int startup_exit_code(int ret)
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
