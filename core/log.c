/*
 * The logger. Each line is written with a single write(2) so that lines from
 * the supervisor and its children, which share stderr, never interleave.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = LOG_INFO;
static const char *log_process = "imgnode";
static int log_timestamps = -1; /* -1: decide on first use */

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

void log_set_timestamps(bool on)
{
	log_timestamps = on;
}

int log_level_parse(const char *s)
{
	for (int i = 0; i <= LOG_DEBUG; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -EINVAL;
}

const char *log_level_name(int level)
{
	if (level < LOG_ERROR || level > LOG_DEBUG)
		return "?";
	return level_names[level];
}

void log_vmsg(int level, const char *component, const char *fmt, va_list ap)
{
	char line[4096];
	size_t len = 0;
	int saved_errno = errno;

	if (level > log_level)
		return;
	if (log_timestamps < 0)
		log_timestamps = getenv("JOURNAL_STREAM") == NULL;
	if (log_timestamps) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		len = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		len += (size_t)snprintf(line + len, sizeof(line) - len,
		                        ".%03ldZ ", ts.tv_nsec / 1000000);
	}
	len += (size_t)snprintf(line + len, sizeof(line) - len,
	                        "%s[%d] %s %s: ", log_process, (int)getpid(),
	                        log_level_name(level), component);
	if (len < sizeof(line)) {
		int n = vsnprintf(line + len, sizeof(line) - len, fmt, ap);
		if (n > 0)
			len += (size_t)n;
	}
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len++] = '\n';
	/* Best effort: there is nowhere else to report a failed log write. */
	ssize_t unused = write(STDERR_FILENO, line, len);
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
