/*
 * Typed configuration values: parsing the INI text of one value into its C
 * form, formatting it back, and freeing it. Defaults in key tables are text
 * too and go through the same parser, so a default can never be a value a
 * user could not write.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

void conf_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Parses a run of decimal digits; returns the end or NULL on overflow/none. */
static const char *parse_digits(const char *s, int64_t *out)
{
	int64_t v = 0;
	const char *p = s;

	while (isdigit((unsigned char)*p)) {
		int d = *p - '0';
		if (v > (INT64_MAX - d) / 10)
			return NULL;
		v = v * 10 + d;
		p++;
	}
	if (p == s)
		return NULL;
	*out = v;
	return p;
}

static int parse_int(const char *s, int64_t *out)
{
	bool neg = false;
	const char *end;

	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	end = parse_digits(s, out);
	if (!end || *end)
		return -EINVAL;
	if (neg)
		*out = -*out;
	return 0;
}

static int mul_check(int64_t v, int64_t m, int64_t *out)
{
	if (v > INT64_MAX / m)
		return -ERANGE;
	*out = v * m;
	return 0;
}

/* "512", "64K", "50M", "2G", "1T"; an optional "B" or "iB" after the unit. */
static int parse_size(const char *s, int64_t *out)
{
	int64_t v, mult = 1;
	const char *p = parse_digits(s, &v);

	if (!p)
		return -EINVAL;
	switch (toupper((unsigned char)*p)) {
	case 'K':
		mult = INT64_C(1) << 10;
		p++;
		break;
	case 'M':
		mult = INT64_C(1) << 20;
		p++;
		break;
	case 'G':
		mult = INT64_C(1) << 30;
		p++;
		break;
	case 'T':
		mult = INT64_C(1) << 40;
		p++;
		break;
	default: break;
	}
	if (mult > 1 && *p == 'i' && p[1] == 'B')
		p += 2;
	else if (*p == 'B')
		p++;
	if (*p)
		return -EINVAL;
	return mul_check(v, mult, out);
}

/* "500ms", "30s", "5m", "1h", "1d", "1m30s"; a bare number is seconds. */
static int parse_duration(const char *s, int64_t *out)
{
	int64_t total = 0;
	const char *p = s;

	if (!*p)
		return -EINVAL;
	while (*p) {
		int64_t v, mult, part;

		p = parse_digits(p, &v);
		if (!p)
			return -EINVAL;
		if (strncmp(p, "ms", 2) == 0) {
			mult = 1;
			p += 2;
		} else if (*p == 's') {
			mult = 1000;
			p++;
		} else if (*p == 'm') {
			mult = 60 * 1000;
			p++;
		} else if (*p == 'h') {
			mult = 3600 * 1000;
			p++;
		} else if (*p == 'd') {
			mult = 86400 * 1000;
			p++;
		} else if (*p == '\0' && p != s && total == 0) {
			mult = 1000;
		} else {
			return -EINVAL;
		}
		if (mul_check(v, mult, &part) || total > INT64_MAX - part)
			return -ERANGE;
		total += part;
	}
	*out = total;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1", NULL};
	static const char *const no[] = {"no", "false", "off", "0", NULL};

	for (int i = 0; yes[i]; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

void conf_value_wipe(char *s)
{
	if (s)
		explicit_bzero(s, strlen(s));
}

static void list_free(struct imgnode_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		conf_value_wipe(l->items[i]);
		free(l->items[i]);
	}
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

/* Splits on commas, trimming blanks. An empty string is an empty list. */
static int parse_list(const char *s, struct imgnode_list *out, char *err,
                      size_t errlen)
{
	struct imgnode_list l = {0, NULL};
	const char *p = s;

	while (isspace((unsigned char)*p))
		p++;
	if (!*p) {
		*out = l;
		return 0;
	}
	for (;;) {
		const char *start, *end, *comma = strchr(p, ',');
		char **items;

		end = comma ? comma : p + strlen(p);
		start = p;
		while (start < end && isspace((unsigned char)*start))
			start++;
		while (end > start && isspace((unsigned char)end[-1]))
			end--;
		if (end == start) {
			conf_set_err(err, errlen, "empty item in list \"%s\"",
			             s);
			list_free(&l);
			return -EINVAL;
		}
		items = realloc(l.items, (l.n + 1) * sizeof(*items));
		if (!items)
			goto out_nomem;
		l.items = items;
		l.items[l.n] = strndup(start, (size_t)(end - start));
		if (!l.items[l.n])
			goto out_nomem;
		l.n++;
		if (!comma)
			break;
		p = comma + 1;
	}
	*out = l;
	return 0;

out_nomem:
	list_free(&l);
	conf_set_err(err, errlen, "out of memory");
	return -ENOMEM;
}

static void format_choices(const struct imgnode_conf_key *key, char *buf,
                           size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (int i = 0; key->choices && key->choices[i]; i++) {
		int n = snprintf(buf + used, len - used, "%s%s", i ? ", " : "",
		                 key->choices[i]);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
}

static int check_bounds(const struct imgnode_conf_key *key, int64_t v,
                        const char *text, char *err, size_t errlen)
{
	char lo[64], hi[64];

	if (key->min >= key->max || (v >= key->min && v <= key->max))
		return 0;
	conf_value_format(key, &key->min, lo, sizeof(lo));
	conf_value_format(key, &key->max, hi, sizeof(hi));
	conf_set_err(err, errlen, "%s is out of range (%s to %s)", text, lo,
	             hi);
	return -ERANGE;
}

int conf_value_parse(const struct imgnode_conf_key *key, const char *text,
                     void *dst, char *err, size_t errlen)
{
	static const char *const what[] = {
	        [IMGNODE_CONF_INT] = "an integer",
	        [IMGNODE_CONF_SIZE] = "a size (e.g. 512K, 50M, 2G)",
	        [IMGNODE_CONF_DURATION] = "a duration (e.g. 500ms, 30s, 5m)",
	};
	int64_t v;
	int ret;
	char choices[512];

	if (key->type & ~(0xff | IMGNODE_CONF_SECRET))
		goto out_unknown;
	switch (IMGNODE_CONF_TYPE(key)) {
	case IMGNODE_CONF_PATH:
		/* empty: unset; the key's help says what that means */
		if (text[0] && text[0] != '/') {
			conf_set_err(err, errlen,
			             "\"%s\" is not an absolute path", text);
			return -EINVAL;
		}
		/* fall through */
	case IMGNODE_CONF_STRING: {
		char *s = strdup(text);
		if (!s) {
			conf_set_err(err, errlen, "out of memory");
			return -ENOMEM;
		}
		*(char **)dst = s;
		return 0;
	}
	case IMGNODE_CONF_BOOL:
		if (parse_bool(text, dst) == 0)
			return 0;
		conf_set_err(
		        err, errlen,
		        "\"%s\" is not a boolean (yes/no, true/false, on/off, 1/0)",
		        text);
		return -EINVAL;
	case IMGNODE_CONF_INT:
	case IMGNODE_CONF_SIZE:
	case IMGNODE_CONF_DURATION:
		/* an INT's words: the first is stored as -1, the next -2... */
		for (int i = 0; IMGNODE_CONF_TYPE(key) == IMGNODE_CONF_INT &&
		                key->choices && key->choices[i];
		     i++) {
			if (strcmp(text, key->choices[i]) == 0) {
				*(int64_t *)dst = -1 - i;
				return 0;
			}
		}
		if (IMGNODE_CONF_TYPE(key) == IMGNODE_CONF_INT)
			ret = parse_int(text, &v);
		else if (IMGNODE_CONF_TYPE(key) == IMGNODE_CONF_SIZE)
			ret = parse_size(text, &v);
		else
			ret = parse_duration(text, &v);
		if (ret == -ERANGE) {
			conf_set_err(err, errlen, "%s is too large", text);
			return ret;
		}
		if (ret) {
			format_choices(key, choices, sizeof(choices));
			conf_set_err(err, errlen, "\"%s\" is not %s%s%s", text,
			             what[IMGNODE_CONF_TYPE(key)],
			             key->choices ? " or " : "",
			             key->choices ? choices : "");
			return ret;
		}
		ret = check_bounds(key, v, text, err, errlen);
		if (ret)
			return ret;
		*(int64_t *)dst = v;
		return 0;
	case IMGNODE_CONF_ENUM:
		for (int i = 0; key->choices && key->choices[i]; i++) {
			if (strcmp(text, key->choices[i]) == 0) {
				*(int *)dst = i;
				return 0;
			}
		}
		format_choices(key, choices, sizeof(choices));
		conf_set_err(err, errlen, "\"%s\" is not one of: %s", text,
		             choices);
		return -EINVAL;
	case IMGNODE_CONF_LIST: return parse_list(text, dst, err, errlen);
	}
out_unknown:
	conf_set_err(err, errlen, "key has unknown type %d", (int)key->type);
	return -EINVAL;
}

void conf_value_free(const struct imgnode_conf_key *key, void *dst)
{
	switch (IMGNODE_CONF_TYPE(key)) {
	case IMGNODE_CONF_STRING:
	case IMGNODE_CONF_PATH:
		conf_value_wipe(*(char **)dst);
		free(*(char **)dst);
		*(char **)dst = NULL;
		break;
	case IMGNODE_CONF_LIST: list_free(dst); break;
	default: break;
	}
}

static void format_scaled(int64_t v, const int64_t *mult,
                          const char *const *unit, size_t n, char *buf,
                          size_t len)
{
	for (size_t i = 0; i < n; i++) {
		if (v != 0 && v % mult[i] == 0) {
			snprintf(buf, len, "%" PRId64 "%s", v / mult[i],
			         unit[i]);
			return;
		}
	}
	snprintf(buf, len, "%" PRId64 "%s", v, unit[n]);
}

void conf_value_format(const struct imgnode_conf_key *key, const void *src,
                       char *buf, size_t len)
{
	static const int64_t size_mult[] = {INT64_C(1) << 40, INT64_C(1) << 30,
	                                    INT64_C(1) << 20, INT64_C(1) << 10};
	static const char *const size_unit[] = {"T", "G", "M", "K", ""};
	static const int64_t dur_mult[] = {86400000, 3600000, 60000, 1000};
	static const char *const dur_unit[] = {"d", "h", "m", "s", "ms"};
	const struct imgnode_list *l;
	size_t used = 0;

	buf[0] = '\0';
	switch (IMGNODE_CONF_TYPE(key)) {
	case IMGNODE_CONF_STRING:
	case IMGNODE_CONF_PATH:
		snprintf(buf, len, "%s",
		         *(char *const *)src ? *(char *const *)src : "");
		break;
	case IMGNODE_CONF_BOOL:
		snprintf(buf, len, "%s", *(const bool *)src ? "yes" : "no");
		break;
	case IMGNODE_CONF_INT: {
		int64_t v = *(const int64_t *)src;
		int n = 0;

		while (key->choices && key->choices[n])
			n++;
		if (v < 0 && -1 - v < n)
			snprintf(buf, len, "%s", key->choices[-1 - v]);
		else
			snprintf(buf, len, "%" PRId64, v);
		break;
	}
	case IMGNODE_CONF_SIZE:
		format_scaled(*(const int64_t *)src, size_mult, size_unit, 4,
		              buf, len);
		break;
	case IMGNODE_CONF_DURATION:
		format_scaled(*(const int64_t *)src, dur_mult, dur_unit, 4, buf,
		              len);
		break;
	case IMGNODE_CONF_ENUM: {
		int i = *(const int *)src;
		snprintf(buf, len, "%s", key->choices[i]);
		break;
	}
	case IMGNODE_CONF_LIST:
		l = src;
		for (size_t i = 0; i < l->n; i++) {
			int n = snprintf(buf + used, len - used, "%s%s",
			                 i ? ", " : "", l->items[i]);
			if (n < 0 || (size_t)n >= len - used)
				break;
			used += (size_t)n;
		}
		break;
	}
}
