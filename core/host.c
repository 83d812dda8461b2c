/*
 * The host side of the plugin ABI: what a plugin may call. Plugins never link
 * against daemon symbols; everything reaches them through this table.
 */
#include "host.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf_keys.h"
#include "config.h"
#include "log.h"

static const struct conf *host_conf;

/* This thread's capture of plugins' warnings (host_log_capture). */
static _Thread_local char *capture_buf;
static _Thread_local size_t capture_len;
static _Thread_local bool capture_quiet;
static _Thread_local int capture_level; /* of the line in capture_buf */

void host_log_capture(char *buf, size_t len, bool quiet)
{
	capture_buf = len ? buf : NULL;
	capture_len = len;
	capture_quiet = quiet;
	if (capture_buf)
		capture_buf[0] = '\0';
}

void host_log_capture_end(bool log_it)
{
	char component[64];
	const char *colon;

	if (!capture_buf || !capture_buf[0] || !log_it ||
	    capture_level > log_get_level())
		return;
	colon = strstr(capture_buf, ": ");
	if (!colon)
		return;
	snprintf(component, sizeof(component), "plugin.%.*s",
	         (int)(colon - capture_buf), capture_buf);
	log_msg(capture_level, component, "%s", colon + 2);
}

static void host_log(enum imgnode_log_level level, const char *plugin,
                     const char *fmt, ...)
{
	char component[64];
	va_list ap;

	if (capture_buf && level <= IMGNODE_LOG_WARN) {
		int n = snprintf(capture_buf, capture_len,
		                 "%s: ", plugin ? plugin : "?");

		capture_level = (int)level;

		va_start(ap, fmt);
		if (n >= 0 && (size_t)n < capture_len)
			vsnprintf(capture_buf + n, capture_len - (size_t)n, fmt,
			          ap);
		va_end(ap);
		if (capture_quiet)
			return;
	}
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
