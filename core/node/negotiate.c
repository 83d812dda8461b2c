/*
 * Format negotiation (see negotiate.h): Accept parsing, the choice, and
 * rewriting a pipeline's `auto` step into the chosen encoder.
 */
#include "negotiate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../plugin.h"
#include "image_info.h"
#include "pipeline.h"

#define AUTO_STEP "auto"
#define RANGES_MAX 64 /* Accept ranges looked at; more are ignored */

static const struct {
	const char *mime;
	const char *encoder; /* the filter plugin */
	bool explicit_only; /* a wildcard does not accept it */
} formats[NEGOTIATE_FORMATS] = {
        [NEGOTIATE_AVIF] = {"image/avif", "avif", true},
        [NEGOTIATE_WEBP] = {"image/webp", "webp", true},
        [NEGOTIATE_JPEG] = {"image/jpeg", "jpeg", false},
        [NEGOTIATE_PNG] = {"image/png", "png", false},
        [NEGOTIATE_GIF] = {"image/gif", "gif", false},
};

static bool space(char c)
{
	return c == ' ' || c == '\t';
}

/* Trims spaces from [*s, *e). */
static void trim(const char **s, const char **e)
{
	while (*s < *e && space(**s))
		(*s)++;
	while (*e > *s && space((*e)[-1]))
		(*e)--;
}

/*
 * The q of one range's parameters "; q=0.5; x=y" in [p, end): 0..1000,
 * 1000 if absent, -1 if malformed.
 */
static int q_of(const char *p, const char *end)
{
	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *s = p, *e = semi ? semi : end;

		p = semi ? semi + 1 : end;
		trim(&s, &e);
		if (e - s < 2 || (s[0] != 'q' && s[0] != 'Q') || s[1] != '=')
			continue;
		s += 2;
		/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) */
		if (s >= e || (*s != '0' && *s != '1'))
			return -1;
		int q = (*s - '0') * 1000, scale = 100;
		s++;
		if (s < e && *s == '.')
			for (s++; s < e && scale; s++, scale /= 10) {
				if (*s < '0' || *s > '9')
					return -1;
				q += (*s - '0') * scale;
			}
		return s == e && q <= 1000 ? q : -1;
	}
	return 1000;
}

int negotiate_accept_q(const char *accept, const char *mime, bool *exact)
{
	const char *slash = strchr(mime, '/');
	size_t tlen = slash ? (size_t)(slash - mime) : strlen(mime);
	int best = -1, best_rank = -1, n = 0;

	if (exact)
		*exact = false;
	for (const char *p = accept; p && *p && n < RANGES_MAX; n++) {
		const char *comma = strchr(p, ',');
		const char *end = comma ? comma : p + strlen(p);
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *s = p, *e = semi ? semi : end;
		int rank = -1, q;

		p = comma ? comma + 1 : end;
		trim(&s, &e);
		if ((size_t)(e - s) == 3 && !memcmp(s, "*/*", 3))
			rank = 0;
		else if ((size_t)(e - s) == tlen + 2 &&
		         !strncasecmp(s, mime, tlen + 1) && s[tlen + 1] == '*')
			rank = 1;
		else if ((size_t)(e - s) == strlen(mime) &&
		         !strncasecmp(s, mime, strlen(mime)))
			rank = 2;
		if (rank <= best_rank)
			continue;
		q = q_of(semi ? semi + 1 : end, end);
		if (q < 0)
			continue;
		best = q;
		best_rank = rank;
	}
	if (exact)
		*exact = best_rank == 2;
	return best;
}

/* The weight accept gives format f: 0..1000, or -1 if it does not take
 * it (for AVIF and WebP: unless named). */
static int weight(const char *accept, enum negotiate_format f)
{
	bool exact;
	int q = negotiate_accept_q(accept, formats[f].mime, &exact);

	if (formats[f].explicit_only && !exact)
		return -1;
	return q > 0 ? q : -1;
}

int negotiate_encoder(const char *accept, const struct negotiate_image *img,
                      const struct formats_conf *fc, unsigned available,
                      char *step, size_t len)
{
	enum negotiate_format plain = img->animated ? NEGOTIATE_GIF
	                              : img->alpha  ? NEGOTIATE_PNG
	                                            : NEGOTIATE_JPEG;
	/* candidates, best first: the tie-break */
	enum negotiate_format order[3] = {NEGOTIATE_AVIF, NEGOTIATE_WEBP,
	                                  plain};
	int pick = -1, best = 0;

	if (!fc->auto_avif || img->animated)
		order[0] = NEGOTIATE_WEBP; /* listed twice: harmless */
	for (int i = 0; accept && i < 3; i++) {
		int w = weight(accept, order[i]);
		if ((available & 1u << order[i]) && w > best) {
			best = w;
			pick = (int)order[i];
		}
	}
	if (pick < 0 && (available & 1u << plain))
		pick = (int)plain; /* by the image alone */
	for (int i = 0; pick < 0 && i < 3; i++)
		if (available & 1u << order[i])
			pick = (int)order[i];
	if (pick < 0)
		return -ENOENT;
	switch (pick) {
	case NEGOTIATE_AVIF:
		snprintf(step, len, "avif(q=%lld)",
		         (long long)fc->avif_quality);
		break;
	case NEGOTIATE_WEBP:
		snprintf(step, len, "webp(q=%lld)",
		         (long long)fc->webp_quality);
		break;
	case NEGOTIATE_JPEG:
		snprintf(step, len, "jpeg(q=%lld)",
		         (long long)fc->jpeg_quality);
		break;
	default: snprintf(step, len, "%s", formats[pick].encoder); break;
	}
	return pick;
}

bool negotiate_wanted(const struct pipeline *pl)
{
	return pl->n > 0 && !strcmp(pl->steps[pl->n - 1].name, AUTO_STEP);
}

/* The formats whose encoder plugin set has loaded, as a mask. */
static unsigned available_in(const struct plugin_set *set)
{
	unsigned mask = 0;

	for (const struct plugin *p = set->head; p; p = p->next)
		for (int f = 0; f < NEGOTIATE_FORMATS; f++)
			if (p->desc->kind == IMGNODE_KIND_FILTER &&
			    !strcmp(p->desc->name, formats[f].encoder))
				mask |= 1u << f;
	return mask;
}

int negotiate_pipeline(struct pipeline **pl, const struct plugin_set *set,
                       const char *accept, const struct image_info *info,
                       const struct formats_conf *fc, char *err, size_t errlen)
{
	const struct pipeline_step *last;
	struct negotiate_image img = {
	        .alpha = info->bands == 2 || info->bands == 4,
	        .animated = info->pages > 1,
	};
	struct pipeline *chosen;
	char step[64], *text, why[512];
	size_t keep;

	if (!negotiate_wanted(*pl))
		return 0;
	if (negotiate_encoder(accept, &img, fc, available_in(set), step,
	                      sizeof(step)) < 0) {
		snprintf(
		        err, errlen,
		        "auto: no encoder to pick from (avif, webp, jpeg, png and gif are not loaded)");
		return -ENOENT;
	}
	last = &(*pl)->steps[(*pl)->n - 1];
	keep = last->at; /* the canonical text before "auto" */
	text = malloc(keep + strlen(step) + 1);
	if (!text) {
		snprintf(err, errlen, "auto: out of memory");
		return -ENOMEM;
	}
	memcpy(text, (*pl)->canonical, keep);
	memcpy(text + keep, step, strlen(step) + 1);
	chosen = pipeline_parse(text, set, why, sizeof(why));
	free(text);
	if (!chosen) {
		snprintf(err, errlen, "auto: %s: %s", step, why);
		return -EINVAL;
	}
	pipeline_free(*pl);
	*pl = chosen;
	return 0;
}
