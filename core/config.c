/*
 * Reading configuration files: FILE, then conf.d/ *.ini beside it in lexical
 * order. A key set twice in one file is an error; a later file overrides an
 * earlier one (that is what conf.d is for). inih does the lexing; its
 * "nonzero is success" convention stops at the handler below.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct reader {
	FILE *fp;
	const char *file;
	int line;
	bool too_long;
	bool indented; /* the line begins with a blank: inih continues a key */
	int nul_line; /* the first line with a NUL byte, or 0 */
};

struct load_ctx {
	struct conf *conf;
	const struct conf_schema *schemas[2];
	struct reader *rd;
	struct conf_entry **tail;
	struct conf_entry *last; /* the entry the line before set */
	char *err;
	size_t errlen;
	int ret;
};

/*
 * fgets that counts lines and notices lines longer than inih's buffer, and
 * NUL bytes, which would silently cut a line short (or drop it whole). It
 * wipes inih's line buffer before each line and at the end, so no value
 * read (api_keys, hmac_key) is left on the stack for a forked child.
 */
static char *reader_gets(char *str, int num, void *stream)
{
	struct reader *rd = stream;
	int c = EOF, n = 0;

	explicit_bzero(str, (size_t)num);
	while (n < num - 1 && (c = getc(rd->fp)) != EOF) {
		if (c == '\0' && !rd->nul_line)
			rd->nul_line = rd->line + 1;
		str[n++] = (char)c;
		if (c == '\n')
			break;
	}
	if (n == 0)
		return NULL;
	rd->indented = str[0] == ' ' || str[0] == '\t';
	str[n] = '\0';
	rd->line++;
	if (c != '\n' && n == num - 1 && !rd->too_long) {
		c = getc(rd->fp); /* a newline right after still fits */
		if (c != EOF && c != '\n') {
			rd->too_long = true;
			ungetc(c, rd->fp);
		}
	}
	return str;
}

/* A line refused whatever it holds; 0 or -EINVAL with the reason. */
static int bad_line(const struct reader *rd, char *err, size_t errlen)
{
	if (rd->nul_line) {
		conf_set_err(err, errlen, "%s:%d: NUL byte in the line",
		             rd->file, rd->nul_line);
		return -EINVAL;
	}
	if (rd->too_long) {
		conf_set_err(err, errlen,
		             "%s:%d: line is longer than %d characters",
		             rd->file, rd->line, INI_MAX_LINE - 1);
		return -EINVAL;
	}
	return 0;
}

static struct conf_entry *find_entry(struct conf_entry *e, const char *section,
                                     const char *key)
{
	for (; e; e = e->next)
		if (strcmp(e->section, section) == 0 &&
		    strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static bool section_matches(const struct conf_section *s, const char *name)
{
	if (s->flags & CONF_SECTION_PREFIX) {
		size_t len = strlen(s->name);
		return strncmp(name, s->name, len) == 0 && name[len];
	}
	return strcmp(name, s->name) == 0;
}

/* True for a section one of the schemas names. */
static bool section_known(const struct conf_schema *const schemas[2],
                          const char *section)
{
	for (int i = 0; i < 2; i++)
		for (const struct conf_section *s =
		             schemas[i] ? schemas[i]->sections : NULL;
		     s && s->name; s++)
			if (section_matches(s, section))
				return true;
	return false;
}

/* True when e's value so far ends with a comma: a list that goes on. */
static bool list_goes_on(const struct conf_entry *e)
{
	size_t n = strlen(e->value);

	while (n > 0 && (e->value[n - 1] == ' ' || e->value[n - 1] == '\t'))
		n--;
	return n > 0 && e->value[n - 1] == ',';
}

/*
 * An indented line after a value that ends with a comma continues that
 * list (long lists, such as a cluster's broker URLs, past inih's line
 * length): its text is appended after a space. 1, or 0 with the error.
 */
static int append_line(struct load_ctx *ctx, struct conf_entry *e,
                       const char *value)
{
	size_t a = strlen(e->value), b = strlen(value);
	char *v = malloc(a + b + 2);

	if (!v) {
		conf_set_err(ctx->err, ctx->errlen, "%s:%d: out of memory",
		             ctx->rd->file, ctx->rd->line);
		ctx->ret = -ENOMEM;
		return 0;
	}
	memcpy(v, e->value, a);
	v[a] = ' ';
	memcpy(v + a + 1, value, b + 1);
	conf_value_wipe(e->value); /* it may hold a secret */
	free(e->value);
	e->value = v;
	return 1;
}

static int load_handler(void *user, const char *section, const char *key,
                        const char *value)
{
	struct load_ctx *ctx = user;
	struct conf_entry *e;
	const char *file = ctx->rd->file;
	int line = ctx->rd->line;

	if (ctx->ret)
		return 1; /* report the first error only */
	if (bad_line(ctx->rd, ctx->err, ctx->errlen))
		goto out_err;
	if (!section[0]) {
		conf_set_err(ctx->err, ctx->errlen,
		             "%s:%d: %s: key outside any [section]", file, line,
		             key);
		goto out_err;
	}
	if (!section_known(ctx->schemas, section)) {
		conf_set_err(ctx->err, ctx->errlen,
		             "%s:%d: [%s] %s: unknown section", file, line,
		             section, key);
		goto out_err;
	}
	e = find_entry(ctx->conf->entries, section, key);
	if (e && e == ctx->last && ctx->rd->indented && list_goes_on(e))
		return append_line(ctx, e, value);
	if (e && strcmp(e->file, file) == 0) {
		conf_set_err(
		        ctx->err, ctx->errlen,
		        "%s:%d: [%s] %s: duplicate key (first set at line %d)",
		        file, line, section, key, e->line);
		goto out_err;
	}
	if (e) {
		/* A later file overrides an earlier one. */
		char *v = strdup(value), *f = strdup(file);
		if (!v || !f) {
			free(v);
			free(f);
			goto out_nomem;
		}
		conf_value_wipe(e->value);
		free(e->value);
		free(e->file);
		e->value = v;
		e->file = f;
		e->line = line;
		ctx->last = e;
		return 1;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		goto out_nomem;
	e->section = strdup(section);
	e->key = strdup(key);
	e->value = strdup(value);
	e->file = strdup(file);
	e->line = line;
	*ctx->tail = e;
	ctx->tail = &e->next;
	ctx->last = e;
	if (!e->section || !e->key || !e->value || !e->file)
		goto out_nomem;
	return 1;

out_nomem:
	conf_set_err(ctx->err, ctx->errlen, "%s:%d: out of memory", file, line);
	ctx->ret = -ENOMEM;
	return 0;
out_err:
	ctx->ret = -EINVAL;
	return 0;
}

/*
 * A config holds secrets and names the code the node loads: a file (or the
 * conf.d directory) that others than its owner may write is refused.
 */
static int check_mode(struct load_ctx *ctx, const char *path, int fd)
{
	struct stat st;

	if (fstat(fd, &st)) {
		conf_set_err(ctx->err, ctx->errlen, "cannot stat %s: %s", path,
		             strerror(errno));
		return -EIO;
	}
	if (!(st.st_mode & (S_IWGRP | S_IWOTH)))
		return 0;
	conf_set_err(
	        ctx->err, ctx->errlen,
	        "%s: writable by %s (mode %04o): a config holds secrets, so only its owner may write it (chmod go-w %s)",
	        path, st.st_mode & S_IWOTH ? "others" : "its group",
	        (unsigned)(st.st_mode & 07777), path);
	return -EPERM;
}

static int load_file(struct load_ctx *ctx, const char *path)
{
	struct reader rd = {.file = path};
	char iobuf[BUFSIZ]; /* stdio's buffer, wiped (not left in the heap) */
	int ret;

	rd.fp = fopen(path, "r");
	if (!rd.fp) {
		ret = -errno;
		conf_set_err(ctx->err, ctx->errlen, "cannot read %s: %s", path,
		             strerror(errno));
		return ret;
	}
	ret = check_mode(ctx, path, fileno(rd.fp));
	if (ret) {
		fclose(rd.fp);
		return ret;
	}
	setvbuf(rd.fp, iobuf, _IOFBF, sizeof(iobuf));
	ctx->rd = &rd;
	ctx->last = NULL;
	ret = ini_parse_stream(reader_gets, &rd, load_handler, ctx);
	ctx->rd = NULL; /* rd dies with this frame */
	fclose(rd.fp);
	explicit_bzero(iobuf, sizeof(iobuf));
	if (ctx->ret)
		return ctx->ret;
	if (ret > 0) {
		conf_set_err(
		        ctx->err, ctx->errlen,
		        "%s:%d: syntax error (expected [section] or key = value)",
		        path, ret);
		return -EINVAL;
	}
	if (ret < 0) {
		conf_set_err(ctx->err, ctx->errlen, "cannot read %s", path);
		return -EIO;
	}
	return bad_line(&rd, ctx->err, ctx->errlen);
}

static int ini_filter(const struct dirent *d)
{
	size_t len = strlen(d->d_name);

	return d->d_name[0] != '.' && len > 4 &&
	       strcmp(d->d_name + len - 4, ".ini") == 0;
}

static int load_dropins(struct load_ctx *ctx, const char *path)
{
	char *copy = strdup(path), dir[4096], file[4096 + 256];
	struct dirent **names;
	int n, dfd, ret = 0;

	if (!copy)
		return -ENOMEM;
	snprintf(dir, sizeof(dir), "%s/conf.d", dirname(copy));
	free(copy);
	n = scandir(dir, &names, ini_filter, alphasort);
	if (n < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		ret = -errno;
		conf_set_err(ctx->err, ctx->errlen, "cannot read %s: %s", dir,
		             strerror(errno));
		return ret;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ret = dfd < 0 ? 0 : check_mode(ctx, dir, dfd);
	if (dfd >= 0)
		close(dfd);
	for (int i = 0; i < n; i++) {
		snprintf(file, sizeof(file), "%s/%s", dir, names[i]->d_name);
		if (!ret)
			ret = load_file(ctx, file);
		free(names[i]);
	}
	free(names);
	return ret;
}

void *conf_schema_base(const struct conf *conf,
                       const struct conf_schema *schema)
{
	return schema->size ? (void *)conf->app : (void *)conf;
}

int conf_fill_schemas(struct conf *conf, const struct conf_schema *runtime,
                      const struct conf_schema *app, char *err, size_t errlen)
{
	conf->schemas[0] = runtime;
	conf->schemas[1] = app;
	for (int i = 0; i < 2; i++) {
		const struct conf_schema *sc = conf->schemas[i];
		int ret;

		if (!sc)
			continue;
		if (sc->size && !conf->app &&
		    !(conf->app = calloc(1, sc->size))) {
			conf_set_err(err, errlen, "out of memory");
			return -ENOMEM;
		}
		for (const struct conf_section *s = sc->sections; s->name;
		     s++) {
			if (!s->keys)
				continue;
			if (conf_fill(conf, s->name, s->keys,
			              (char *)conf_schema_base(conf, sc) +
			                      s->offset,
			              !(s->flags & CONF_SECTION_PLUGIN), err,
			              errlen))
				return -EINVAL;
		}
		ret = sc->fill ? sc->fill(conf, err, errlen) : 0;
		if (ret)
			return ret;
	}
	return 0;
}

struct conf *conf_read(const char *path, const struct conf_schema *runtime,
                       const struct conf_schema *app, char *err, size_t errlen)
{
	struct conf *conf = calloc(1, sizeof(*conf));
	struct load_ctx ctx = {
	        .err = err, .errlen = errlen, .schemas = {runtime, app}};

	if (!conf || !(conf->path = strdup(path))) {
		conf_set_err(err, errlen, "out of memory");
		free(conf);
		return NULL;
	}
	ctx.conf = conf;
	ctx.tail = &conf->entries;
	if (load_file(&ctx, path) || load_dropins(&ctx, path))
		goto out_free;
	if (conf_fill_schemas(conf, runtime, app, err, errlen))
		goto out_free;
	return conf;

out_free:
	conf_free(conf);
	return NULL;
}

void conf_free(struct conf *conf)
{
	struct conf_entry *e, *next;

	if (!conf)
		return;
	for (int i = 0; i < 2; i++) {
		const struct conf_schema *sc = conf->schemas[i];

		if (!sc || (sc->size && !conf->app))
			continue;
		for (const struct conf_section *s = sc->sections; s->name; s++)
			if (s->keys)
				conf_release(s->keys, (char *)conf_schema_base(
				                              conf, sc) +
				                              s->offset);
		if (sc->release)
			sc->release(conf);
	}
	free(conf->app);
	for (e = conf->entries; e; e = next) {
		next = e->next;
		free(e->section);
		free(e->key);
		conf_value_wipe(e->value);
		free(e->value);
		free(e->file);
		free(e);
	}
	free(conf->path);
	free(conf);
}

const struct conf_entry *conf_find(const struct conf *conf, const char *section,
                                   const char *key)
{
	return find_entry(conf->entries, section, key);
}

static const struct imgnode_conf_key *
find_key(const struct imgnode_conf_key *keys, const char *name)
{
	for (; keys && keys->name; keys++)
		if (strcmp(keys->name, name) == 0)
			return keys;
	return NULL;
}

int conf_fill(struct conf *conf, const char *section,
              const struct imgnode_conf_key *keys, void *base, bool strict,
              char *err, size_t errlen)
{
	char reason[CONF_ERR_MAX];
	struct conf_entry *e;

	for (const struct imgnode_conf_key *k = keys; k && k->name; k++) {
		void *dst = (char *)base + k->offset;

		e = find_entry(conf->entries, section, k->name);
		if (e)
			continue;
		if (!k->def) {
			conf_set_err(err, errlen,
			             "%s: [%s] %s: required key is missing",
			             conf->path, section, k->name);
			goto out_release;
		}
		if (conf_value_parse(k, k->def, dst, reason, sizeof(reason))) {
			conf_set_err(err, errlen,
			             "[%s] %s: bad built-in default: %s",
			             section, k->name, reason);
			goto out_release;
		}
	}
	for (e = conf->entries; e; e = e->next) {
		const struct imgnode_conf_key *k;

		if (strcmp(e->section, section) != 0)
			continue;
		k = find_key(keys, e->key);
		if (!k) {
			if (!strict)
				continue;
			conf_set_err(err, errlen, "%s:%d: [%s] %s: unknown key",
			             e->file, e->line, section, e->key);
			goto out_release;
		}
		if (conf_value_parse(k, e->value, (char *)base + k->offset,
		                     reason, sizeof(reason))) {
			conf_set_err(err, errlen, "%s:%d: [%s] %s: %s", e->file,
			             e->line, section, e->key, reason);
			goto out_release;
		}
		e->used = true;
	}
	return 0;

out_release:
	conf_release(keys, base);
	return -EINVAL;
}

void conf_release(const struct imgnode_conf_key *keys, void *base)
{
	for (const struct imgnode_conf_key *k = keys; k && k->name; k++)
		conf_value_free(k, (char *)base + k->offset);
}

int conf_check_unused(const struct conf *conf, char *err, size_t errlen)
{
	for (const struct conf_entry *e = conf->entries; e; e = e->next) {
		if (e->used)
			continue;
		conf_set_err(err, errlen, "%s:%d: [%s] %s: unknown key",
		             e->file, e->line, e->section, e->key);
		return -EINVAL;
	}
	return 0;
}

/* Writes text as "; " comment lines of at most 78 columns. */
static void print_comment(FILE *out, const char *text)
{
	while (*text) {
		size_t len = strlen(text), cut = len;

		if (len > 76) {
			cut = 76;
			while (cut > 0 && text[cut] != ' ')
				cut--;
			if (cut == 0)
				cut = strcspn(text, " ");
		}
		fprintf(out, "; %.*s\n", (int)cut, text);
		text += cut;
		while (*text == ' ')
			text++;
	}
}

void conf_print_keys(FILE *out, const struct conf *conf, const char *section,
                     const struct imgnode_conf_key *keys, const void *base,
                     enum conf_print_mode mode)
{
	char value[4096];

	for (const struct imgnode_conf_key *k = keys; k && k->name; k++) {
		const struct conf_entry *e;

		if (mode == CONF_PRINT_TEMPLATE) {
			if (k->help)
				print_comment(out, k->help);
			if (!k->def)
				fprintf(out, ";%s =   (required)\n\n", k->name);
			else
				fprintf(out, ";%s =%s%s\n\n", k->name,
				        k->def[0] ? " " : "", k->def);
			continue;
		}
		e = find_entry(conf->entries, section, k->name);
		conf_value_format(k, (const char *)base + k->offset, value,
		                  sizeof(value));
		if ((k->type & IMGNODE_CONF_SECRET) && value[0])
			snprintf(value, sizeof(value), "<redacted>");
		fprintf(out, "%s =%s%s", k->name, value[0] ? " " : "", value);
		if (e)
			fprintf(out, "  ; %s:%d", e->file, e->line);
		fputc('\n', out);
	}
}

void conf_each_section(const struct conf *conf, const char *prefix,
                       void (*fn)(const char *section, void *arg), void *arg)
{
	size_t plen = strlen(prefix);

	for (const struct conf_entry *e = conf->entries; e; e = e->next) {
		const struct conf_entry *prev;

		if (strncmp(e->section, prefix, plen) != 0)
			continue;
		for (prev = conf->entries; prev != e; prev = prev->next)
			if (strcmp(prev->section, e->section) == 0)
				break;
		if (prev == e)
			fn(e->section, arg);
	}
}
