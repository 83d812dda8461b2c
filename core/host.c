/*
 * The host side of the plugin ABI: what a plugin may call. Plugins never link
 * against daemon symbols; everything reaches them through this table.
 */
#include "host.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "conf_keys.h"
#include "config.h"
#include "log.h"

static const struct conf *host_conf;

static void host_log(enum imgnode_log_level level, const char *plugin,
                     const char *fmt, ...)
{
	char component[64];
	va_list ap;

	if ((int)level > log_get_level())
		return;
	snprintf(component, sizeof(component), "plugin.%s",
	         plugin ? plugin : "?");
	va_start(ap, fmt);
	log_vmsg(level, component, fmt, ap);
	va_end(ap);
}

static const char *host_config_get(const char *section, const char *key)
{
	const struct conf_entry *e;

	if (!host_conf || !section || !key)
		return NULL;
	e = conf_find(host_conf, section, key);
	if (e)
		return e->value;
	return conf_default(section, key);
}

static const struct imgnode_host host = {
        .abi_major = IMGNODE_ABI_MAJOR,
        .abi_minor = IMGNODE_ABI_MINOR,
        .log = host_log,
        .alloc = malloc,
        .realloc = realloc,
        .free = free,
        .config_get = host_config_get,
};

const struct imgnode_host *host_table(void)
{
	return &host;
}

void host_set_conf(const struct conf *conf)
{
	host_conf = conf;
}
