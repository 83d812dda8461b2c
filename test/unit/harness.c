/*
 * The plugin tests' shared harness (see harness.h).
 */
#include "harness.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "host.h"

const struct imgnode_plugin *harness_load(const char *name, unsigned kind,
                                          void **dl)
{
	const char *build = getenv("BUILD");
	const struct imgnode_plugin *p;
	char path[4096];

	snprintf(path, sizeof(path), "%s/plugins/%s.so",
	         build && *build ? build : "build", name);
	*dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!*dl) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		return NULL;
	}
	p = dlsym(*dl, IMGNODE_PLUGIN_SYMBOL);
	if (!p || p->kind != kind) {
		fprintf(stderr, "%s: no plugin descriptor of kind %u\n", path,
		        kind);
		return NULL;
	}
	return p;
}

void *harness_configure(const struct imgnode_plugin *p, const char *path,
                        const char *section, struct conf **conf, char *err,
                        size_t errlen)
{
	void *cfg;

	*conf = conf_load(path, err, errlen);
	if (!*conf)
		return NULL;
	cfg = calloc(1, p->conf_size ? p->conf_size : 1);
	if (!cfg) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (conf_fill(*conf, section, p->conf_keys, cfg, false, err, errlen)) {
		free(cfg);
		return NULL;
	}
	host_set_conf(*conf);
	return cfg;
}

void harness_release(const struct imgnode_plugin *p, void **cfg,
                     struct conf **conf)
{
	if (*cfg)
		conf_release(p->conf_keys, *cfg);
	free(*cfg);
	*cfg = NULL;
	host_set_conf(NULL);
	conf_free(*conf);
	*conf = NULL;
}
