/*
 * The host-function table lent to plugins (struct imgnode_host): logging
 * attributed to the plugin, the allocator for memory that crosses the plugin
 * boundary, and read access to the effective config.
 */
#ifndef IMGNODE_HOST_H
#define IMGNODE_HOST_H

#include <stdbool.h>
#include <stddef.h>

#include <imgnode/plugin.h>

struct conf;

/*
 * The table, valid for the life of the process. config_get answers from
 * conf (borrowed; may be NULL until host_set_conf is called).
 */
const struct imgnode_host *host_table(void);
void host_set_conf(const struct conf *conf);

/*
 * From now on this thread's plugin warnings and errors are also copied,
 * the last one whole, into buf ("PLUGIN: message"; emptied now), and with
 * quiet only there, not logged. len 0 stops it. buf stays the caller's
 * and must outlive the capture.
 */
void host_log_capture(char *buf, size_t len, bool quiet);

/* With log_it, logs the line a quiet capture kept last (only the last),
 * as the plugin meant it; else it stays in buf alone. */
void host_log_capture_end(bool log_it);

#endif
