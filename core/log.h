/*
 * One logger for every imgnode process: level, component, message and
 * key=value context, one line per event, to stderr (the service manager
 * collects it). Messages put their context after the text as key=value
 * pairs: log_info("supervisor", "child started id=%s pid=%d", id, pid).
 */
#ifndef IMGNODE_LOG_H
#define IMGNODE_LOG_H

#include <stdarg.h>
#include <stdbool.h>

#include <imgnode/plugin.h>

#define LOG_ERROR IMGNODE_LOG_ERROR
#define LOG_WARN IMGNODE_LOG_WARN
#define LOG_INFO IMGNODE_LOG_INFO
#define LOG_DEBUG IMGNODE_LOG_DEBUG

/* Sets the most verbose level that is printed (default LOG_INFO). */
void log_set_level(int level);
int log_get_level(void);

/* Sets the process name printed on each line (e.g. "worker.2"); borrowed. */
void log_set_process(const char *name);

/*
 * key=value pairs put at the end of every line of this process until
 * cleared with NULL (a worker's request_id while it runs a job); copied.
 */
void log_set_context(const char *pairs);

#define LOG_FORMAT_TEXT 0
#define LOG_FORMAT_JSON 1

/* Lines as text (default) or one JSON object each ([node] log_format). */
void log_set_format(int format);

/* "error", "warn", "info" or "debug"; "?" for another level. */
const char *log_level_name(int level);

void log_msg(int level, const char *component, const char *fmt, ...)
        IMGNODE_PRINTF(3, 4);
void log_vmsg(int level, const char *component, const char *fmt, va_list ap);

#define log_error(c, ...) log_msg(LOG_ERROR, (c), __VA_ARGS__)
#define log_warn(c, ...) log_msg(LOG_WARN, (c), __VA_ARGS__)
#define log_info(c, ...) log_msg(LOG_INFO, (c), __VA_ARGS__)
#define log_debug(c, ...)                                                      \
	do {                                                                   \
		if (log_get_level() >= LOG_DEBUG)                              \
			log_msg(LOG_DEBUG, (c), __VA_ARGS__);                  \
	} while (0)

#endif
