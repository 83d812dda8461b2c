/*
 * imgnode: the command line. Reads the config, checks it (-t), prints it
 * (-T, --print-defaults) or runs the node in the foreground.
 *
 * Exit codes (s6 convention): 0 ok, 100 permanent failure (bad config or
 * plugin: restarting will not help), 111 temporary failure.
 */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "conf_keys.h"
#include "config.h"
#include "log.h"
#include "node/image.h"
#include "node/node.h"
#include "node/node_conf.h"
#include "node/pipeline.h"
#include "node/prober.h"
#include "plugin.h"
#include "util.h"

#ifndef IMGNODE_SYSCONFDIR
#define IMGNODE_SYSCONFDIR "/etc"
#endif
#ifndef IMGNODE_VIPS
#define IMGNODE_VIPS "system"
#endif

enum mode {
	MODE_RUN,
	MODE_TEST,
	MODE_DUMP,
	MODE_DEFAULTS,
	MODE_VERSION,
	MODE_FILTERS
};

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: imgnode [-c FILE] [-t | -T | --print-defaults] [-v | -q]\n"
	        "  -c FILE           config file (default %s/imgnode/imgnode.ini),\n"
	        "                    then conf.d/*.ini beside it in lexical order\n"
	        "  -t                check the config and every plugin it names; exit 0 or 100\n"
	        "  -T                check, then print the effective config (defaults included)\n"
	        "  --print-defaults  print every key with its default and help, commented out\n"
	        "  -v, -q            more or less logging (repeatable; overrides [node] log_level)\n"
	        "  -V                print the version and the plugin ABI\n"
	        "  --version         that, libvips's version and origin (system or bundled), and every plugin's name and version\n"
	        "  --filters         every pipeline step: its arguments, their types, bounds and help\n"
	        "  -h                this help\n",
	        IMGNODE_SYSCONFDIR);
}

/* Prints [section], the core's keys of it (filling base), then the
 * plugin's, if any. */
static void print_section(FILE *out, struct conf *conf,
                          const struct conf_section *cs, const void *base,
                          const char *section, const struct plugin *p,
                          enum conf_print_mode mode)
{
	fprintf(out, "[%s]\n", section);
	if (cs && cs->keys)
		conf_print_keys(out, conf, section, cs->keys, base, mode);
	if (p)
		conf_print_keys(out, conf, section, p->desc->conf_keys, p->conf,
		                mode);
	fputc('\n', out);
}

/* Template mode: every plugin of kind, its keys under a heading. */
static void print_alternatives(FILE *out, const struct plugin_set *set,
                               unsigned kind, const char *chosen)
{
	for (const struct plugin *p = set->head; p; p = p->next) {
		if (p->desc->kind != kind || !p->desc->conf_keys ||
		    !p->desc->conf_keys->name)
			continue;
		fprintf(out, "; --- keys of plugin = %s%s: %s\n\n",
		        p->desc->name,
		        strcmp(p->desc->name, chosen) == 0 ? " (the default)"
		                                           : "",
		        p->desc->description ? p->desc->description : "");
		conf_print_keys(out, NULL, NULL, p->desc->conf_keys, NULL,
		                CONF_PRINT_TEMPLATE);
	}
}

/* The filter plugins' sections, then the presets. */
static void print_filters_and_presets(struct plugin_set *set, struct conf *conf,
                                      bool template)
{
	char section[64];

	for (const struct plugin *p = set->head; p; p = p->next) {
		if (p->desc->kind != IMGNODE_KIND_FILTER ||
		    !p->desc->conf_keys || !p->desc->conf_keys->name)
			continue;
		snprintf(section, sizeof(section), "filter.%s", p->desc->name);
		if (template)
			printf("; %s\n", p->desc->description
			                         ? p->desc->description
			                         : p->desc->name);
		print_section(
		        stdout, template ? NULL : conf, NULL, NULL, section, p,
		        template ? CONF_PRINT_TEMPLATE : CONF_PRINT_EFFECTIVE);
	}
	if (template) {
		printf("; Presets: named pipelines a request can use with "
		       "?preset=NAME, e.g.\n"
		       ";[preset.avatar]\n"
		       ";pipeline = thumbnail(256, 256, crop=attention) | "
		       "webp(q=80)\n");
		return;
	}
	for (const struct preset *p = conf->app->presets; p; p = p->next)
		printf("[preset.%s]\npipeline = %s  ; %s:%d\n\n", p->name,
		       p->pipeline, p->where->file, p->where->line);
}

/* Runs in the validation child: the whole config, plugins included. */
static int print_config(struct plugin_set *set, struct conf *conf, void *arg,
                        char *err, size_t errlen)
{
	enum mode mode = *(enum mode *)arg;
	bool template = mode == MODE_DEFAULTS;
	const struct conf_section *cs;
	void *base;

	if (!template && node_check(set, conf, NULL, err, errlen))
		return -EINVAL;
	if (template)
		printf("; imgnode configuration. Every key is shown commented "
		       "out with its default;\n"
		       "; uncomment to change. Files in conf.d/*.ini beside this "
		       "one are read after it,\n"
		       "; in lexical order, and override it key by key. Check "
		       "with: imgnode -t\n"
		       "; Generated by imgnode --print-defaults (make ini).\n\n");
	else
		printf("; effective configuration of %s (imgnode %s)\n\n",
		       conf->path, IMGNODE_VERSION);
	for (size_t i = 0; (cs = conf_table(conf, i, &base)); i++) {
		struct plugin *chosen = NULL;
		unsigned kind = 0;

		if (strcmp(cs->name, "transport") == 0) {
			kind = IMGNODE_KIND_TRANSPORT;
			chosen = set->transport;
		} else if (strcmp(cs->name, "storage") == 0) {
			kind = IMGNODE_KIND_STORAGE;
			chosen = set->storage;
		}
		if (!template) {
			print_section(stdout, conf, cs, base, cs->name, chosen,
			              CONF_PRINT_EFFECTIVE);
			continue;
		}
		print_section(stdout, NULL, cs, NULL, cs->name, NULL,
		              CONF_PRINT_TEMPLATE);
		if (kind)
			print_alternatives(stdout, set, kind,
			                   chosen->desc->name);
	}
	print_filters_and_presets(set, conf, template);
	return 0;
}

/* Runs in the validation child of -t: a summary of what was checked. */
static int check_and_report(struct plugin_set *set, struct conf *conf,
                            void *arg, char *err, size_t errlen)
{
	unsigned filters = 0;
	int ret = node_check(set, conf, NULL, err, errlen);

	if (ret || !arg)
		return ret;
	for (const struct plugin *p = set->head; p; p = p->next)
		filters += p->desc->kind == IMGNODE_KIND_FILTER;
	fprintf(stderr,
	        "imgnode: %s: ok (%zu plugins from %s: transport %s %s, storage %s %s, %u filters)\n",
	        conf->path, set->n, set->dir, set->transport->desc->name,
	        set->transport->desc->version, set->storage->desc->name,
	        set->storage->desc->version, filters);
	return 0;
}

/* Runs in the validation child of --version: each plugin's descriptor. */
static int list_plugins(struct plugin_set *set, struct conf *conf, void *arg,
                        char *err, size_t errlen)
{
	(void)conf, (void)arg, (void)err, (void)errlen;
	for (const struct plugin *p = set->head; p; p = p->next)
		printf("plugin %s %s %s ABI %u.%u %s\n", p->desc->name,
		       p->desc->version ? p->desc->version : "?",
		       plugin_kind_name(p->desc->kind),
		       (unsigned)p->desc->abi_major,
		       (unsigned)p->desc->abi_minor, p->path);
	return 0;
}

/* One argument of a filter, as --filters prints it. */
static void print_arg(const struct imgnode_arg *a)
{
	static const char *const types[] = {"?",    "int",    "number", "bool",
	                                    "enum", "string", "image"};
	unsigned t = (unsigned)a->type;

	printf("  %s ", a->name);
	if (a->type == IMGNODE_ARG_ENUM && a->choices)
		for (int i = 0; a->choices[i]; i++)
			printf("%s%s", i ? "|" : "", a->choices[i]);
	else
		printf("%s",
		       t < sizeof(types) / sizeof(types[0]) ? types[t] : "?");
	if (a->def)
		printf(" = %s", a->def);
	else
		printf(", required");
	if ((a->type == IMGNODE_ARG_INT || a->type == IMGNODE_ARG_NUMBER) &&
	    a->min < a->max)
		printf(", %.15g to %.15g", a->min, a->max);
	printf(": %s\n", a->help ? a->help : "");
}

/*
 * Runs in the validation child of --filters: every filter plugin, a line
 * each (name, version, what it is), then a line per argument.
 */
static int list_filters(struct plugin_set *set, struct conf *conf, void *arg,
                        char *err, size_t errlen)
{
	(void)conf, (void)arg, (void)err, (void)errlen;
	for (const struct plugin *p = set->head; p; p = p->next) {
		const struct imgnode_filter_ops *ops = p->desc->ops;

		if (p->desc->kind != IMGNODE_KIND_FILTER)
			continue;
		printf("%s %s (%s%s): %s\n", p->desc->name,
		       p->desc->version ? p->desc->version : "?",
		       ops->flags & IMGNODE_FILTER_ENCODER ? "encoder"
		                                           : "filter",
		       ops->flags & IMGNODE_FILTER_FRAMES ? ", animations" : "",
		       p->desc->description ? p->desc->description : "");
		for (size_t i = 0; ops->args && ops->args[i].name; i++)
			print_arg(&ops->args[i]);
	}
	return 0;
}

/*
 * --version: imgnode's, libvips's, then every plugin of the config's
 * plugin_dir, read in a throwaway child (the supervisor never maps plugin
 * code). conf may be NULL (err says why): the plugins are then not listed.
 */
static int print_versions(struct conf *conf, const char *err)
{
	const char *vips = image_vips_version();
	char why[CONF_ERR_MAX];
	Dl_info lib = {0};
	int ret;

	/* the file the version string lives in is the libvips loaded */
	if (!dladdr(vips, &lib) || !lib.dli_fname)
		lib.dli_fname = "?";
	printf("imgnode %s (plugin ABI %d.%d)\nlibvips %s (%s: %s)\n",
	       IMGNODE_VERSION, IMGNODE_ABI_MAJOR, IMGNODE_ABI_MINOR, vips,
	       IMGNODE_VIPS, lib.dli_fname);
	if (!conf) {
		printf("plugins not listed: %s\n", err);
		return 0;
	}
	ret = plugin_validate_in_child(conf, list_plugins, NULL, why,
	                               sizeof(why));
	if (ret)
		printf("plugins not listed: %s\n", why);
	conf_free(conf);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	        {"print-defaults", no_argument, NULL, 'D'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'W'},
	        {"filters", no_argument, NULL, 'F'},
	        {NULL, 0, NULL, 0},
	};
	const char *path = IMGNODE_SYSCONFDIR "/imgnode/imgnode.ini";
	char err[CONF_ERR_MAX];
	enum mode mode = MODE_RUN;
	struct conf *conf;
	int verbosity = 0, opt, ret;

	node_conf_register();
	/* not an option a user gives: the ingress's prober (prober.h) */
	if (argc > 1 && strcmp(argv[1], "--probe-helper") == 0)
		return prober_main(argc, argv);
	while ((opt = getopt_long(argc, argv, "c:tTvqVh", longopts, NULL)) !=
	       -1) {
		switch (opt) {
		case 'c': path = optarg; break;
		case 't': mode = MODE_TEST; break;
		case 'T': mode = MODE_DUMP; break;
		case 'D': mode = MODE_DEFAULTS; break;
		case 'v': verbosity++; break;
		case 'q': verbosity--; break;
		case 'V':
			printf("imgnode %s (plugin ABI %d.%d)\n",
			       IMGNODE_VERSION, IMGNODE_ABI_MAJOR,
			       IMGNODE_ABI_MINOR);
			return 0;
		case 'W': mode = MODE_VERSION; break;
		case 'F': mode = MODE_FILTERS; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_PERMANENT;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "imgnode: unexpected argument \"%s\"\n",
		        argv[optind]);
		usage(stderr);
		return EXIT_PERMANENT;
	}

	conf = conf_load(path, err, sizeof(err));
	if (mode == MODE_VERSION)
		return print_versions(conf, err);
	if (!conf) {
		fprintf(stderr, "imgnode: %s\n", err);
		return EXIT_PERMANENT;
	}
	log_set_level(conf->node.log_level + verbosity);
	log_set_format(conf->node.log_format);
	switch (mode) {
	case MODE_TEST:
		ret = plugin_validate_in_child(conf, check_and_report, &mode,
		                               err, sizeof(err));
		break;
	case MODE_FILTERS:
		ret = plugin_validate_in_child(conf, list_filters, NULL, err,
		                               sizeof(err));
		break;
	case MODE_DUMP:
	case MODE_DEFAULTS:
		ret = plugin_validate_in_child(conf, print_config, &mode, err,
		                               sizeof(err));
		break;
	default:
		ret = plugin_validate_in_child(conf, NULL, NULL, err,
		                               sizeof(err));
		break;
	}
	if (ret) {
		fprintf(stderr, "imgnode: %s\n", err);
		conf_free(conf);
		return EXIT_PERMANENT;
	}
	ret = mode == MODE_RUN ? node_run(path, &conf) : 0;
	conf_free(conf);
	return ret;
}
