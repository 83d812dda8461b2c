/*
 * The upload page (www/, installed under share/imgnode/www): its static
 * files, served from [ingress] www_dir at / without an API key, and the
 * two calls it makes besides the jobs API, which need one like every
 * /v1/ request:
 *
 *   GET /v1/presets              {"presets": [{"name", "pipeline"}...],
 *                                 "presets_only": bool}
 *   GET /v1/pipeline/check?pipeline=P
 *                                {"canonical": ...} or 400 with "column"
 *
 * A file is served only if every part of its path is a plain name
 * ([A-Za-z0-9_.-], not beginning with a dot), every directory on the way
 * and the file itself are not symlinks (each opened with O_NOFOLLOW,
 * below www_dir's descriptor), the file is regular and its extension one
 * of a short list that gives its Content-Type. Anything else is 404: no
 * listing, no "..", no hidden files, nothing outside the directory. The
 * page's answers carry a strict Content-Security-Policy (everything from
 * the node itself; images also from blob: and data: URLs, which the page
 * makes from the user's files and the results it fetched).
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingress.h"
#include "node_conf.h"
#include "pipeline.h"

#define PATH_MAX_LEN 255 /* longer request paths are 404 */
#define DEPTH_MAX 8 /* directories below www_dir */
#define CSP                                                                    \
	"default-src 'self'; img-src 'self' blob: data:; object-src 'none'; "  \
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

static const struct {
	const char *ext, *type;
} types[] = {
        {".html", "text/html; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
};

/* The Content-Type of name by its extension, or NULL: not served. */
static const char *type_of(const char *name)
{
	const char *dot = strrchr(name, '.');

	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++)
		if (strcmp(dot, types[i].ext) == 0)
			return types[i].type;
	return NULL;
}

/* The headers every answer of the page carries. */
static void page_headers(struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "Content-Security-Policy", CSP);
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	MHD_add_response_header(resp, "X-Frame-Options", "DENY");
}

/* True if name is one plain path part: [A-Za-z0-9_.-], no leading dot. */
static bool part_ok(const char *name, size_t len)
{
	if (!len || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

/*
 * Opens the file of url below dir, part by part without following a
 * symlink. The file's descriptor (the caller closes it) with its size in
 * *size, or -errno: -ENOENT for anything not served.
 */
static int open_below(const char *dir, const char *url, off_t *size)
{
	const char *rel = strcmp(url, "/") == 0 ? "/index.html" : url;
	int fd, next, depth = 0;
	struct stat sb;

	if (strlen(rel) > PATH_MAX_LEN || rel[0] != '/')
		return -ENOENT;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (const char *p = rel + 1;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		char name[PATH_MAX_LEN + 1];

		if (!part_ok(p, len) || (slash && ++depth > DEPTH_MAX)) {
			close(fd);
			return -ENOENT;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		next = openat(fd, name,
		              O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
		                      (slash ? O_DIRECTORY : O_NONBLOCK));
		close(fd);
		if (next < 0)
			return errno == ELOOP || errno == ENOTDIR ? -ENOENT
			                                          : -errno;
		fd = next;
		if (!slash)
			break;
		p = slash + 1;
	}
	if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
		close(fd);
		return -ENOENT;
	}
	*size = sb.st_size;
	return fd;
}

enum MHD_Result ingress_page_file(struct request *r, const char *url)
{
	const char *dir = r->in->conf->app->ingress.www_dir;
	const char *type = type_of(strcmp(url, "/") == 0 ? "index.html" : url);
	struct MHD_Response *resp;
	off_t size = 0;
	int fd;

	if (!dir || !dir[0] || !type)
		return ingress_fail_now(r, MHD_HTTP_NOT_FOUND, "not found",
		                        "no such path: %s", r->path);
	fd = open_below(dir, url, &size);
	if (fd == -ENOENT || fd == -EACCES || fd == -EISDIR)
		return ingress_fail_now(r, MHD_HTTP_NOT_FOUND, "not found",
		                        "no such path: %s", r->path);
	if (fd < 0)
		return ingress_fail_now(
		        r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error",
		        "unable to read the page: %s", strerror(-fd));
	resp = MHD_create_response_from_fd((uint64_t)size, fd);
	if (!resp) {
		close(fd);
		return ingress_respond(r, MHD_HTTP_OK, NULL, 0);
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
	                        "no-cache");
	page_headers(resp);
	return ingress_respond(r, MHD_HTTP_OK, resp, (size_t)size);
}

enum MHD_Result ingress_page_presets(struct request *r)
{
	const struct conf *conf = r->in->conf;
	json_t *list = json_array();
	char err[512];

	for (const struct preset *p = conf->app->presets; p && list;
	     p = p->next) {
		struct pipeline *pl = pipeline_parse(p->pipeline, &r->in->set,
		                                     err, sizeof(err));

		json_array_append_new(
		        list,
		        json_pack("{s:s, s:s}", "name", p->name, "pipeline",
		                  pl ? pl->canonical : p->pipeline));
		pipeline_free(pl);
	}
	return ingress_answer_json(r, MHD_HTTP_OK,
	                           json_pack("{s:o*, s:b}", "presets", list,
	                                     "presets_only",
	                                     conf->app->ingress.presets_only));
}

enum MHD_Result ingress_page_check(struct request *r)
{
	const char *text = NULL;
	struct pipeline *pl;
	char err[512];
	size_t len = 0;
	json_t *j;
	long col;

	if (MHD_lookup_connection_value_n(r->conn, MHD_GET_ARGUMENT_KIND,
	                                  "pipeline", strlen("pipeline"), &text,
	                                  &len) != MHD_YES ||
	    !text)
		return ingress_fail_now(r, MHD_HTTP_BAD_REQUEST, "bad request",
		                        "give ?pipeline=...");
	for (size_t k = 0; k < len; k++)
		if ((unsigned char)text[k] < 0x20 || text[k] == 0x7f)
			return ingress_fail_now(
			        r, MHD_HTTP_BAD_REQUEST, "bad request",
			        "pipeline= has a control character (byte 0x%02x at %zu): only text is accepted",
			        (unsigned char)text[k], k);
	if (r->in->conf->app->ingress.presets_only)
		return ingress_fail_now(r, MHD_HTTP_BAD_REQUEST, "bad pipeline",
		                        "this node accepts only ?preset=NAME");
	pl = pipeline_parse(text, &r->in->set, err, sizeof(err));
	if (pl) {
		j = json_pack("{s:s, s:b}", "canonical", pl->canonical,
		              "encoder", pipeline_has_encoder(pl));
		pipeline_free(pl);
		return ingress_answer_json(r, MHD_HTTP_OK, j);
	}
	ingress_fail(r, MHD_HTTP_BAD_REQUEST, "bad pipeline", "%s", err);
	j = json_pack("{s:s, s:s}", "error", r->fail_error, "detail",
	              r->fail_detail);
	if (j && sscanf(err, "column %ld:", &col) == 1)
		json_object_set_new(j, "column", json_integer(col));
	return ingress_answer_json(r, MHD_HTTP_BAD_REQUEST, j);
}
