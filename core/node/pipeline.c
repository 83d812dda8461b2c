/*
 * The pipeline parser (grammar in pipeline.h). Parsing happens in two
 * passes: the text is split into steps and raw arguments, each with its
 * column, then each step is resolved against its filter's argument table.
 * Every error is one line naming the column and the reason.
 */
#include "pipeline.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../plugin.h"
#include "job.h"

#define ARGS_MAX PIPELINE_MAX_ARGS

struct raw_arg {
	char *key; /* NULL: positional */
	char *value;
	size_t col, vcol;
};

struct raw_step {
	char *name;
	size_t col;
	struct raw_arg args[ARGS_MAX];
	size_t nargs;
};

struct parser {
	const char *s;
	size_t pos;
	char *err;
	size_t errlen;
};

static int fail(struct parser *p, size_t col, const char *fmt, ...)
        IMGNODE_PRINTF(3, 4);

static int fail(struct parser *p, size_t col, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "column %zu: %s", col + 1, msg);
	return -EINVAL;
}

static void skip_ws(struct parser *p)
{
	while (p->s[p->pos] == ' ' || p->s[p->pos] == '\t')
		p->pos++;
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

static bool is_bare_char(char c)
{
	return is_name_char(c) || (c >= 'A' && c <= 'Z') || c == '.' ||
	       c == '+' || c == '-';
}

/* Describes the character at pos for an error ("end of input", "'x'"). */
static const char *what_at(struct parser *p, char *buf, size_t len)
{
	char c = p->s[p->pos];

	if (!c)
		return "end of input";
	if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7f)
		snprintf(buf, len, "byte 0x%02x", (unsigned char)c);
	else
		snprintf(buf, len, "'%c'", c);
	return buf;
}

static char *take_name(struct parser *p)
{
	size_t start = p->pos;

	while (is_name_char(p->s[p->pos]))
		p->pos++;
	return p->pos > start ? strndup(p->s + start, p->pos - start) : NULL;
}

/* A bare or quoted value; NULL with err set. */
static char *take_value(struct parser *p)
{
	char buf[16];
	size_t start = p->pos;

	if (p->s[p->pos] != '"') {
		while (is_bare_char(p->s[p->pos]))
			p->pos++;
		if (p->pos == start) {
			fail(p, p->pos, "expected a value, found %s",
			     what_at(p, buf, sizeof(buf)));
			return NULL;
		}
		return strndup(p->s + start, p->pos - start);
	}
	char *out = malloc(strlen(p->s + start) + 1);
	size_t n = 0;

	if (!out) {
		fail(p, start, "out of memory");
		return NULL;
	}
	for (p->pos++; p->s[p->pos] != '"'; p->pos++) {
		char c = p->s[p->pos];
		if (!c) {
			free(out);
			fail(p, start, "unterminated string");
			return NULL;
		}
		if (c == '\\') {
			c = p->s[++p->pos];
			if (c != '"' && c != '\\') {
				free(out);
				fail(p, p->pos - 1,
				     "unknown escape (only \\\" and \\\\)");
				return NULL;
			}
		}
		out[n++] = c;
	}
	p->pos++;
	out[n] = '\0';
	return out;
}

static void raw_free(struct raw_step *steps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(steps[i].name);
		for (size_t j = 0; j < steps[i].nargs; j++) {
			free(steps[i].args[j].key);
			free(steps[i].args[j].value);
		}
	}
}

static int parse_args(struct parser *p, struct raw_step *st)
{
	char buf[16];

	p->pos++; /* ( */
	skip_ws(p);
	if (p->s[p->pos] == ')') {
		p->pos++;
		return 0;
	}
	for (;;) {
		struct raw_arg *a;
		size_t save;

		skip_ws(p);
		if (st->nargs == ARGS_MAX)
			return fail(p, p->pos, "more than %d arguments",
			            ARGS_MAX);
		a = &st->args[st->nargs];
		a->col = p->pos;
		/* name "=" value, or a value */
		save = p->pos;
		a->key = take_name(p);
		skip_ws(p);
		if (a->key && p->s[p->pos] == '=') {
			p->pos++;
			skip_ws(p);
		} else {
			free(a->key);
			a->key = NULL;
			p->pos = save;
		}
		a->vcol = p->pos;
		a->value = take_value(p);
		if (!a->value) {
			free(a->key);
			return -EINVAL;
		}
		st->nargs++;
		skip_ws(p);
		if (p->s[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->s[p->pos] == ')') {
			p->pos++;
			return 0;
		}
		return fail(p, p->pos, "expected ',' or ')', found %s",
		            what_at(p, buf, sizeof(buf)));
	}
}

/* First pass: steps and raw arguments. Returns the count or -EINVAL. */
static int split(struct parser *p, struct raw_step *steps)
{
	char buf[16];
	size_t n = 0;

	for (;;) {
		struct raw_step *st;

		skip_ws(p);
		if (n == PIPELINE_MAX_STEPS) {
			fail(p, p->pos, "more than %d steps",
			     PIPELINE_MAX_STEPS);
			goto out_err;
		}
		st = &steps[n];
		memset(st, 0, sizeof(*st));
		st->col = p->pos;
		st->name = take_name(p);
		if (!st->name) {
			fail(p, p->pos, "expected a filter name, found %s",
			     what_at(p, buf, sizeof(buf)));
			goto out_err;
		}
		n++;
		skip_ws(p);
		if (p->s[p->pos] == '(' && parse_args(p, st))
			goto out_err;
		skip_ws(p);
		if (p->s[p->pos] == '|') {
			p->pos++;
			continue;
		}
		if (!p->s[p->pos])
			return (int)n;
		fail(p, p->pos, "expected '|', '(' or the end, found %s",
		     what_at(p, buf, sizeof(buf)));
		goto out_err;
	}
out_err:
	raw_free(steps, n);
	return -EINVAL;
}

/* Edit distance, for "did you mean". */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), row[64];

	if (la >= 63 || lb >= 63)
		return 99;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t prev = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t cur = row[j];
			size_t best = prev + (a[i - 1] != b[j - 1]);
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			prev = cur;
		}
	}
	return row[lb];
}

static int unknown_filter(struct parser *p, const struct plugin_set *set,
                          const struct raw_step *st)
{
	const char *best = NULL;
	size_t bestd = 3; /* suggest only close names */

	for (const struct plugin *pl = set->head; pl; pl = pl->next) {
		size_t d;
		if (pl->desc->kind != IMGNODE_KIND_FILTER)
			continue;
		d = distance(st->name, pl->desc->name);
		if (d < bestd) {
			bestd = d;
			best = pl->desc->name;
		}
	}
	if (best)
		return fail(p, st->col,
		            "unknown filter \"%s\" (did you mean \"%s\"?)",
		            st->name, best);
	return fail(p, st->col, "unknown filter \"%s\"", st->name);
}

/* Parses text as a value of arg into v; a reason in why on failure. */
static int parse_value(const struct imgnode_arg *arg, const char *text,
                       union imgnode_value *v, char *why, size_t len)
{
	char *end;

	switch (arg->type) {
	case IMGNODE_ARG_INT: {
		long long i;
		errno = 0;
		i = strtoll(text, &end, 10);
		if (errno || end == text || *end) {
			snprintf(why, len, "\"%s\" is not an integer", text);
			return -EINVAL;
		}
		if (arg->min < arg->max && (i < arg->min || i > arg->max)) {
			snprintf(why, len,
			         "%lld is out of range (%.15g to %.15g)", i,
			         arg->min, arg->max);
			return -ERANGE;
		}
		v->i = i;
		return 0;
	}
	case IMGNODE_ARG_NUMBER: {
		double d = strtod(text, &end);
		if (end == text || *end || !isfinite(d)) {
			snprintf(why, len, "\"%s\" is not a number", text);
			return -EINVAL;
		}
		if (arg->min < arg->max && (d < arg->min || d > arg->max)) {
			snprintf(why, len,
			         "%s is out of range (%.15g to %.15g)", text,
			         arg->min, arg->max);
			return -ERANGE;
		}
		v->n = d;
		return 0;
	}
	case IMGNODE_ARG_BOOL:
		if (!strcmp(text, "true") || !strcmp(text, "yes") ||
		    !strcmp(text, "1")) {
			v->b = true;
			return 0;
		}
		if (!strcmp(text, "false") || !strcmp(text, "no") ||
		    !strcmp(text, "0")) {
			v->b = false;
			return 0;
		}
		snprintf(why, len, "\"%s\" is not true or false", text);
		return -EINVAL;
	case IMGNODE_ARG_ENUM: {
		size_t off = 0;
		char list[256] = "";
		for (int i = 0; arg->choices && arg->choices[i]; i++) {
			if (!strcmp(text, arg->choices[i])) {
				v->e = i;
				return 0;
			}
			off += (size_t)snprintf(list + off, sizeof(list) - off,
			                        "%s%s", i ? ", " : "",
			                        arg->choices[i]);
			if (off >= sizeof(list))
				off = sizeof(list) - 1;
		}
		snprintf(why, len, "\"%s\" is not one of %s", text, list);
		return -EINVAL;
	}
	case IMGNODE_ARG_STRING: v->s = text; return 0;
	case IMGNODE_ARG_IMAGE:
		if (!job_id_valid(text)) {
			snprintf(
			        why, len,
			        "\"%s\" is not an image id (32 hex digits, as POST /v1/images gives)",
			        text);
			return -EINVAL;
		}
		v->s = text;
		return 0;
	}
	snprintf(why, len, "unknown argument type %d", (int)arg->type);
	return -EINVAL;
}

static size_t count_args(const struct imgnode_arg *args)
{
	size_t n = 0;

	while (args && args[n].name)
		n++;
	return n;
}

/* Second pass for one step: raw arguments to typed values. */
static int resolve(struct parser *p, struct pipeline *pl,
                   const struct plugin_set *set, struct raw_step *st, bool last)
{
	struct pipeline_step *out = &pl->steps[pl->n];
	const struct plugin *plug;
	const struct imgnode_arg *args;
	size_t nargs, ncol = 0;
	size_t given[ARGS_MAX] = {0}; /* 1 + index of the raw arg, or 0 */
	char why[384];
	bool keyword = false;

	plug = plugin_find(set, IMGNODE_KIND_FILTER, st->name);
	if (!plug)
		return unknown_filter(p, set, st);
	out->name = plug->desc->name;
	out->version = plug->desc->version;
	out->ops = plug->desc->ops;
	out->state = plug->state;
	out->predict = plug->desc->abi_minor >= 1 ? out->ops->predict : NULL;
	args = out->ops->args;
	nargs = count_args(args);
	if (nargs > ARGS_MAX)
		return fail(p, st->col, "filter %s declares too many arguments",
		            st->name);
	if ((out->ops->flags & IMGNODE_FILTER_ENCODER) && !last)
		return fail(p, st->col, "encoder \"%s\" must be the last step",
		            st->name);
	for (size_t i = 0; i < st->nargs; i++) {
		struct raw_arg *a = &st->args[i];
		size_t k;

		if (!a->key) {
			if (keyword)
				return fail(
				        p, a->col,
				        "positional argument after a keyword argument");
			if (ncol >= nargs)
				return fail(p, a->col,
				            "%s takes at most %zu argument%s",
				            st->name, nargs,
				            nargs == 1 ? "" : "s");
			k = ncol++;
		} else {
			keyword = true;
			for (k = 0; k < nargs && strcmp(args[k].name, a->key);
			     k++)
				;
			if (k == nargs) {
				char have[256] = "";
				size_t off = 0;
				for (size_t j = 0;
				     j < nargs && off < sizeof(have); j++)
					off += (size_t)snprintf(
					        have + off, sizeof(have) - off,
					        "%s%s", j ? ", " : "",
					        args[j].name);
				return fail(
				        p, a->col,
				        "%s has no argument \"%s\" (it has: %s)",
				        st->name, a->key,
				        nargs ? have : "none");
			}
			if (given[k])
				return fail(p, a->col,
				            "argument \"%s\" given twice",
				            a->key);
		}
		given[k] = i + 1;
	}
	out->args = calloc(nargs ? nargs : 1, sizeof(*out->args));
	if (!out->args)
		return fail(p, st->col, "out of memory");
	pl->n++;
	for (size_t k = 0; k < nargs; k++) {
		const char *text;
		size_t col;

		if (given[k]) {
			struct raw_arg *a = &st->args[given[k] - 1];
			text = a->value;
			col = a->vcol;
		} else if (args[k].def) {
			text = args[k].def;
			col = st->col;
		} else {
			return fail(p, st->col, "%s: missing argument \"%s\"",
			            st->name, args[k].name);
		}
		if (parse_value(&args[k], text, &out->args[k], why,
		                sizeof(why)))
			return fail(p, col, "%s %s: %s", st->name, args[k].name,
			            why);
		if (args[k].type == IMGNODE_ARG_STRING ||
		    args[k].type == IMGNODE_ARG_IMAGE) {
			char *copy = strdup(text);
			char **owned = realloc(
			        pl->owned, (pl->nowned + 1) * sizeof(*owned));
			if (!copy || !owned) {
				free(copy);
				if (owned)
					pl->owned = owned;
				return fail(p, col, "out of memory");
			}
			pl->owned = owned;
			pl->owned[pl->nowned++] = copy;
			out->args[k].s = copy;
		}
	}
	return 0;
}

static int cmp_arg_index(const void *a, const void *b, void *tab)
{
	const struct imgnode_arg *args = tab;

	return strcmp(args[*(const size_t *)a].name,
	              args[*(const size_t *)b].name);
}

/* Appends to a growing string; false on ENOMEM. */
static bool append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
        IMGNODE_PRINTF(4, 5);

static bool append(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return false;
		if ((size_t)n < *cap - *len) {
			*len += (size_t)n;
			return true;
		}
		char *bigger = realloc(*buf, *cap * 2 + (size_t)n);
		if (!bigger)
			return false;
		*buf = bigger;
		*cap = *cap * 2 + (size_t)n;
	}
}

static bool append_value(char **buf, size_t *len, size_t *cap,
                         const struct imgnode_arg *arg,
                         const union imgnode_value *v)
{
	switch (arg->type) {
	case IMGNODE_ARG_INT:
		return append(buf, len, cap, "%lld", (long long)v->i);
	case IMGNODE_ARG_NUMBER: return append(buf, len, cap, "%.15g", v->n);
	case IMGNODE_ARG_BOOL:
		return append(buf, len, cap, "%s", v->b ? "true" : "false");
	case IMGNODE_ARG_ENUM:
		return append(buf, len, cap, "%s", arg->choices[v->e]);
	case IMGNODE_ARG_STRING:
		if (!append(buf, len, cap, "\""))
			return false;
		for (const char *s = v->s; *s; s++)
			if (!append(buf, len, cap, "%s%c",
			            *s == '"' || *s == '\\' ? "\\" : "", *s))
				return false;
		return append(buf, len, cap, "\"");
	case IMGNODE_ARG_IMAGE: return append(buf, len, cap, "%s", v->s);
	}
	return false;
}

/* thumbnail(crop=none,height=0,width=800)|sharpen(sigma=1)|webp(q=75) */
static char *canonical(struct pipeline *pl)
{
	size_t len = 0, cap = 128;
	char *buf = malloc(cap);

	if (!buf)
		return NULL;
	buf[0] = '\0';
	for (size_t i = 0; i < pl->n; i++) {
		struct pipeline_step *st = &pl->steps[i];
		const struct imgnode_arg *args = st->ops->args;
		size_t nargs = count_args(args), order[ARGS_MAX];

		for (size_t k = 0; k < nargs; k++)
			order[k] = k;
		qsort_r(order, nargs, sizeof(order[0]), cmp_arg_index,
		        (void *)args);
		if (i && !append(&buf, &len, &cap, "|"))
			goto out_free;
		st->at = len;
		if (!append(&buf, &len, &cap, "%s%s", st->name,
		            nargs ? "(" : ""))
			goto out_free;
		for (size_t k = 0; k < nargs; k++) {
			const struct imgnode_arg *a = &args[order[k]];
			if (!append(&buf, &len, &cap, "%s%s=", k ? "," : "",
			            a->name) ||
			    !append_value(&buf, &len, &cap, a,
			                  &st->args[order[k]]))
				goto out_free;
		}
		if (nargs && !append(&buf, &len, &cap, ")"))
			goto out_free;
		st->len = len - st->at;
	}
	return buf;

out_free:
	free(buf);
	return NULL;
}

struct pipeline *pipeline_parse(const char *text, const struct plugin_set *set,
                                char *err, size_t errlen)
{
	struct parser p = {text, 0, err, errlen};
	struct raw_step *raw;
	struct pipeline *pl;
	int n;

	if (strlen(text) > PIPELINE_MAX_LEN) {
		fail(&p, PIPELINE_MAX_LEN, "pipeline longer than %d characters",
		     PIPELINE_MAX_LEN);
		return NULL;
	}
	raw = calloc(PIPELINE_MAX_STEPS, sizeof(*raw));
	pl = calloc(1, sizeof(*pl));
	if (!raw || !pl ||
	    !(pl->steps = calloc(PIPELINE_MAX_STEPS, sizeof(*pl->steps)))) {
		fail(&p, 0, "out of memory");
		goto out_free;
	}
	skip_ws(&p);
	if (!text[p.pos]) {
		fail(&p, p.pos, "empty pipeline");
		goto out_free;
	}
	n = split(&p, raw);
	if (n < 0)
		goto out_free;
	for (int i = 0; i < n; i++) {
		if (resolve(&p, pl, set, &raw[i], i == n - 1)) {
			raw_free(raw, (size_t)n);
			goto out_free;
		}
	}
	raw_free(raw, (size_t)n);
	pl->canonical = canonical(pl);
	if (!pl->canonical) {
		fail(&p, 0, "out of memory");
		goto out_free;
	}
	free(raw);
	return pl;

out_free:
	free(raw);
	pipeline_free(pl);
	return NULL;
}

void pipeline_free(struct pipeline *pl)
{
	if (!pl)
		return;
	for (size_t i = 0; i < pl->n; i++)
		free(pl->steps[i].args);
	for (size_t i = 0; i < pl->nowned; i++)
		free(pl->owned[i]);
	free(pl->owned);
	free(pl->steps);
	free(pl->canonical);
	free(pl);
}

int pipeline_has_encoder(const struct pipeline *pl)
{
	return pl->n > 0 &&
	       (pl->steps[pl->n - 1].ops->flags & IMGNODE_FILTER_ENCODER);
}

const struct plugin *pipeline_default_encoder(const struct plugin_set *set,
                                              const char *format)
{
	for (const struct plugin *p = set->head; p; p = p->next) {
		const struct imgnode_filter_ops *ops = p->desc->ops;

		if (p->desc->kind == IMGNODE_KIND_FILTER &&
		    (ops->flags & IMGNODE_FILTER_ENCODER) && ops->format &&
		    strcmp(ops->format, format) == 0)
			return p;
	}
	return NULL;
}

int pipeline_default_args(const struct imgnode_arg *args,
                          union imgnode_value *v, size_t max)
{
	for (size_t i = 0; args[i].name; i++) {
		const char *d = args[i].def;
		char *end;

		if (i >= max || !d)
			return -EINVAL;
		switch (args[i].type) {
		case IMGNODE_ARG_INT: v[i].i = strtoll(d, &end, 10); break;
		case IMGNODE_ARG_NUMBER: v[i].n = strtod(d, &end); break;
		case IMGNODE_ARG_BOOL:
			v[i].b = !strcmp(d, "true") || !strcmp(d, "yes") ||
			         !strcmp(d, "1");
			break;
		case IMGNODE_ARG_ENUM:
			v[i].e = 0;
			for (int k = 0; args[i].choices[k]; k++)
				if (!strcmp(args[i].choices[k], d))
					v[i].e = k;
			break;
		case IMGNODE_ARG_STRING:
		case IMGNODE_ARG_IMAGE: v[i].s = d; break;
		}
	}
	return 0;
}
