#include "storer.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "../plugin.h"

struct storer {
	struct plugin *storage;
	void *state; /* this instance's, not storage->state */
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	const char *key; /* under mu: the put to do, or NULL */
	const void *data;
	size_t len;
	bool busy, quit;
	int ret;
};

static void *run(void *arg)
{
	struct storer *s = arg;
	const struct imgnode_storage_ops *ops = s->storage->desc->ops;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		while (!s->key && !s->quit)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->quit)
			break;
		pthread_mutex_unlock(&s->mu);
		int ret = ops->put(s->state, s->key, s->data, s->len);
		pthread_mutex_lock(&s->mu);
		s->key = NULL;
		s->ret = ret;
		s->busy = false;
		pthread_cond_broadcast(&s->cv);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

int storer_start(struct storer **out, struct plugin *storage, char *err,
                 size_t errlen)
{
	struct storer *s = calloc(1, sizeof(*s));
	int ret;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->storage = storage;
	ret = plugin_instance(storage, &s->state, err, errlen);
	if (ret) {
		free(s);
		return ret;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	ret = -pthread_create(&s->thread, NULL, run, s);
	if (ret) {
		plugin_instance_free(storage, s->state);
		pthread_cond_destroy(&s->cv);
		pthread_mutex_destroy(&s->mu);
		free(s);
		return ret;
	}
	*out = s;
	return 0;
}

void storer_put(struct storer *s, const char *key, const void *data, size_t len)
{
	pthread_mutex_lock(&s->mu);
	s->key = key;
	s->data = data;
	s->len = len;
	s->busy = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

int storer_wait(struct storer *s)
{
	int ret;

	pthread_mutex_lock(&s->mu);
	while (s->busy)
		pthread_cond_wait(&s->cv, &s->mu);
	ret = s->ret;
	pthread_mutex_unlock(&s->mu);
	return ret;
}

void storer_stop(struct storer *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->quit = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	plugin_instance_free(s->storage, s->state);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
}
