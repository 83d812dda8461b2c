/*
 * The image node's configuration sections: [workers], [ingress], [limits]
 * and the presets ([preset.NAME]). The runtime reads them with its own
 * (core/conf_keys.c) once the node registers them (node_conf_register);
 * node code finds them at conf->app.
 */
#ifndef IMGNODE_NODE_CONF_H
#define IMGNODE_NODE_CONF_H

#include <stdbool.h>
#include <stdint.h>

#include "../config.h"
#include "negotiate.h"

struct workers_conf {
	int64_t count;
	int64_t intensity;
	int64_t backoff_max; /* ms */
	int64_t max_jobs;
	int64_t max_rss; /* bytes */
	int64_t max_memory; /* bytes of address space (RLIMIT_AS); 0: none */
	bool seccomp; /* the system call allow-list */
	int64_t job_timeout; /* ms */
	int64_t stuck_after; /* ms: a record queued or running this long */
	int64_t stuck_republish; /* times republished before failed */
	int64_t heartbeat; /* ms */
	int64_t concurrency; /* libvips threads per job */
	int64_t nice; /* added to the node's niceness; SCHED_BATCH */
	bool sequential_access; /* decode streaming when the steps allow */
};

struct ingress_conf {
	char *listen;
	int64_t port;
	int64_t max_body; /* bytes */
	int64_t wait_max; /* ms */
	int64_t variant_wait; /* ms: GET /v1/images/ID/PIPELINE */
	int64_t request_timeout; /* ms */
	int64_t request_deadline; /* ms */
	int64_t dependency_wait; /* ms: one storage or transport call */
	int64_t proxy_timeout; /* ms: the proxy's read timeout */
	int64_t max_connections;
	int64_t max_connections_per_ip; /* 0: no limit */
	int64_t threads;
	int64_t probers;
	int64_t probe_timeout; /* ms */
	int64_t upload_memory; /* bytes */
	int64_t max_inflight;
	int64_t max_inflight_per_client; /* 0: no limit per client */
	struct imgnode_list trusted_proxies;
	struct imgnode_list api_keys; /* KEY or ID:KEY */
	char *hmac_key; /* signatures v1, only with hmac_v1 */
	bool hmac_v1;
	struct imgnode_list hmac_keys; /* ID:SECRET: signatures v2 */
	int64_t hmac_max_ttl; /* ms */
	bool presets_only;
	char *admin_listen;
	int64_t admin_port; /* 0: /readyz and /metrics on the public port */
	char *www_dir; /* the upload page; empty: none */
	bool access_log; /* a line per request */
	/* host[:port] a callback= may name */
	struct imgnode_list callback_hosts;
	int64_t idempotency_window; /* ms an Idempotency-Key is kept */
};

struct limits_conf {
	int64_t max_pixels;
	int64_t max_pixels_interlaced;
	int64_t max_dimension;
	int64_t max_frames;
	int64_t max_overlay; /* bytes of a stored image overlay() fetches */
	int64_t max_output; /* bytes */
	int fail_on; /* enum: none, truncated, error, warning */
	struct imgnode_list formats;
	bool keep_metadata; /* no: outputs carry only their ICC profile */
	int64_t max_renditions; /* outputs of one job (renditions.h) */
};

/* [retention]: how long stored objects live (0: forever), in ms. */
struct retention_conf {
	int64_t result_ttl; /* out/KEY unreferenced or finished this long */
	int64_t original_ttl; /* orig/ID of a job finished this long */
	int64_t record_ttl; /* jobs/ID of a job finished this long */
	int64_t interval; /* between two passes */
};

/* [webhooks]: the notifier's delivery of callback= URLs. */
struct webhooks_conf {
	char *secret; /* HMAC-SHA256 key of X-Imgnode-Signature */
	int64_t max_attempts;
	int64_t backoff_min, backoff_max; /* ms */
	int64_t timeout; /* ms: one POST */
	int64_t poll; /* ms: between two looks at the callbacks due */
	int64_t rescan; /* ms: between two listings of callbacks/ */
};

/* A [preset.NAME] section: a named pipeline. */
struct preset {
	char *name;
	char *pipeline;
	const struct conf_entry *where;
	struct preset *next;
};

/* The sections the node adds to the runtime's, filled by conf_load. */
struct conf_app {
	struct workers_conf workers;
	struct ingress_conf ingress;
	struct limits_conf limits;
	struct formats_conf formats; /* what the auto step picks */
	struct retention_conf retention;
	struct webhooks_conf webhooks;
	struct preset *presets; /* in the order read */
};

/* [ingress]'s keys (the sandbox wipes the secret ones). */
extern const struct imgnode_conf_key ingress_conf_keys[];

/*
 * Hands the node's sections to the runtime's config loader; called once at
 * start by every program that builds the node, before any conf_load.
 */
void node_conf_register(void);

#endif
