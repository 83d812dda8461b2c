/*
 * libFuzzer harness: uploads, POST /v1/jobs, through the ingress's real
 * HTTP daemon (ingress_http_start: libmicrohttpd, its post processor, and
 * ingress_submit.c's query checks, part handler, body accounting). Each
 * input is one request on a socket pair handed to the daemon: the input's
 * first line is "QUERY<TAB>CONTENT-TYPE" (or just the Content-Type), the
 * rest the body.
 *
 * The node has no filters here, so no pipeline resolves and nothing is
 * stored: every upload must be refused, and (the project's rule for bad
 * input) with a 4xx and a JSON {"error", "detail"} body, and the request's
 * memory freed when it completes. [ingress] max_body is 1 KiB, so the
 * "too big" paths are in reach of small inputs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conf_keys.h"
#include "config.h"
#include "fuzz.h"
#include "log.h"
#include "node/ingress.h"
#include "node/metrics.h"
#include "node/node_conf.h"
#include "node/quota.h"

#define CONTENT_TYPE_MAX 256
#define QUERY_MAX 2048
#define ANSWER_MAX (64 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ingress in;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[CONF_ERR_MAX];
	struct conf *conf = calloc(1, sizeof(*conf));

	(void)argc, (void)argv;
	node_conf_register();
	signal(SIGPIPE, SIG_IGN); /* an early answer closes the socket */
	log_set_level(LOG_ERROR);
	if (!conf || !(conf->path = strdup("fuzz.ini")) ||
	    conf_fill_sections(conf, err, sizeof(err))) {
		fprintf(stderr, "fuzz_multipart: defaults: %s\n", err);
		exit(1);
	}
	conf->app->ingress.port =
	        0; /* any free port; requests come by socket pair */
	conf->app->ingress.max_body = 1024;
	/* what ingress.c sets up before the daemon, without the plugins */
	in.conf = conf;
	in.metrics = metrics_create();
	pthread_mutex_init(&in.jobs, NULL);
	if (!in.metrics || ingress_pending_init(&in)) {
		fprintf(stderr, "fuzz_multipart: out of memory\n");
		exit(1);
	}
	if (ingress_http_start(&in, err, sizeof(err))) {
		fprintf(stderr, "fuzz_multipart: %s\n", err);
		exit(1);
	}
	return 0;
}

/* Writes req and reads the whole answer (the daemon closes after it). */
static size_t exchange(int fd, const char *req, size_t len, char *answer,
                       size_t max)
{
	size_t sent = 0, got = 0;
	bool open_for_writes = true;

	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (open_for_writes && sent < len)
			p.events |= POLLOUT;
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			abort();
		if (p.revents & POLLOUT) {
			n = send(fd, req + sent, len - sent, MSG_DONTWAIT);
			if (n > 0)
				sent += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				open_for_writes = false; /* answered early */
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			char sink[4096];
			char *to = got < max ? answer + got : sink;
			size_t room = got < max ? max - got : sizeof(sink);

			n = recv(fd, to, room, MSG_DONTWAIT);
			if (n == 0 ||
			    (n < 0 && errno != EAGAIN && errno != EINTR))
				break;
			if (n > 0 && to != sink)
				got += (size_t)n;
		}
	}
	return got;
}

/* Waits (bounded by libFuzzer's -timeout) for the daemon to finish the
 * request: its memory is freed in the completion callback. */
static void wait_idle(void)
{
	const union MHD_DaemonInfo *info;

	for (;;) {
		info = MHD_get_daemon_info(in.daemon,
		                           MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
		if (atomic_load(&in.active) == 0 && info &&
		    info->num_connections == 0)
			return;
		usleep(50);
	}
}

static void check_answer(const char *answer, size_t len)
{
	const char *body = memmem(answer, len, "\r\n\r\n", 4);
	json_t *j, *error, *detail;
	unsigned status = 0;

	FUZZ_CHECK(len > 12 && sscanf(answer, "HTTP/1.1 %3u ", &status) == 1,
	           "no HTTP answer (%zu bytes)", len);
	FUZZ_CHECK(status >= 400 && status < 500,
	           "an upload to a node without filters answered %u", status);
	FUZZ_CHECK(body, "no end of headers");
	body += 4;
	j = json_loadb(body, len - (size_t)(body - answer), 0, NULL);
	error = json_object_get(j, "error");
	detail = json_object_get(j, "detail");
	FUZZ_CHECK(json_is_string(error) && json_is_string(detail) &&
	                   json_string_length(detail) > 0,
	           "%u without a JSON error: %.*s", status,
	           (int)(len - (size_t)(body - answer)), body);
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char answer[ANSWER_MAX];
	const uint8_t *nl = memchr(data, '\n', size), *type = data;
	const uint8_t *tab =
	        nl ? memchr(data, '\t', (size_t)(nl - data)) : NULL;
	size_t qlen = tab ? (size_t)(tab - data) : 0;
	size_t tlen, blen, hlen, alen;
	struct sockaddr_in peer = {.sin_family = AF_INET,
	                           .sin_port = htons(40000)};
	char head[QUERY_MAX + CONTENT_TYPE_MAX + 256];
	char *req;
	int sv[2];

	if (!nl)
		return 0;
	if (tab)
		type = tab + 1;
	tlen = (size_t)(nl - type);
	if (qlen > QUERY_MAX || tlen > CONTENT_TYPE_MAX)
		return 0;
	/* what libmicrohttpd refuses itself, before any of our code runs */
	for (size_t i = 0; i < qlen; i++)
		if (data[i] <= 0x20 || data[i] >= 0x7f || data[i] == '#')
			return 0;
	for (size_t i = 0; i < tlen; i++)
		if (type[i] < 0x20 || type[i] == 0x7f)
			return 0;
	blen = size - (size_t)(nl + 1 - data);
	hlen = (size_t)snprintf(head, sizeof(head),
	                        "POST /v1/jobs%s%.*s HTTP/1.1\r\nHost: fuzz\r\n"
	                        "Connection: close\r\nContent-Type: %.*s\r\n"
	                        "Content-Length: %zu\r\n\r\n",
	                        qlen ? "?" : "", (int)qlen, (const char *)data,
	                        (int)tlen, (const char *)type, blen);
	req = malloc(hlen + blen);
	if (!req)
		return 0;
	memcpy(req, head, hlen);
	memcpy(req + hlen, nl + 1, blen);
	inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		abort();
	if (MHD_add_connection(in.daemon, sv[1], (struct sockaddr *)&peer,
	                       sizeof(peer)) != MHD_YES)
		abort();
	alen = exchange(sv[0], req, hlen + blen, answer, sizeof(answer));
	close(sv[0]);
	wait_idle();
	free(req);
	check_answer(answer, alen);
	return 0;
}
