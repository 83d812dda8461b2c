/*
 * The logger. Each line is written with a single write(2) so that lines from
 * the supervisor and its children, which share stderr, never interleave.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int log_level = LOG_INFO;
static const char *log_process = "imgnode";
static int log_timestamps = -1; /* -1: decide on first use */
static int log_journal = -1; /* stderr is the journal's: -1 unknown */
static int log_format = LOG_FORMAT_TEXT;
static char log_context[200]; /* key=value pairs added to every line */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(int level)
{
	if (level < LOG_ERROR)
		level = LOG_ERROR;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	log_level = level;
}

int log_get_level(void)
{
	return log_level;
}

void log_set_process(const char *name)
{
	log_process = name;
}

void log_set_context(const char *pairs)
{
	snprintf(log_context, sizeof(log_context), "%s", pairs ? pairs : "");
}

void log_set_format(int format)
{
	log_format = format;
}

const char *log_level_name(int level)
{
	if (level < LOG_ERROR || level > LOG_DEBUG)
		return "?";
	return level_names[level];
}

/*
 * Under systemd, when stderr is the journal's stream (JOURNAL_STREAM names
 * its device and inode, as sd-daemon checks): lines start with <N>, the
 * syslog priority, and carry no timestamp (the journal keeps one).
 */
static bool stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	char *end;

	if (!env)
		return false;
	dev = strtoull(env, &end, 10);
	if (end == env || *end != ':')
		return false;
	env = end + 1;
	ino = strtoull(env, &end, 10);
	if (end == env || *end)
		return false;
	if (fstat(STDERR_FILENO, &st))
		return false;
	return (unsigned long long)st.st_dev == dev &&
	       (unsigned long long)st.st_ino == ino;
}

static void decide_once(void)
{
	if (log_journal >= 0)
		return;
	log_journal = stderr_is_journal();
	if (log_timestamps < 0)
		log_timestamps = !log_journal;
}

struct line {
	char buf[8192];
	size_t len;
};

static void add(struct line *l, const char *s, size_t n)
{
	if (n > sizeof(l->buf) - 2 - l->len)
		n = sizeof(l->buf) - 2 - l->len;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void addf(struct line *l, const char *fmt, ...) IMGNODE_PRINTF(2, 3);

static void addf(struct line *l, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(l->buf + l->len, sizeof(l->buf) - 1 - l->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		l->len += (size_t)n < sizeof(l->buf) - 1 - l->len
		                  ? (size_t)n
		                  : sizeof(l->buf) - 2 - l->len;
}

/* s (n bytes) as a JSON string, quotes included. */
static void add_json(struct line *l, const char *s, size_t n)
{
	add(l, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			char esc[2] = {'\\', (char)c};
			add(l, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			addf(l, "\\u%04x", c);
		} else {
			add(l, (const char *)&c, 1);
		}
	}
	add(l, "\"", 1);
}

/* The length of a key=value pair at s ("k=v" or k="v w"), or 0. */
static size_t pair_len(const char *s, size_t *keylen)
{
	size_t i = 0;

	while (s[i] == '_' || s[i] == '.' || (s[i] >= 'a' && s[i] <= 'z') ||
	       (s[i] >= 'A' && s[i] <= 'Z') ||
	       (i && s[i] >= '0' && s[i] <= '9'))
		i++;
	if (!i || s[i] != '=')
		return 0;
	*keylen = i++;
	if (s[i] == '"') {
		const char *q = strchr(s + i + 1, '"');
		if (!q || (q[1] && q[1] != ' '))
			return 0;
		return (size_t)(q + 1 - s);
	}
	while (s[i] && s[i] != ' ')
		i++;
	return i;
}

/* Where msg's trailing key=value pairs begin (its length if none). */
static size_t pairs_start(const char *msg)
{
	size_t n = strlen(msg), at = n, keylen;

	for (size_t i = 0; i < n; i++) {
		size_t j = i, len;

		if (i && msg[i - 1] != ' ')
			continue;
		while ((len = pair_len(msg + j, &keylen)) != 0) {
			j += len;
			if (msg[j] == ' ')
				j++;
			else
				break;
		}
		if (j == n && pair_len(msg + i, &keylen)) {
			at = i;
			break;
		}
	}
	return at;
}

/* One JSON object: ts, level, process, pid, component, msg, the pairs. */
static void format_json(struct line *l, int level, const char *component,
                        const char *msg, const char *ts)
{
	static const char *const reserved[] = {"ts",  "level",     "process",
	                                       "pid", "component", "msg"};
	size_t at = pairs_start(msg), keylen, len, mlen = at;

	while (mlen && msg[mlen - 1] == ' ')
		mlen--;
	add(l, "{", 1);
	if (ts)
		addf(l, "\"ts\":\"%s\",", ts);
	addf(l, "\"level\":\"%s\",\"process\":", log_level_name(level));
	add_json(l, log_process, strlen(log_process));
	addf(l, ",\"pid\":%d,\"component\":", (int)getpid());
	add_json(l, component, strlen(component));
	add(l, ",\"msg\":", 7);
	add_json(l, msg, mlen);
	for (const char *p = msg + at; *p; p += len + (p[len] == ' ')) {
		const char *v;
		size_t vlen;
		bool clash = false;

		len = pair_len(p, &keylen);
		if (!len)
			break;
		for (size_t i = 0; i < sizeof(reserved) / sizeof(*reserved);
		     i++)
			clash |= strlen(reserved[i]) == keylen &&
			         !strncmp(p, reserved[i], keylen);
		add(l, ",", 1);
		add(l, clash ? "\"field_" : "\"", clash ? 7 : 1);
		add(l, p, keylen);
		add(l, "\":", 2);
		v = p + keylen + 1;
		vlen = len - keylen - 1;
		if (vlen >= 2 && *v == '"') {
			v++;
			vlen -= 2;
		}
		add_json(l, v, vlen);
	}
	add(l, "}", 1);
}

void log_vmsg(int level, const char *component, const char *fmt, va_list ap)
{
	static const char prio[] = {'3', '4', '6', '7'};
	char msg[4096], ts[40] = "";
	struct line l;
	int saved_errno = errno;

	if (level > log_level)
		return;
	decide_once();
	l.len = 0;
	if (log_timestamps) {
		struct timespec t;
		struct tm tm;
		size_t n;

		clock_gettime(CLOCK_REALTIME, &t);
		gmtime_r(&t.tv_sec, &tm);
		n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(ts + n, sizeof(ts) - n, ".%03ldZ",
		         t.tv_nsec / 1000000);
	}
	if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
		msg[0] = '\0';
	if (log_context[0]) {
		size_t n = strlen(msg);
		snprintf(msg + n, sizeof(msg) - n, " %s", log_context);
	}
	if (log_journal)
		addf(&l, "<%c>", prio[level < 0 ? 0 : level > 3 ? 3 : level]);
	if (log_format == LOG_FORMAT_JSON) {
		format_json(&l, level, component, msg,
		            log_timestamps ? ts : NULL);
	} else {
		if (log_timestamps)
			addf(&l, "%s ", ts);
		addf(&l, "%s[%d] %s %s: ", log_process, (int)getpid(),
		     log_level_name(level), component);
		add(&l, msg, strlen(msg));
	}
	l.buf[l.len++] = '\n';
	/* Best effort: there is nowhere else to report a failed log write. */
	ssize_t unused = write(STDERR_FILENO, l.buf, l.len);
	(void)unused;
	errno = saved_errno;
}

void log_msg(int level, const char *component, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, component, fmt, ap);
	va_end(ap);
}
