/*
 * The image node's configuration sections, each key declared once
 * ([workers], [ingress], [limits]), the presets, and the checks across
 * keys; registered with the runtime's loader by node_conf_register.
 */
#include "node_conf.h"

#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../conf_keys.h"
#include "callback.h"

#ifndef IMGNODE_WWW_DIR
#define IMGNODE_WWW_DIR "/usr/share/imgnode/www"
#endif

#define HOUR (3600 * 1000)
#define WRK(f) offsetof(struct workers_conf, f)
#define ING(f) offsetof(struct ingress_conf, f)
#define LIM(f) offsetof(struct limits_conf, f)
#define RET(f) offsetof(struct retention_conf, f)
#define WHK(f) offsetof(struct webhooks_conf, f)
#define DAY (24 * HOUR)
#define GIB (INT64_C(1) << 30)
#define MAX_MEMORY_MIN (INT64_C(256) << 20)

static const char *const auto_word[] = {"auto", NULL};

static const struct imgnode_conf_key workers_keys[] = {
        {"count", IMGNODE_CONF_INT, "auto", 0, 256, auto_word,
         "Worker processes; each runs one job at a time. auto: one per CPU core the node may run on (its CPU affinity), the measured best (libvips gains little from threads inside one image).",
         WRK(count)},
        {"intensity", IMGNODE_CONF_INT, "20", 0, 100000, NULL,
         "Worker crashes allowed within [supervisor] period before the pool gives up; a poison job alone crashes up to the transport's delivery_limit workers.",
         WRK(intensity)},
        {"backoff_max", IMGNODE_CONF_DURATION, "1s", 0, HOUR, NULL,
         "Cap of a worker's restart backoff ([supervisor] backoff_min doubling), in place of [supervisor] backoff_max. Each worker backs off on its own, so a pool whose workers all crashed has one starting again within this of its last crash, and ready a worker's start later (docs/supervision.md); /readyz says 503 meanwhile. Restarts still count against intensity.",
         WRK(backoff_max)},
        {"max_jobs", IMGNODE_CONF_INT, "1000", 0, INT64_C(1) << 40, NULL,
         "A worker is replaced after this many jobs, which bounds allocator growth (0 = never).",
         WRK(max_jobs)},
        {"max_rss", IMGNODE_CONF_SIZE, "1G", 0, INT64_C(1) << 50, NULL,
         "A worker whose resident memory passes this is replaced once its job is done (0 = no limit).",
         WRK(max_rss)},
        {"max_memory", IMGNODE_CONF_SIZE, "2G", 0, INT64_C(1) << 50, NULL,
         "Address space a worker may reserve (RLIMIT_AS, set before libvips starts): an allocation past it fails, failing the job, or the worker dies and is replaced and the job is retried up to the transport's delivery limit. It counts reservations (thread stacks, malloc arenas, libraries), not resident memory: an idle worker reserves 300-500 MB (librados adds threads), so keep it well above max_rss (0 = no limit; else at least 256M).",
         WRK(max_memory)},
        {"seccomp", IMGNODE_CONF_BOOL, "yes", 0, 0, NULL,
         "Once started, workers run under no_new_privs and a seccomp allow-list of system calls: no exec, no fork, no Unix or raw sockets, no signals to other processes; a call outside it fails with EPERM. Turn it off only to debug a plugin that needs more.",
         WRK(seccomp)},
        {"job_timeout", IMGNODE_CONF_DURATION, "60s", 100, 24 * HOUR, NULL,
         "A worker still busy with one job after this is killed; the job is retried once, and fails (\"killed after job_timeout\") if it overruns again.",
         WRK(job_timeout)},
        {"heartbeat", IMGNODE_CONF_DURATION, "10s", 100, HOUR, NULL,
         "An idle worker that has not reported for this long is killed and replaced.",
         WRK(heartbeat)},
        {"stuck_after", IMGNODE_CONF_DURATION, "1h", 1000, 7 * 24 * HOUR, NULL,
         "A job whose record has stayed queued (since it was created) or running (since it started) this long is taken for lost (its message never published, or gone with a broker) and published again by the reaper's sweep, with the reason in the record; a duplicate of a job that was only waiting is harmless (results are keyed by content and a worker skips a job already over), but wasted work, so keep it well above job_timeout x delivery_limit plus the longest queue wait; it must be longer than job_timeout.",
         WRK(stuck_after)},
        {"stuck_republish", IMGNODE_CONF_INT, "3", 0, 1000, NULL,
         "Times the sweep publishes a stuck job again before it marks it failed with the reason (0 = fail it at once).",
         WRK(stuck_republish)},
        {"concurrency", IMGNODE_CONF_INT, "1", 1, 64, NULL,
         "libvips threads per job.", WRK(concurrency)},
        {"nice", IMGNODE_CONF_INT, "10", 0, 19, NULL,
         "Added to the node's niceness for the workers, which also run as SCHED_BATCH: when images keep every core busy, the ingress, the supervisor and heartbeats still get the CPU at once (0 = the node's priority).",
         WRK(nice)},
        {"sequential_access", IMGNODE_CONF_BOOL, "yes", 0, 0, NULL,
         "Decode an upload in one top-to-bottom pass (libvips' sequential access) when every step of its pipeline reads that way (no quarter turns, upside-down flips or attention crops, and no EXIF turn): it streams instead of holding the whole decoded image; the output is the same (no = always random access).",
         WRK(sequential_access)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

const struct imgnode_conf_key ingress_conf_keys[] =
        {
                {"listen", IMGNODE_CONF_STRING, "127.0.0.1", 0, 0, NULL,
                 "Address the HTTP API listens on (IPv4 or IPv6 literal).",
                 ING(listen)},
                {"port", IMGNODE_CONF_INT, "8080", 1, 65535, NULL,
                 "TCP port of the HTTP API.", ING(port)},
                {"max_body", IMGNODE_CONF_SIZE, "50M", 1, 4 * GIB, NULL,
                 "Largest upload accepted; bigger ones get 413.",
                 ING(max_body)},
                {"wait_max", IMGNODE_CONF_DURATION, "30s", 0, HOUR, NULL,
                 "Longest ?wait= a client may ask for.", ING(wait_max)},
                {"request_timeout", IMGNODE_CONF_DURATION, "60s", 1000, HOUR,
                 NULL,
                 "A connection idle for this long is closed (slow clients).",
                 ING(request_timeout)},
                {"request_deadline", IMGNODE_CONF_DURATION, "2m", 1000,
                 24 * HOUR, NULL,
                 "A request whose headers and body have not all arrived this long after it began is closed, however steadily it trickles in (slow clients).",
                 ING(request_deadline)},
                {"dependency_wait", IMGNODE_CONF_DURATION, "5s", 100,
                 5 * 60 * 1000, NULL,
                 "Longest a request waits for one storage or transport call (or request_deadline, if shorter); past it the request gets 503 (\"storage unavailable\" or \"transport unavailable\", with Retry-After) and the dependency counts as down: until it answers a ping (each second, never two calls at once), requests needing it get that 503 at once and /readyz says 503. Keep it above the time the storage takes to store the largest upload. A request meets at most one such wait per dependency, so during an outage the slowest answer is wait_max + 2 x dependency_wait after the request arrived (40 s by default).",
                 ING(dependency_wait)},
                {"proxy_timeout", IMGNODE_CONF_DURATION, "75s", 1000, 24 * HOUR,
                 NULL,
                 "The read timeout of the proxy in front of the node (nginx's proxy_read_timeout, 75s in the shipped site): imgnode -t refuses a config where a request could be answered later, wait_max + 2 x dependency_wait at or past it. It changes nothing else.",
                 ING(proxy_timeout)},
                {"max_connections", IMGNODE_CONF_INT, "4096", 1, 1000000, NULL,
                 "Connections the HTTP API holds open at once; more are closed as they are accepted (the process's open-file limit is raised to fit).",
                 ING(max_connections)},
                {"max_connections_per_ip", IMGNODE_CONF_INT, "256", 0, 1000000,
                 NULL,
                 "Connections one client address may hold open at once; more are closed as they are accepted (0 = no limit). Behind a proxy every client has the proxy's address: keep it above the proxy's connections to this node (a ?wait= request holds one for its wait).",
                 ING(max_connections_per_ip)},
                {"threads", IMGNODE_CONF_INT, "4", 1, 64, NULL,
                 "HTTP threads of the ingress: a slow client or a slow storage read holds one, the others go on answering.",
                 ING(threads)},
                {"probers", IMGNODE_CONF_INT, "2", 1, 64, NULL,
                 "Prober processes of the ingress: an upload's header is read by one of these (a separate program under the workers' sandbox, [workers] max_memory and seccomp, narrowed: no sockets, no files opened by name, no secrets), never by the ingress itself; an upload waits for a free one. One that crashes or overruns probe_timeout is replaced and that upload gets 422.",
                 ING(probers)},
                {"probe_timeout", IMGNODE_CONF_DURATION, "5s", 100, HOUR, NULL,
                 "Longest a prober may take to read an upload's header (and to start); past it the prober is killed and the upload gets 422.",
                 ING(probe_timeout)},
                {"upload_memory", IMGNODE_CONF_SIZE, "256M", 1024 * 1024,
                 INT64_C(1) << 40, NULL,
                 "Memory all uploads in progress may hold together; an upload that does not fit gets 503 with Retry-After (one upload is always let through, up to max_body).",
                 ING(upload_memory)},
                {"max_inflight", IMGNODE_CONF_INT, "256", 1, 1000000, NULL,
                 "Jobs accepted by this node and not yet finished; beyond it uploads get 429.",
                 ING(max_inflight)},
                {"max_inflight_per_client", IMGNODE_CONF_INT, "64", 0, 1000000,
                 NULL,
                 "Jobs in flight on this node for one client (its API key's ID when api_keys is set, else its address; an IPv6 address counts by its /64); beyond it that client's uploads get 429 while others go on. 0 = no limit per client.",
                 ING(max_inflight_per_client)},
                {"trusted_proxies", IMGNODE_CONF_LIST, "127.0.0.1,::1", 0, 0,
                 NULL,
                 "Addresses of proxies (nginx) whose X-Forwarded-For names the client: its last address is the client's for max_inflight_per_client.",
                 ING(trusted_proxies)},
                {"api_keys", IMGNODE_CONF_LIST | IMGNODE_CONF_SECRET, "", 0, 0,
                 NULL,
                 "If set, /v1/ requests must carry one of these in the X-Api-Key header, written ID:KEY (ID: 1-64 of [A-Za-z0-9_.-]) or KEY alone (its ID is then sha256- and 16 hex digits of its SHA-256). A job is readable only with the key that submitted it (or a signed URL); others get 404.",
                 ING(api_keys)},
                {"hmac_keys", IMGNODE_CONF_LIST | IMGNODE_CONF_SECRET, "", 0, 0,
                 NULL,
                 "If set, requests must be signed (docs/signing.md): ID:SECRET pairs (ID: 1-64 of [A-Za-z0-9_.-]; SECRET: at least 16 characters); every one is valid at once, so keys rotate by adding the new one, moving clients, removing the old. A POST signs its pipeline (or preset) in the query; a GET signed with one reads a job without an API key.",
                 ING(hmac_keys)},
                {"hmac_max_ttl", IMGNODE_CONF_DURATION, "7d", 1000,
                 INT64_C(366) * 24 * HOUR, NULL,
                 "Longest life a signed request may ask for: expires= further ahead than this is refused.",
                 ING(hmac_max_ttl)},
                {"hmac_key", IMGNODE_CONF_STRING | IMGNODE_CONF_SECRET, "", 0,
                 0, NULL,
                 "Signatures v1 (deprecated): ?sig=hex(HMAC-SHA256(key, pipeline)) with no expiry, replayable forever. Refused unless hmac_v1 = yes.",
                 ING(hmac_key)},
                {"hmac_v1", IMGNODE_CONF_BOOL, "no", 0, 0, NULL,
                 "Accept v1 signatures made with hmac_key (besides v2 ones with hmac_keys), for clients not yet moved.",
                 ING(hmac_v1)},
                {"presets_only", IMGNODE_CONF_BOOL, "no", 0, 0, NULL,
                 "Accept only ?preset=NAME, never a pipeline in the request.",
                 ING(presets_only)},
                {"www_dir", IMGNODE_CONF_PATH, IMGNODE_WWW_DIR, 0, 0, NULL,
                 "Directory of the upload page's files, served at / without an API key (.html, .css, .js, .svg, .png, .ico, .txt; no listing, no symlinks, no hidden files). Empty: no page, / is 404.",
                 ING(www_dir)},
                {"admin_listen", IMGNODE_CONF_STRING, "127.0.0.1", 0, 0, NULL,
                 "Address of the admin listener (IPv4 or IPv6 literal), if admin_port is set.",
                 ING(admin_listen)},
                {"admin_port", IMGNODE_CONF_INT, "0", 0, 65535, NULL,
                 "If set, /healthz, /readyz and /metrics are served on admin_listen:admin_port, and the public port answers /readyz and /metrics 404 (0 = all on the public port).",
                 ING(admin_port)},
                {"access_log", IMGNODE_CONF_BOOL, "yes", 0, 0, NULL,
                 "One info line per request: method, path, query (values of sig, keys, tokens and secrets masked), status, bytes, ms, client address, request_id (X-Request-ID, or one made up).",
                 ING(access_log)},
                {"variant_wait", IMGNODE_CONF_DURATION, "30s", 0, HOUR, NULL,
                 "Longest a GET /v1/images/ID/PIPELINE waits for a variant not made yet (its job queued by this request, or by an identical one on any node); then 503 with Retry-After, and the job goes on. Counts as wait_max does against proxy_timeout.",
                 ING(variant_wait)},
                {"callback_hosts", IMGNODE_CONF_LIST, "", 0, 0, NULL,
                 "Hosts a job's ?callback=URL may name, as host or host:port (the host as the URL writes it, matched exactly, case aside; without a port only the scheme's default one): the notifier POSTs the finished job's record there, signed with [webhooks] secret (docs/webhooks.md). Empty: callback= is refused with 400.",
                 ING(callback_hosts)},
                {"idempotency_window", IMGNODE_CONF_DURATION, "24h", 1000,
                 INT64_C(30) * DAY, NULL,
                 "How long a POST /v1/jobs with an Idempotency-Key is remembered, on every node sharing the storage (idem/ objects, deleted by retention after it): the same key with the same request (image, pipeline, callback) within it answers the job the first one made, with Idempotent-Replayed: true; with another request it is a 422. Keys are per API key.",
                 ING(idempotency_window)},
                {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const char *const fail_on[] = {"none", "truncated", "error", "warning",
                                      NULL};

static const struct imgnode_conf_key limits_keys[] = {
        {"max_pixels", IMGNODE_CONF_INT, "100000000", 1, INT64_C(1) << 40, NULL,
         "Largest image in pixels (width x height x frames): the input, and every step's output as predicted from the header, checked before decoding.",
         LIM(max_pixels)},
        {"max_pixels_interlaced", IMGNODE_CONF_INT, "30000000", 1,
         INT64_C(1) << 40, NULL,
         "The same for progressive JPEG and interlaced PNG, which libvips must decode whole.",
         LIM(max_pixels_interlaced)},
        {"max_dimension", IMGNODE_CONF_INT, "30000", 1, 10000000, NULL,
         "Largest width or height of the input and of every step's output.",
         LIM(max_dimension)},
        {"max_frames", IMGNODE_CONF_INT, "100", 1, 100000, NULL,
         "Most frames of an animated input (GIF, WebP): every frame is loaded and worked on, and max_pixels counts them all.",
         LIM(max_frames)},
        {"max_overlay", IMGNODE_CONF_SIZE, "4M", 1024, INT64_C(1) << 30, NULL,
         "Largest stored image a step composites (overlay(image=ID)): the worker reads it from storage, checks it against these limits as an upload, and keeps the last few in memory.",
         LIM(max_overlay)},
        {"max_output", IMGNODE_CONF_SIZE, "100M", 1, INT64_C(1) << 40, NULL,
         "Largest encoded result: refused before decoding when the encoder's least output is known from the geometry (png compression=0), else after encoding, instead of storing it.",
         LIM(max_output)},
        {"fail_on", IMGNODE_CONF_ENUM, "truncated", 0, 0, fail_on,
         "How damaged an input may be: none, truncated, error or warning (libvips' fail_on).",
         LIM(fail_on)},
        {"formats", IMGNODE_CONF_LIST, "jpeg,png,gif,webp,tiff,heif", 0, 0,
         NULL, "Input formats accepted (sniffed from content). Others get 415.",
         LIM(formats)},
        {"keep_metadata", IMGNODE_CONF_BOOL, "no", 0, 0, NULL,
         "Keep the input's EXIF (GPS included), XMP, IPTC and comments in the output. no: every output is turned upright from its EXIF orientation and carries no metadata. Either way colours are converted to sRGB without a profile unless the pipeline says icc(keep) or icc(embed).",
         LIM(keep_metadata)},
        {"max_renditions", IMGNODE_CONF_INT, "8", 1, 64, NULL,
         "Most outputs of one job (POST /v1/jobs?renditions=P1;P2;... or ?presets=A;B;...), all made from one decode of the upload; each is checked against the limits above.",
         LIM(max_renditions)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

#define FMT(f) offsetof(struct formats_conf, f)

static const struct imgnode_conf_key formats_keys[] = {
        {"avif_quality", IMGNODE_CONF_INT, "50", 1, 100, NULL,
         "Quality of AVIF when a pipeline's auto step picks it (1 smallest, 100 best).",
         FMT(avif_quality)},
        {"webp_quality", IMGNODE_CONF_INT, "80", 1, 100, NULL,
         "Quality of WebP when the auto step picks it.", FMT(webp_quality)},
        {"jpeg_quality", IMGNODE_CONF_INT, "80", 1, 100, NULL,
         "Quality of JPEG when the auto step picks it.", FMT(jpeg_quality)},
        {"auto_avif", IMGNODE_CONF_BOOL, "yes", 0, 0, NULL,
         "The auto step may pick AVIF for clients that accept it (smallest, but several times slower to encode than WebP); no: WebP at best.",
         FMT(auto_avif)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct imgnode_conf_key retention_keys[] = {
        {"result_ttl", IMGNODE_CONF_DURATION, "30d", 0, INT64_C(3650) * DAY,
         NULL,
         "A result (out/KEY) is deleted once no record of a job still queued or running, or finished less than this ago, names it, and it was written this long ago; results of variants of a kept image (/v1/images) stay while the image does. Clients fetch results soon; a repeated job makes a deleted one again (0 = keep forever).",
         RET(result_ttl)},
        {"original_ttl", IMGNODE_CONF_DURATION, "7d", 0, INT64_C(3650) * DAY,
         NULL,
         "The original of a one-off job (orig/ID) is deleted this long after the job finished (done or failed), never before: the time to inspect a failure. An original with no record is deleted once it is this old and older than [workers] stuck_after. Kept images (img/ID) are never deleted by age (0 = keep forever).",
         RET(original_ttl)},
        {"record_ttl", IMGNODE_CONF_DURATION, "30d", 0, INT64_C(3650) * DAY,
         NULL,
         "A job's record (jobs/ID) is deleted this long after the job finished, unless it is a variant of a kept image or its callback is not yet delivered or given up; GET /v1/jobs/ID answers 404 after (0 = keep forever).",
         RET(record_ttl)},
        {"interval", IMGNODE_CONF_DURATION, "1h", 1000, DAY, NULL,
         "Time between two passes of the reaper over the store (list, then delete what expired). Nodes sharing a store take turns through a lease object (locks/retention), and a pass is idempotent.",
         RET(interval)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct imgnode_conf_key webhooks_keys[] = {
        {"secret", IMGNODE_CONF_STRING | IMGNODE_CONF_SECRET, "", 0, 0, NULL,
         "Key of the HMAC-SHA256 in X-Imgnode-Signature: sha256=hex(HMAC(secret, TIMESTAMP.BODY)) (docs/webhooks.md); at least 16 characters, required with [ingress] callback_hosts.",
         WHK(secret)},
        {"max_attempts", IMGNODE_CONF_INT, "30", 1, 1000, NULL,
         "POSTs of one callback before it is given up (its record says so). With the default backoff, 30 attempts span about a day.",
         WHK(max_attempts)},
        {"backoff_min", IMGNODE_CONF_DURATION, "10s", 0, DAY, NULL,
         "Delay after the first failed attempt; it doubles with each failure, up to backoff_max.",
         WHK(backoff_min)},
        {"backoff_max", IMGNODE_CONF_DURATION, "1h", 0, DAY, NULL,
         "Cap of the delay between two attempts.", WHK(backoff_max)},
        {"timeout", IMGNODE_CONF_DURATION, "10s", 100, 5 * 60 * 1000, NULL,
         "Longest one POST may take, connecting included; past it the attempt failed.",
         WHK(timeout)},
        {"poll", IMGNODE_CONF_DURATION, "1s", 100, 60 * 60 * 1000, NULL,
         "How often the notifier looks at the callbacks it knows of (a job of this node's ingress at once, others' after a rescan): the latency of a webhook after its job ends; each look reads the record of every job with a callback pending.",
         WHK(poll)},
        {"rescan", IMGNODE_CONF_DURATION, "1m", 1000, 24 * 60 * 60 * 1000, NULL,
         "How often the notifier lists the store's pending callbacks (callbacks/ID), and at its start: it finds there those of other nodes (or of its own before a restart). On rados a listing reads the names of every object of the pool.",
         WHK(rescan)},
        {NULL, 0, NULL, 0, 0, NULL, NULL, 0},
};

static const struct conf_section node_sections[] = {
        {"workers", workers_keys, offsetof(struct conf_app, workers), 0},
        {"ingress", ingress_conf_keys, offsetof(struct conf_app, ingress), 0},
        {"limits", limits_keys, offsetof(struct conf_app, limits), 0},
        {"formats", formats_keys, offsetof(struct conf_app, formats), 0},
        {"retention", retention_keys, offsetof(struct conf_app, retention), 0},
        {"webhooks", webhooks_keys, offsetof(struct conf_app, webhooks), 0},
        {"preset.", NULL, 0, CONF_SECTION_PREFIX},
        {NULL, NULL, 0, 0},
};

/* [preset.NAME] pipeline = ...: one key, checked here; the pipeline itself
 * is checked where filters are loaded. */
static int fill_presets(struct conf *conf, char *err, size_t errlen)
{
	struct preset **tail = &conf->app->presets;

	for (struct conf_entry *e = conf->entries; e; e = e->next) {
		const char *name = e->section + strlen("preset.");
		struct preset *p;

		if (strncmp(e->section, "preset.", 7) != 0)
			continue;
		if (strcmp(e->key, "pipeline") != 0) {
			conf_set_err(
			        err, errlen,
			        "%s:%d: [%s] %s: unknown key (a preset has only pipeline)",
			        e->file, e->line, e->section, e->key);
			return -EINVAL;
		}
		if (strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_-") !=
		            strlen(name) ||
		    strlen(name) > 64) {
			conf_set_err(
			        err, errlen,
			        "%s:%d: [%s]: a preset name is 1-64 characters of [a-z0-9_-]",
			        e->file, e->line, e->section);
			return -EINVAL;
		}
		for (p = conf->app->presets; p; p = p->next)
			if (strcmp(p->name, name) == 0)
				break;
		if (!p) {
			p = calloc(1, sizeof(*p));
			if (!p || !(p->name = strdup(name))) {
				free(p);
				conf_set_err(err, errlen, "out of memory");
				return -ENOMEM;
			}
			*tail = p;
			tail = &p->next;
		}
		free(p->pipeline); /* a later file overrides */
		p->pipeline = strdup(e->value);
		p->where = e;
		e->used = true;
		if (!p->pipeline) {
			conf_set_err(err, errlen, "out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

/* Where [ingress] key was set, for errors: "FILE:LINE: " or "". */
static void position(const struct conf *conf, const char *key, char *buf,
                     size_t len)
{
	const struct conf_entry *e = conf_find(conf, "ingress", key);

	buf[0] = '\0';
	if (e)
		snprintf(buf, len, "%s:%d: ", e->file, e->line);
}

/*
 * The items of an [ingress] list of ID:SECRET (or, where bare is allowed,
 * SECRET alone): IDs well formed and distinct, secrets at least min_len.
 */
static int check_id_list(const struct conf *conf, const char *key,
                         const struct imgnode_list *l, bool bare,
                         size_t min_len, char *err, size_t errlen)
{
	static const char id_chars[] =
	        "abcdefghijklmnopqrstuvwxyz"
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
	char where[600];

	position(conf, key, where, sizeof(where));
	for (size_t i = 0; i < l->n; i++) {
		const char *item = l->items[i], *colon = strchr(item, ':');
		size_t idlen = colon ? (size_t)(colon - item) : 0;

		if (!colon && !bare) {
			conf_set_err(
			        err, errlen,
			        "%s[ingress] %s: item %zu is not ID:SECRET",
			        where, key, i + 1);
			return -EINVAL;
		}
		if (colon && (idlen < 1 || idlen > 64 ||
		              strspn(item, id_chars) != idlen)) {
			conf_set_err(
			        err, errlen,
			        "%s[ingress] %s: item %zu: an ID is 1-64 characters of [A-Za-z0-9_.-] before the colon",
			        where, key, i + 1);
			return -EINVAL;
		}
		if (strlen(colon ? colon + 1 : item) < min_len) {
			conf_set_err(
			        err, errlen,
			        "%s[ingress] %s: item %zu: the secret is shorter than %zu characters",
			        where, key, i + 1, min_len);
			return -EINVAL;
		}
		for (size_t j = 0; colon && j < i; j++)
			if (strncmp(l->items[j], item, idlen + 1) == 0) {
				conf_set_err(
				        err, errlen,
				        "%s[ingress] %s: ID \"%.*s\" is given twice",
				        where, key, (int)idlen, item);
				return -EINVAL;
			}
	}
	return 0;
}

/*
 * Every request is answered before the proxy gives up on it: the longest
 * answer, a ?wait= of wait_max with one dependency_wait per dependency
 * (the breaker refuses the rest at once), stays below proxy_timeout.
 */
static int check_timeouts(const struct conf *conf, char *err, size_t errlen)
{
	const struct ingress_conf *ic = &conf->app->ingress;
	int64_t longest = ic->variant_wait > ic->wait_max ? ic->variant_wait
	                                                  : ic->wait_max;
	int64_t worst = longest + 2 * ic->dependency_wait;
	const char *which =
	        ic->variant_wait > ic->wait_max ? "variant_wait" : "wait_max";
	char where[600];

	if (worst < ic->proxy_timeout)
		return 0;
	position(conf,
	         conf_find(conf, "ingress", "dependency_wait")
	                 ? "dependency_wait"
	         : conf_find(conf, "ingress", which) ? which
	                                             : "proxy_timeout",
	         where, sizeof(where));
	conf_set_err(
	        err, errlen,
	        "%s[ingress] %s + 2 x dependency_wait (%lld ms) must stay below proxy_timeout (%lld ms): a request during an outage would be answered after the proxy gave up on it",
	        where, which, (long long)worst, (long long)ic->proxy_timeout);
	return -EINVAL;
}

/* The keys of requests' authentication (docs/signing.md). */
static int check_auth(const struct conf *conf, char *err, size_t errlen)
{
	const struct ingress_conf *ic = &conf->app->ingress;
	char where[600];

	if (check_id_list(conf, "api_keys", &ic->api_keys, true, 1, err,
	                  errlen) ||
	    check_id_list(conf, "hmac_keys", &ic->hmac_keys, false, 16, err,
	                  errlen))
		return -EINVAL;
	if (ic->hmac_key[0] && !ic->hmac_v1) {
		position(conf, "hmac_key", where, sizeof(where));
		conf_set_err(
		        err, errlen,
		        "%s[ingress] hmac_key: v1 signatures (the pipeline only, no expiry, replayable forever) are off; sign requests v2 with hmac_keys = ID:SECRET (docs/signing.md), or set hmac_v1 = yes for clients not yet moved",
		        where);
		return -EINVAL;
	}
	if (ic->hmac_v1 && !ic->hmac_key[0]) {
		position(conf, "hmac_v1", where, sizeof(where));
		conf_set_err(err, errlen,
		             "%s[ingress] hmac_v1: set, but hmac_key is empty",
		             where);
		return -EINVAL;
	}
	if (ic->admin_port && ic->admin_port == ic->port &&
	    strcmp(ic->admin_listen, ic->listen) == 0) {
		position(conf, "admin_port", where, sizeof(where));
		conf_set_err(
		        err, errlen,
		        "%s[ingress] admin_port: the same address and port as the public listener",
		        where);
		return -EINVAL;
	}
	return 0;
}

/* Callbacks are signed: callback_hosts needs a secret, and well-formed
 * items (host or host:port, no scheme or path). */
static int check_callbacks(const struct conf *conf, char *err, size_t errlen)
{
	const struct ingress_conf *ic = &conf->app->ingress;
	const char *secret = conf->app->webhooks.secret;
	char where[600];

	position(conf, "callback_hosts", where, sizeof(where));
	for (size_t i = 0; i < ic->callback_hosts.n; i++)
		if (!callback_host_item_ok(ic->callback_hosts.items[i])) {
			conf_set_err(
			        err, errlen,
			        "%s[ingress] callback_hosts: item %zu (\"%.100s\") is not host or host:port",
			        where, i + 1, ic->callback_hosts.items[i]);
			return -EINVAL;
		}
	if (ic->callback_hosts.n && strlen(secret) < 16) {
		const struct conf_entry *e =
		        conf_find(conf, "webhooks", "secret");

		if (e)
			snprintf(where, sizeof(where), "%s:%d: ", e->file,
			         e->line);
		conf_set_err(
		        err, errlen,
		        "%s[webhooks] secret: callbacks are signed with it: set one of at least 16 characters with [ingress] callback_hosts",
		        where);
		return -EINVAL;
	}
	return 0;
}

/* The CPUs this process may run on (taskset, a cpuset, systemd's
 * CPUAffinity=), else those online. */
static long usable_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		return CPU_COUNT(&set);
	return sysconf(_SC_NPROCESSORS_ONLN);
}

/* What the node derives and checks once its tables are filled. */
static int fill_node(struct conf *conf, char *err, size_t errlen)
{
	struct workers_conf *wc = &conf->app->workers;

	if (wc->count < 0) { /* auto */
		long n = usable_cpus();
		wc->count = n < 1 ? 1 : n > 256 ? 256 : n;
	}
	/* below this, libvips cannot even start (glib aborts): workers
	 * would crash until the pool gives up */
	if (wc->max_memory && wc->max_memory < MAX_MEMORY_MIN) {
		const struct conf_entry *e =
		        conf_find(conf, "workers", "max_memory");
		conf_set_err(
		        err, errlen,
		        "%s:%d: [workers] max_memory: %s is too small for a worker to start (at least 256M, or 0 for no limit)",
		        e ? e->file : conf->path, e ? e->line : 0,
		        e ? e->value : "?");
		return -EINVAL;
	}
	/* a job runs at most job_timeout: before that, running is no sign
	 * of a lost job */
	if (wc->stuck_after <= wc->job_timeout) {
		const struct conf_entry *e =
		        conf_find(conf, "workers", "stuck_after");
		conf_set_err(
		        err, errlen,
		        "%s:%d: [workers] stuck_after: %s is not longer than [workers] job_timeout: a job still running would be published again",
		        e ? e->file : conf->path, e ? e->line : 0,
		        e ? e->value : "1h");
		return -EINVAL;
	}
	if (check_auth(conf, err, errlen) ||
	    check_timeouts(conf, err, errlen) ||
	    check_callbacks(conf, err, errlen))
		return -EINVAL;
	return fill_presets(conf, err, errlen);
}

static void release_node(struct conf *conf)
{
	struct preset *p, *next;

	for (p = conf->app->presets; p; p = next) {
		next = p->next;
		free(p->name);
		free(p->pipeline);
		free(p);
	}
	conf->app->presets = NULL;
}

static const struct conf_schema node_schema = {
        .sections = node_sections,
        .size = sizeof(struct conf_app),
        .fill = fill_node,
        .release = release_node,
};

void node_conf_register(void)
{
	conf_register_app(&node_schema);
}
