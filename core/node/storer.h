/*
 * A second instance of the storage plugin on a thread of its own: the
 * ingress stores a job's original there while it stores the record on its
 * own instance, so an upload waits for the slower of the two writes, not
 * for both in turn. One put at a time; each instance is used by one thread.
 */
#ifndef IMGNODE_NODE_STORER_H
#define IMGNODE_NODE_STORER_H

#include <stddef.h>

struct plugin;
struct storer;

/* Starts an instance of storage and its thread. 0 or -errno with a reason
 * in err. */
int storer_start(struct storer **out, struct plugin *storage, char *err,
                 size_t errlen);

/* Begins put(key, data) on the thread; key and data stay the caller's
 * until storer_wait returns. */
void storer_put(struct storer *s, const char *key, const void *data,
                size_t len);

/* Waits for the put begun last; its 0 or -errno. */
int storer_wait(struct storer *s);

/* Ends the thread and the instance. NULL is fine. */
void storer_stop(struct storer *s);

#endif
