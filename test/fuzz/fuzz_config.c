/*
 * libFuzzer harness: the config loader (core/config.c, conf_value.c,
 * conf_keys.c, node/node_conf.c) and the plugins' key tables (plugin_set_configure), on an
 * imgnode.ini and a conf.d drop-in written from the input (split at its
 * first NUL byte: FILE, then conf.d/50-fuzz.ini).
 *
 * Beyond not crashing: a refused config has one line of error that names
 * one of the files; a file with a NUL byte is refused; in an accepted one every core value formats to text
 * that parses back to the same value (imgnode -T prints that text, and
 * the shipped imgnode.ini is made of it).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf_keys.h"
#include "config.h"
#include "fuzz.h"
#include "node/node_conf.h"
#include "plugin.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[PATH_MAX], plugins[PATH_MAX], ini[PATH_MAX + 16],
        dropin[PATH_MAX + 32];
static FILE *devnull;

static void cleanup(void)
{
	unlink(dropin);
	unlink(ini);
	snprintf(dropin, sizeof(dropin), "%s/conf.d", dir);
	rmdir(dropin);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	(void)argc;
	node_conf_register();
	umask(077); /* a config writable by others is refused, whatever it says */
	fuzz_plugin_dir((*argv)[0], plugins, sizeof(plugins));
	snprintf(dir, sizeof(dir), "%s/imgnode-fuzz-config-XXXXXX", tmp);
	if (!mkdtemp(dir)) {
		perror("fuzz_config: mkdtemp");
		exit(1);
	}
	snprintf(ini, sizeof(ini), "%s/imgnode.ini", dir);
	snprintf(dropin, sizeof(dropin), "%s/conf.d", dir);
	if (mkdir(dropin, 0700)) {
		perror("fuzz_config: mkdir");
		exit(1);
	}
	snprintf(dropin, sizeof(dropin), "%s/conf.d/50-fuzz.ini", dir);
	devnull = fopen("/dev/null", "w");
	atexit(cleanup);
	return 0;
}

static bool write_file(const char *path, const uint8_t *data, size_t size)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (!f)
		return false;
	ok = fwrite(data, 1, size, f) == size;
	return fclose(f) == 0 && ok;
}

/* A value of any core key's C type. */
union any_value {
	char *s;
	bool b;
	int64_t i;
	int e;
	struct imgnode_list l;
};

/* format(parse(format(v))) == format(v), for the value at src. */
static void check_round_trip(const char *section,
                             const struct imgnode_conf_key *k, const void *src)
{
	char text[4096], again[4096], why[CONF_ERR_MAX];
	union any_value v;

	memset(&v, 0, sizeof(v));
	conf_value_format(k, src, text, sizeof(text));
	FUZZ_CHECK(conf_value_parse(k, text, &v, why, sizeof(why)) == 0,
	           "[%s] %s: the value prints as \"%s\", which is refused: %s",
	           section, k->name, text, why);
	conf_value_format(k, &v, again, sizeof(again));
	FUZZ_CHECK(strcmp(text, again) == 0,
	           "[%s] %s: \"%s\" reads back as \"%s\"", section, k->name,
	           text, again);
	conf_value_free(k, &v);
}

static void check_accepted(struct conf *conf)
{
	struct plugin_set set = {0};
	char err[CONF_ERR_MAX];
	const struct conf_section *s;
	void *base;

	for (size_t i = 0; (s = conf_table(conf, i, &base)); i++) {
		for (const struct imgnode_conf_key *k = s->keys; k->name; k++)
			check_round_trip(s->name, k, (char *)base + k->offset);
		conf_print_keys(devnull, conf, s->name, s->keys, base,
		                CONF_PRINT_EFFECTIVE);
	}
	/* the plugin sections, against the plugins' own tables */
	if (plugin_set_load(&set, plugins, err, sizeof(err))) {
		fprintf(stderr, "fuzz_config: %s\n", err);
		abort();
	}
	err[0] = '\0';
	if (plugin_set_configure(&set, conf, err, sizeof(err)))
		FUZZ_CHECK(err[0] && !strchr(err, '\n'),
		           "plugin sections refused with \"%s\"", err);
	plugin_set_free(&set);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t main_len = nul ? (size_t)(nul - data) : size;
	char err[CONF_ERR_MAX] = "";
	struct conf *conf;

	if (size > 64 * 1024)
		return 0;
	unlink(dropin);
	if (!write_file(ini, data, main_len) ||
	    (nul && !write_file(dropin, nul + 1, size - main_len - 1))) {
		perror("fuzz_config: writing the config");
		abort();
	}
	conf = conf_load(ini, err, sizeof(err));
	/* a NUL byte in the drop-in (the first one splits the files) */
	if (nul && memchr(nul + 1, '\0', size - main_len - 1))
		FUZZ_CHECK(!conf, "a file with a NUL byte is accepted");
	if (!conf) {
		FUZZ_CHECK(err[0] && !strchr(err, '\n'), "refused with \"%s\"",
		           err);
		FUZZ_CHECK(strstr(err, dir), "the error names no file: %s",
		           err);
		return 0;
	}
	check_accepted(conf);
	conf_free(conf);
	return 0;
}
