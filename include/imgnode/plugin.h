/*
 * The imgnode plugin ABI: the one header a plugin includes.
 *
 * A plugin is a shared object that exports exactly one symbol,
 * IMGNODE_PLUGIN_SYMBOL, a const struct imgnode_plugin. The descriptor starts
 * with a magic number and the ABI version so the host can refuse a file that
 * is not a plugin, or one built for another ABI, before touching anything
 * else. Fields are only ever appended: a plugin built against ABI 1.N runs on
 * a host of ABI 1.M for M >= N, and the host checks hooks added after 1.0 for
 * NULL. Everything a plugin needs from the host reaches it through struct
 * imgnode_host, so plugins never link against daemon symbols.
 *
 * Configuration is declared, not parsed: a plugin lists its keys in a table
 * (struct imgnode_conf_key) with field offsets into a struct of its own; the
 * host validates the INI section against the table, fills a zeroed struct of
 * conf_size bytes and hands it to init(). The same table documents the keys
 * (imgnode -T, the shipped imgnode.ini, the man page).
 */
#ifndef IMGNODE_PLUGIN_H
#define IMGNODE_PLUGIN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IMGNODE_PLUGIN_MAGIC 0x4e474d49u /* "IMGN" read as little-endian */
#define IMGNODE_ABI_MAJOR 1
#define IMGNODE_ABI_MINOR 5
#define IMGNODE_PLUGIN_SYMBOL "imgnode_plugin"

#if defined(__GNUC__)
#define IMGNODE_EXPORT __attribute__((visibility("default")))
#define IMGNODE_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define IMGNODE_EXPORT
#define IMGNODE_PRINTF(f, a)
#endif

/*
 * Declares a plugin's descriptor. Use it once per plugin:
 *   IMGNODE_PLUGIN = { IMGNODE_PLUGIN_HEADER(IMGNODE_KIND_FILTER), ... };
 */
#define IMGNODE_PLUGIN IMGNODE_EXPORT const struct imgnode_plugin imgnode_plugin
#define IMGNODE_PLUGIN_HEADER(kind_)                                           \
	.magic = IMGNODE_PLUGIN_MAGIC, .abi_major = IMGNODE_ABI_MAJOR,         \
	.abi_minor = IMGNODE_ABI_MINOR, .kind = (kind_)

enum imgnode_plugin_kind {
	IMGNODE_KIND_TRANSPORT = 1,
	IMGNODE_KIND_STORAGE = 2,
	IMGNODE_KIND_FILTER = 3,
};

enum imgnode_log_level {
	IMGNODE_LOG_ERROR = 0,
	IMGNODE_LOG_WARN = 1,
	IMGNODE_LOG_INFO = 2,
	IMGNODE_LOG_DEBUG = 3,
};

/* Value types of configuration keys, and the C type each one fills. */
enum imgnode_conf_type {
	IMGNODE_CONF_STRING = 1, /* char * (host-owned, NUL-terminated) */
	IMGNODE_CONF_PATH, /* char *; absolute, or "" for unset */
	IMGNODE_CONF_BOOL, /* bool: yes/no, true/false, on/off, 1/0 */
	IMGNODE_CONF_INT, /* int64_t within [min, max] */
	IMGNODE_CONF_SIZE, /* int64_t bytes: 512, 64K, 50M, 2G (x1024) */
	IMGNODE_CONF_DURATION, /* int64_t milliseconds: 500ms, 30s, 5m, 1h */
	IMGNODE_CONF_ENUM, /* int: index into choices */
	IMGNODE_CONF_LIST, /* struct imgnode_list: comma-separated */
};

/*
 * Or'ed into a key's type: the value is a secret (a password, a key), which
 * imgnode -T prints as <redacted>. A host older than this flag refuses
 * such a key ("unknown type") when it checks the config; nothing worse.
 */
#define IMGNODE_CONF_SECRET 0x100
#define IMGNODE_CONF_TYPE(key) ((enum imgnode_conf_type)((key)->type & 0xff))

/* A LIST value. Items are host-owned and NUL-terminated. */
struct imgnode_list {
	size_t n;
	char **items;
};

/*
 * One configuration key. def is the default written as it would be in the
 * INI file (NULL: the key is required); it goes through the same parser as
 * user input. min/max bound INT, SIZE and DURATION values when min < max.
 * choices is a NULL-terminated array for ENUM; an INT may have words too,
 * accepted besides numbers and stored as -1 (the first word), -2, ...
 * offset is where the value lives in the plugin's (or core's) config
 * struct. A table ends with an entry whose name is NULL.
 */
struct imgnode_conf_key {
	const char *name;
	enum imgnode_conf_type type;
	const char *def;
	int64_t min;
	int64_t max;
	const char *const *choices;
	const char *help;
	size_t offset;
};

/*
 * What the host lends a plugin. The table and everything it points to stay
 * valid for the life of the process. Memory that crosses the plugin boundary
 * (returned buffers, records) is allocated with these functions.
 */
struct imgnode_host {
	uint16_t abi_major;
	uint16_t abi_minor;
	/* Logs one line at level, attributed to the plugin. */
	void (*log)(enum imgnode_log_level level, const char *plugin,
	            const char *fmt, ...) IMGNODE_PRINTF(3, 4);
	void *(*alloc)(size_t size);
	void *(*realloc)(void *ptr, size_t size);
	void (*free)(void *ptr);
	/*
	 * Raw text of section.key in the effective config, or NULL. For keys
	 * outside the plugin's own table (e.g. another section's values).
	 */
	const char *(*config_get)(const char *section, const char *key);
};

/*
 * The descriptor. ops points to the kind's operation table (struct
 * imgnode_transport_ops, imgnode_storage_ops or imgnode_filter_ops), defined
 * below (filter ops arrive with the pipeline). init may be NULL; if set, it
 * is called once for each instance, with conf pointing to a struct of
 * conf_size bytes filled from the plugin's config section; conf stays valid
 * until fini. It returns 0 or -errno and sets *state. A process may make
 * several instances of a storage plugin (the ingress stores an original and
 * a record at once, one instance per thread): they share conf, never state,
 * and each is used by one thread at a time.
 */
struct imgnode_plugin {
	uint32_t magic;
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t kind; /* enum imgnode_plugin_kind */
	const char *name;
	const char *version;
	const char *description;
	const struct imgnode_conf_key *conf_keys;
	size_t conf_size;
	int (*init)(const struct imgnode_host *host, const void *conf,
	            void **state);
	void (*fini)(void *state);
	const void *ops;
	/* ABI 1.0 ends here; append only. */
};

/*
 * Object keys, for every storage plugin: 1..1024 bytes of [A-Za-z0-9._/-],
 * no leading or trailing '/', no empty, "." or ".." component. The host
 * checks keys before calling a plugin; plugins check again (defence in depth).
 */
#define IMGNODE_KEY_MAX 1024
static inline bool imgnode_key_valid(const char *key)
{
	size_t seg = 0, dots = 0, i;

	for (i = 0; key[i]; i++) {
		char c = key[i];
		if (i >= IMGNODE_KEY_MAX)
			return false;
		if (c == '/') {
			if (seg == 0 || seg == dots)
				return false; /* empty, "." or ".." component */
			seg = dots = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return false;
		seg++;
		dots += c == '.';
	}
	return i > 0 && seg > 0 && seg != dots;
}

struct imgnode_stat {
	uint64_t size; /* bytes */
	int64_t mtime_ms; /* last write, ms since the epoch */
};

/*
 * Storage: whole objects under keys. Every operation returns 0 or -errno and
 * is bounded in time by the plugin's configured timeouts (-ETIMEDOUT, never a
 * hang). Details of a failure are logged by the plugin, once.
 */
struct imgnode_storage_ops {
	/* Stores len bytes at key atomically: readers see the old object or
	 * the new one, whole. Replaces an existing object. */
	int (*put)(void *state, const char *key, const void *data, size_t len);
	/* As put, but -EEXIST if key exists (exclusive create, race-free
	 * between processes and nodes). */
	int (*put_excl)(void *state, const char *key, const void *data,
	                size_t len);
	/* Reads the object at key into one buffer allocated with the host's
	 * alloc; the caller frees it with the host's free. -ENOENT if absent,
	 * -EFBIG if it is larger than max bytes. */
	int (*get)(void *state, const char *key, size_t max, void **data,
	           size_t *len);
	/* -ENOENT if absent. */
	int (*stat)(void *state, const char *key, struct imgnode_stat *st);
	/* Removes key; -ENOENT if absent. */
	int (*del)(void *state, const char *key);
	/* Calls fn for each key that starts with prefix, in no set order; fn
	 * returns 0 to go on or nonzero to stop (then list returns that). */
	int (*list)(void *state, const char *prefix,
	            int (*fn)(const char *key, void *arg), void *arg);
	/* Checks the backend is reachable (for /readyz); 0 or -errno. */
	int (*ping)(void *state);
	/* ABI 1.0 ends here; append only. A table of a plugin built before
	 * ABI 1.2 stops before the next member: the host reads it only from
	 * plugins of ABI 1.2 or later, and only if it is not NULL. */
	/* ABI 1.2: reads up to len bytes of the object at key, from byte
	 * off, into buf (the caller's); *got gets how many, fewer than len
	 * only at the object's end (0 at or past it). -ENOENT if absent. For
	 * sending large objects a piece at a time, never whole. */
	int (*read)(void *state, const char *key, uint64_t off, void *buf,
	            size_t len, size_t *got);
};

/* The queues a transport serves. */
enum imgnode_queue {
	IMGNODE_QUEUE_JOBS = 0, /* work, consumed by workers */
	IMGNODE_QUEUE_DEAD = 1, /* dead-lettered jobs, consumed by the reaper */
	IMGNODE_QUEUE_REPLY = 2, /* this process's own reply queue */
};

/* One delivered message. Plugin-owned until it is settled (ack, reject or
 * release) or, for replies, until the next consume. */
struct imgnode_delivery {
	const void *body;
	size_t len;
	uint64_t tag; /* the plugin's handle for settling */
	uint32_t attempt; /* 1 on the first delivery */
	const char *reply_to; /* where the publisher waits, or NULL */
	const char *reason; /* on IMGNODE_QUEUE_DEAD: why it died */
};

/*
 * Transport: at-least-once delivery of small messages (keys, never images).
 * Every operation returns 0 or -errno; -ETIMEDOUT when a deadline passes,
 * -ENOTCONN while the broker is unreachable (the plugin reconnects by
 * itself on later calls). A transport that gives deliveries a lease names
 * it with a DURATION key "lease" in its table: the host refuses a config
 * whose lease is shorter than [workers] job_timeout.
 */
struct imgnode_transport_ops {
	/* Publishes a job durably; returns once the broker confirmed it.
	 * reply_to (may be NULL) names a reply queue from reply_open. */
	int (*publish)(void *state, const void *body, size_t len,
	               const char *reply_to, int64_t timeout_ms);
	/* Waits up to timeout_ms for a message on q. */
	int (*consume)(void *state, enum imgnode_queue q,
	               struct imgnode_delivery *d, int64_t timeout_ms);
	/* Done with it: removes the message. */
	int (*ack)(void *state, const struct imgnode_delivery *d);
	/* Fails it now: dead-letters the message with reason. */
	int (*reject)(void *state, const struct imgnode_delivery *d,
	              const char *reason);
	/* Gives it back for redelivery (counts as an attempt). */
	int (*release)(void *state, const struct imgnode_delivery *d);
	/* Creates this process's reply queue and writes its name to name. */
	int (*reply_open)(void *state, char *name, size_t len);
	/* Sends a (non-durable) notice to a reply queue. */
	int (*reply)(void *state, const char *reply_to, const void *body,
	             size_t len);
	/* An fd that turns readable when consume may have something, for a
	 * poll loop, or -1. */
	int (*pollfd)(void *state);
	/* Housekeeping (heartbeats, lease renewal); call at least once a
	 * second, also while busy with a long job. A worker calls it from a
	 * thread of its own while a job runs, never at the same time as
	 * another operation on the same state. */
	int (*tick)(void *state);
	/* Checks the broker is reachable (for /readyz). */
	int (*ping)(void *state);
	/* ABI 1.0 ends here; append only. A table of a plugin built before
	 * ABI 1.3 stops before the next member: the host reads it only from
	 * plugins of ABI 1.3 or later, and only if it is not NULL. */
	/* ABI 1.3, optional: messages waiting in q (jobs or dead letters;
	 * not those a consumer holds) into *n, for /metrics. 0 or -errno. */
	int (*depth)(void *state, enum imgnode_queue q, uint64_t *n);
	/* ABI 1.4, optional (for transports that send messages ahead of
	 * consume, as amqp's prefetch does): stops consuming q. Nothing more
	 * is sent ahead, and what was but is not handed out yet goes back
	 * without counting as a delivery; deliveries handed out stay the
	 * caller's to settle. A worker calls it before its last job, when it
	 * is about to be recycled. 0 or -errno. */
	int (*cancel)(void *state, enum imgnode_queue q);
};

/* ---- filters ---- */

/* libvips' image type (VipsImage); filter plugins include <vips/vips.h>. */
struct _VipsImage;

/* Types of a filter's arguments in a pipeline: thumbnail(800, crop=attention). */
enum imgnode_arg_type {
	IMGNODE_ARG_INT = 1, /* int64_t i */
	IMGNODE_ARG_NUMBER, /* double n */
	IMGNODE_ARG_BOOL, /* bool b: true/false, yes/no, 1/0 */
	IMGNODE_ARG_ENUM, /* int e: index into choices */
	IMGNODE_ARG_STRING, /* const char *s; host-owned, valid for the job */
	/* ABI 1.5: an image stored through the API (POST /v1/images), named
	 * in the pipeline by its id (32 lowercase hex digits). The host
	 * fetches, checks and decodes it before apply: the filter gets
	 * image (host-owned, valid for the call; ref it to keep it). */
	IMGNODE_ARG_IMAGE,
};

/* One parsed argument value, of its declared type. */
union imgnode_value {
	int64_t i;
	double n;
	bool b;
	int e;
	const char *s;
	struct _VipsImage *image; /* ABI 1.5: IMGNODE_ARG_IMAGE */
};

/*
 * One declared argument. Arguments may be given by position (in table
 * order) or by name. def is the default as text (NULL: required); min/max
 * bound INT and NUMBER values, inclusive, when min < max; choices is
 * NULL-terminated for ENUM. The host parses and checks pipelines against
 * this table; a filter receives values already valid.
 */
struct imgnode_arg {
	const char *name;
	enum imgnode_arg_type type;
	const char *def;
	double min;
	double max;
	const char *const *choices;
	const char *help;
};

/* The filter is an encoder: last in a pipeline, has encode (not apply). */
#define IMGNODE_FILTER_ENCODER 0x1u
/* As the first step, the filter decodes the input itself with load
 * (shrink-on-load: thumbnail). */
#define IMGNODE_FILTER_LOADS 0x2u
/*
 * ABI 1.5: the step handles animations. An animated input (GIF, WebP) is
 * loaded with all its frames, as libvips does it: one tall strip of
 * frames of "page-height" rows each, with "delay" (ms per frame) and
 * "loop" (0: for ever). A filter with this flag applies to every frame
 * (filter.h: filter_per_frame) and sets "page-height" if it changes a
 * frame's height; an encoder with it writes every frame. On an animation
 * the host refuses a filter without it ("cannot work on animations; use
 * frame(N) first") and hands an encoder without it the first frame only.
 */
#define IMGNODE_FILTER_FRAMES 0x4u
/* The step reads its input once, top to bottom, with at most a few lines
 * of look-behind (a convolution, a colour change, a resize or crop that
 * keeps the orientation): a pipeline of such steps lets the host decode
 * with libvips' sequential access (VIPS_ACCESS_SEQUENTIAL), which streams
 * instead of holding the whole decoded image. Not for steps that turn a
 * quarter, flip upside down or look at the whole image first (attention
 * crops). ABI 1.5; hosts before it ignore the bit. */
#define IMGNODE_FILTER_SEQUENTIAL 0x8u

/*
 * An int field (1) the host sets on the image it hands an encoder when the
 * node strips metadata ([limits] keep_metadata = no, the default): the host
 * has turned the image upright and removed every metadata field but the
 * ICC profile ("icc-profile-data"). An encoder that sees it writes the
 * profile (or converts to sRGB if its format cannot carry one alone) and
 * nothing else: not even the EXIF block libvips builds from the header.
 * Encoders built before this mark existed still get images without
 * personal metadata, only that header block.
 */
#define IMGNODE_META_ICC_ONLY "imgnode-icc-only"

/*
 * ABI 1.5: a string field on an image, "keep", "srgb" or "embed", set by
 * the icc step, read by the host before the encoder: what becomes of the
 * colour profile. The host converts every output to sRGB (CMYK, and
 * colours with an embedded ICC profile) and writes no profile ("srgb", the
 * default when the field is absent); "embed" writes an sRGB profile too;
 * "keep" leaves the pixels and the input's profile as they are.
 */
#define IMGNODE_META_ICC_MODE "imgnode-icc"

/*
 * The shape of the image a step takes or makes, predicted from the input's
 * header before any pixel is decoded (ABI 1.1; see predict below).
 */
struct imgnode_geometry {
	int64_t width; /* pixels */
	int64_t height; /* pixels */
	int bands; /* 1 grey, 2 grey + alpha, 3 colour, 4 colour + alpha */
	int band_bytes; /* 1 (8-bit), 2 (16-bit) or 4 (float) per band */
	int orientation; /* EXIF 1..8: 1 upright, 5..8 turned a quarter */
	/* Set by predict on its output only: */
	int64_t work_width; /* the largest image the step makes on its way */
	int64_t work_height; /* (a text, an enlargement it then crops); 0: none */
	int64_t min_bytes; /* encoders: the fewest bytes the output can take;
	                    * 0 if that cannot be known before encoding */
	/* ABI 1.5: frames of an animation, 1 for a still image; width and
	 * height are one frame's. A step that keeps some frames only
	 * (frame(N)) sets it. Plugins built before ABI 1.5 ignore it. */
	int64_t frames;
};

/*
 * A filter: one step of a job's lazy libvips pipeline. args holds one value
 * per entry of the args table, in table order. Steps return 0 or -errno and,
 * on failure, a one-line reason in err. Images follow libvips' reference
 * rules: a step does not take over in; it returns a new reference in *out,
 * which the caller unrefs. Nothing is computed until the encoder runs.
 */
struct imgnode_filter_ops {
	const struct imgnode_arg *args; /* ends with a NULL name */
	unsigned flags; /* IMGNODE_FILTER_* */
	/* Adds this step on top of in. Not used for encoders. */
	int (*apply)(void *state, struct _VipsImage *in,
	             const union imgnode_value *args, struct _VipsImage **out,
	             char *err, size_t errlen);
	/* IMGNODE_FILTER_LOADS: decodes buf as the first step. options is a
	 * libvips load option string the host requires (e.g.
	 * "fail_on=truncated"); the plugin must pass it to the loader. */
	int (*load)(void *state, const void *buf, size_t len,
	            const char *options, const union imgnode_value *args,
	            struct _VipsImage **out, char *err, size_t errlen);
	/* IMGNODE_FILTER_ENCODER: runs the pipeline into one buffer allocated
	 * by libvips (g_malloc); the caller frees it with g_free. */
	int (*encode)(void *state, struct _VipsImage *in,
	              const union imgnode_value *args, void **buf, size_t *len,
	              char *err, size_t errlen);
	const char *mime; /* encoders: the Content-Type, e.g. "image/webp" */
	const char *format; /* encoders: the libvips loader name it writes,
	                     * e.g. "webp": the default encoder for an input
	                     * is the one whose format matches its loader */
	/* Optional: a quick check run before a new generation of plugins is
	 * used (at start, on reload, imgnode -t); 0 or -errno with a reason.
	 * 0 with a reason in err is a pass with a caveat (the filter works
	 * in part), which the host logs once as a warning. */
	int (*selftest)(void *state, char *err, size_t errlen);
	/* ABI 1.0 ends here; append only. */
	/*
	 * ABI 1.1, optional: predicts this step's output from its input
	 * without touching pixels, so that the host can refuse a job whose
	 * any step would pass [limits] before it decodes anything. out comes
	 * in as a copy of in (work_* and min_bytes zero): a step changes
	 * what it changes. For the first step of a LOADS filter, in is the
	 * input's header. Must be cheap and must not call libvips on images.
	 * 0, or -errno with a reason (the job is refused).
	 *
	 * The host reads it only from plugins that declare ABI 1.1 or later
	 * (a 1.0 table ends before it). A filter without it is taken to keep
	 * its input's shape when predicting; the host then checks the size
	 * of its step's real output as soon as the step is built, still
	 * before the encoder computes any pixel.
	 */
	int (*predict)(void *state, const struct imgnode_geometry *in,
	               const union imgnode_value *args,
	               struct imgnode_geometry *out, char *err, size_t errlen);
};

#ifdef __cplusplus
}
#endif

#endif /* IMGNODE_PLUGIN_H */
