/* thread.c: a dynamic parallel-for over pthreads; the first failing item stops the rest and its message is
 * carried back to the caller's thread. Tested by tests/unit/test_common.c. */
#include "fpk_common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fpk_default_threads(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : (int)n;
}

typedef struct pf_state {
	size_t n;
	atomic_size_t next;
	atomic_int failed;
	fpk_task_fn fn;
	void *ctx;
	pthread_mutex_t lock;
	int rc;
	char msg[2048];
} pf_state;

typedef struct pf_worker {
	pf_state *s;
	int tid;
} pf_worker;

static void *pf_run(void *arg)
{
	pf_worker *w = arg;
	pf_state *s = w->s;
	while (!atomic_load(&s->failed)) {
		size_t i = atomic_fetch_add(&s->next, 1);
		if (i >= s->n)
			break;
		int rc = s->fn(s->ctx, i, w->tid);
		if (rc) {
			pthread_mutex_lock(&s->lock);
			if (!s->rc) {
				s->rc = rc;
				strncpy(s->msg, fpk_error_msg(), sizeof(s->msg) - 1);
			}
			pthread_mutex_unlock(&s->lock);
			atomic_store(&s->failed, 1);
		}
	}
	return NULL;
}

int fpk_parallel_for(size_t n, int nthreads, fpk_task_fn fn, void *ctx)
{
	pf_state s;
	memset(&s, 0, sizeof(s));
	s.n = n;
	s.fn = fn;
	s.ctx = ctx;
	atomic_init(&s.next, 0);
	atomic_init(&s.failed, 0);
	pthread_mutex_init(&s.lock, NULL);
	if (nthreads < 1)
		nthreads = fpk_default_threads();
	if ((size_t)nthreads > n)
		nthreads = n > 0 ? (int)n : 1;
	pthread_t *th = calloc((size_t)nthreads, sizeof(*th));
	pf_worker *ws = calloc((size_t)nthreads, sizeof(*ws));
	int started = 0;
	if (!th || !ws) {
		free(th);
		free(ws);
		return fpk_error_set(FPK_EIO, "out of memory");
	}
	for (int t = 1; t < nthreads; t++) {
		ws[t].s = &s;
		ws[t].tid = t;
		if (pthread_create(&th[t], NULL, pf_run, &ws[t]) != 0)
			break;
		started = t;
	}
	ws[0].s = &s;
	ws[0].tid = 0;
	pf_run(&ws[0]);
	for (int t = 1; t <= started; t++)
		pthread_join(th[t], NULL);
	free(th);
	free(ws);
	pthread_mutex_destroy(&s.lock);
	if (s.rc)
		return fpk_error_set(s.rc, "%s", s.msg);
	return 0;
}
