/* http_events.c - GET /v1/events: Server-Sent Events telling a browser
 * that its client's tree changed, so it pulls at once.
 *
 * Design. A stream is a chunked response whose content callback hands out
 * what is pending for it; with nothing pending it suspends its connection
 * (libmicrohttpd then neither polls nor times it out) and returns 0. One
 * events thread does the rest: the watch (watch.h) wakes it when anything
 * committed; it asks the store which clients have changes past what it saw
 * (one grouped query over the new part of the change log), marks those
 * clients' streams and resumes them. Every keepalive_s it also resumes the
 * quiet ones with a comment, which keeps proxies from closing them and lets
 * the server notice clients that went away (the write fails). So idle
 * streams cost no thread and no polling of their own.
 *
 * Cost with many streams (10,000 and more). A pass of the events thread
 * looks only at the streams it wakes: a change finds its client's streams
 * through a hash of chains by client id, and the keep-alive pass walks the
 * streams in the order of their last output and stops at the first one
 * that spoke within keepalive_s. A new `delivered` walks every stream, but
 * wakes only those whose client has changes the last mark it was sent did
 * not cover: with a flusher shipping all the time the mark rises every few
 * hundred milliseconds, and 10,000 idle clients were woken and written to
 * each time for nothing they could use. Resuming is one call per woken
 * stream; each
 * libmicrohttpd thread then takes up the resumed connections in one pass
 * over its suspended ones per batch (as we read libmicrohttpd's code, not
 * measured apart), not one pass per stream.
 *
 * What a stream sends:
 *   retry: 2000                      once, first (reconnect after 2 s)
 *   : connected                      once, first: the stream is registered
 *   id: SEQ / event: change / data: {"seq":SEQ[,"delivered":D]}
 *                                    when the client's last change passes
 *                                    what was announced, or when every
 *                                    pipeline has taken more (D, as in
 *                                    pull) and the last D sent was below
 *                                    the client's last change; bursts
 *                                    coalesce into one event with the
 *                                    latest seq
 *   : keep-alive                     after keepalive_s without output
 * The start is ?since=SEQ (or the Last-Event-ID a reconnecting EventSource
 * sends, whichever is later): a change already past it is announced at once.
 */
#include "http_handlers.h"

#include "idbmount/store/watch.h"
#include "idbmount/util/clock.h"
#include "idbmount/util/worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STOP_WAIT_MS 5000

struct stream {
	/* On ev->streams, oldest output first: the keep-alive pass stops at
	 * the first stream that spoke within keepalive_s. */
	struct stream *next, *prev;
	/* On its client's chain in ev->by_client, so a change wakes the
	 * streams of its client without looking at the others. */
	struct stream *same_next, *same_prev;
	struct http_events *ev;
	struct MHD_Connection *conn;
	int64_t client_id;
	int64_t announced; /* last seq sent */
	int64_t latest;    /* the client's last change seq known */
	char out[256];     /* bytes being sent */
	size_t out_len, out_off;
	int64_t last_output_ms;
	bool keepalive_due;
	bool delivered_due;     /* ev->delivered now covers more of the client's */
	int64_t delivered_sent; /* the mark in the last event sent (0: none) */
	bool suspended;
	bool closing;
	bool registered; /* on ev->streams and ev->by_client */
};

#define FIRST_BUCKETS 1024

/* Connections to resume once the lock is let go: a suspended connection
 * cannot finish (so cannot be freed) until it is resumed, so resuming
 * outside the lock is safe and keeps libmicrohttpd's locks apart from ours. */
struct resume_list {
	struct MHD_Connection **conns;
	size_t n, cap;
};

struct client_seq {
	int64_t client_id, seq;
};

struct seq_list {
	struct client_seq *items;
	size_t n, cap;
};

struct http_events {
	unsigned keepalive_s; /* a comment on a stream quiet this long */
	struct watch *watch;
	struct worker worker; /* the events thread, its store and its lock */
	pthread_cond_t gone;
	bool changed;
	struct stream *streams, *streams_tail; /* oldest output first */
	struct stream **by_client;             /* chains by client id */
	size_t nbuckets;                       /* a power of two */
	long count;
	int64_t seen_seq;
	int64_t delivered; /* every pipeline has taken the changes up to it */
	/* The events thread's own lists, kept from round to round. */
	struct resume_list resume;
	struct seq_list changed_clients;
};

/* ---- the lists of streams (with ev->worker.lock held) ---- */

static size_t bucket_of(const struct http_events *ev, int64_t client_id)
{
	uint64_t x = (uint64_t)client_id * 0x9e3779b97f4a7c15ull; /* Fibonacci hashing */
	return (size_t)(x >> 32) & (ev->nbuckets - 1);
}

static void chain_add(struct http_events *ev, struct stream *s)
{
	struct stream **head = &ev->by_client[bucket_of(ev, s->client_id)];
	s->same_prev = NULL;
	s->same_next = *head;
	if (*head)
		(*head)->same_prev = s;
	*head = s;
}

static void chain_remove(struct http_events *ev, struct stream *s)
{
	if (s->same_prev)
		s->same_prev->same_next = s->same_next;
	else
		ev->by_client[bucket_of(ev, s->client_id)] = s->same_next;
	if (s->same_next)
		s->same_next->same_prev = s->same_prev;
}

/* Doubles the buckets when the streams outnumber them, so a chain stays
 * about one client long. Failing to grow only makes chains longer. */
static void maybe_grow(struct http_events *ev)
{
	if ((size_t)ev->count < ev->nbuckets)
		return;
	struct stream **grown = calloc(ev->nbuckets * 2, sizeof(*grown));
	if (!grown)
		return;
	free(ev->by_client);
	ev->by_client = grown;
	ev->nbuckets *= 2;
	for (struct stream *s = ev->streams; s; s = s->next)
		chain_add(ev, s);
}

static void order_append(struct http_events *ev, struct stream *s)
{
	s->next = NULL;
	s->prev = ev->streams_tail;
	if (ev->streams_tail)
		ev->streams_tail->next = s;
	else
		ev->streams = s;
	ev->streams_tail = s;
}

static void order_remove(struct http_events *ev, struct stream *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		ev->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		ev->streams_tail = s->prev;
}

/* Called by the watch thread. */
static void on_commit(void *ctx)
{
	struct http_events *ev = ctx;
	worker_wake(&ev->worker, &ev->changed);
}

/* With ev->worker.lock held: whether `s` must run, noting it in `rl`. */
static void stream_wake(struct stream *s, struct resume_list *rl)
{
	if (!s->suspended)
		return;
	if (rl->n == rl->cap) {
		size_t cap = rl->cap ? rl->cap * 2 : 64;
		struct MHD_Connection **grown = realloc(rl->conns, cap * sizeof(*grown));
		if (!grown)
			return; /* it will be woken by the next keep-alive */
		rl->conns = grown;
		rl->cap = cap;
	}
	s->suspended = false;
	rl->conns[rl->n++] = s->conn;
}

static void resume_all(struct resume_list *rl)
{
	for (size_t i = 0; i < rl->n; i++)
		MHD_resume_connection(rl->conns[i]);
	rl->n = 0;
}

static int collect_client(void *ctx, int64_t client_id, int64_t last_seq)
{
	struct seq_list *l = ctx;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct client_seq *grown = realloc(l->items, cap * sizeof(*grown));
		if (!grown)
			return 1;
		l->items = grown;
		l->cap = cap;
	}
	l->items[l->n++] = (struct client_seq){client_id, last_seq};
	return 0;
}

/* One round of the events thread (worker_start_rounds, with the lock
 * held): woken by a commit, or once a second for the keep-alives. Finds the
 * clients whose tree changed and resumes their streams, and the streams due
 * a keep-alive; the resuming is done without the lock. */
static void events_round(struct worker *w, bool woken, void *arg)
{
	(void)woken; /* ev->changed says whether to look */
	struct http_events *ev = arg;
	struct resume_list *rl = &ev->resume;
	struct seq_list *changed = &ev->changed_clients;
	bool look = ev->changed;
	ev->changed = false;
	changed->n = 0;
	if (look) {
		/* With no stream open nobody wants to know who changed: the
		 * changes are skipped, not read (a push of 1,000 made this
		 * thread read 1,000 rows). The end is read (only then) before
		 * looking again whether a stream is open: one that opens after
		 * that asks the store for its client's last change itself, so
		 * nothing up to the end is missed. */
		bool idle = ev->count == 0;
		pthread_mutex_unlock(&w->lock);
		int64_t end = idle ? store_last_seq(w->st) : -1;
		pthread_mutex_lock(&w->lock);
		bool nobody = idle && ev->count == 0 && end >= 0;
		pthread_mutex_unlock(&w->lock);
		int64_t high = nobody ? end
		                      : store_sync_changed_clients(w->st, ev->seen_seq,
		                                                   collect_client, changed);
		pthread_mutex_lock(&w->lock);
		if (high >= 0) {
			ev->seen_seq = high;
		} else {
			/* Busy or failing: look again at once. */
			ev->changed = true;
			worker_wake_locked(w);
		}
		int64_t delivered = 0;
		if (store_sinks_delivered(w->st, &delivered) == 0 && delivered > ev->delivered) {
			ev->delivered = delivered;
			for (struct stream *s = ev->streams; s; s = s->next) {
				if (s->latest > s->delivered_sent) {
					s->delivered_due = true;
					stream_wake(s, rl);
				}
			}
		}
	}
	for (size_t i = 0; i < changed->n; i++) {
		const struct client_seq *c = &changed->items[i];
		for (struct stream *s = ev->by_client[bucket_of(ev, c->client_id)]; s;
		     s = s->same_next) {
			if (s->client_id == c->client_id && c->seq > s->latest) {
				s->latest = c->seq;
				stream_wake(s, rl);
			}
		}
	}
	/* Oldest output first: only the streams due are looked at. */
	int64_t keepalive_ms = (int64_t)ev->keepalive_s * 1000;
	int64_t now = clock_mono_ms();
	for (struct stream *s = ev->streams; s && now - s->last_output_ms >= keepalive_ms;
	     s = s->next) {
		s->keepalive_due = true;
		stream_wake(s, rl);
	}
	pthread_mutex_unlock(&w->lock);
	resume_all(rl);
	pthread_mutex_lock(&w->lock);
}

int http_events_start(const char *datadir, unsigned keepalive_s, struct watch *watch,
                      struct http_events **out)
{
	*out = NULL;
	struct http_events *ev = calloc(1, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	ev->keepalive_s = keepalive_s;
	ev->watch = watch;
	ev->nbuckets = FIRST_BUCKETS;
	ev->by_client = calloc(ev->nbuckets, sizeof(*ev->by_client));
	if (!ev->by_client) {
		free(ev);
		return -ENOMEM;
	}
	int rc = worker_open(&ev->worker, datadir, "events");
	if (rc) {
		free(ev->by_client);
		free(ev);
		return rc;
	}
	ev->seen_seq = store_last_seq(ev->worker.st);
	if (ev->seen_seq < 0)
		ev->seen_seq = 0;
	if (store_sinks_delivered(ev->worker.st, &ev->delivered) != 0)
		ev->delivered = 0;
	pthread_cond_init(&ev->gone, NULL);
	rc = worker_start_rounds(&ev->worker, 1000, events_round, ev);
	if (!rc && watch) {
		rc = watch_subscribe(watch, on_commit, ev);
		if (rc) /* the thread must not outlive `ev` */
			worker_stop(&ev->worker);
	}
	if (rc) {
		worker_close(&ev->worker);
		pthread_cond_destroy(&ev->gone);
		free(ev->by_client);
		free(ev);
		return rc;
	}
	*out = ev;
	return 0;
}

void http_events_stop(struct http_events *ev)
{
	if (!ev)
		return;
	if (ev->watch)
		watch_unsubscribe(ev->watch, on_commit, ev);
	struct resume_list rl = {0};
	worker_stop(&ev->worker);
	/* End every stream: resumed, its callback ends the response. */
	pthread_mutex_lock(&ev->worker.lock);
	for (struct stream *s = ev->streams; s; s = s->next) {
		s->closing = true;
		stream_wake(s, &rl);
	}
	pthread_mutex_unlock(&ev->worker.lock);
	resume_all(&rl);
	free(rl.conns);
	pthread_mutex_lock(&ev->worker.lock);
	int64_t deadline = clock_mono_ms() + STOP_WAIT_MS;
	while (ev->count > 0 && clock_mono_ms() < deadline) {
		struct timespec until = clock_deadline(CLOCK_REALTIME, 50);
		pthread_cond_timedwait(&ev->gone, &ev->worker.lock, &until);
	}
	pthread_mutex_unlock(&ev->worker.lock);
}

void http_events_free(struct http_events *ev)
{
	if (!ev)
		return;
	/* Called once no request runs (libmicrohttpd has stopped, or never
	 * started): every stream's free callback has run, unless one is stuck. */
	if (ev->count > 0) {
		fprintf(stderr, "idbmount: events: %ld streams did not end\n", ev->count);
		return; /* `ev` is left allocated for them */
	}
	worker_close(&ev->worker);
	pthread_cond_destroy(&ev->gone);
	free(ev->resume.conns);
	free(ev->changed_clients.items);
	free(ev->by_client);
	free(ev);
}

long http_events_count(struct http_events *ev)
{
	if (!ev)
		return 0;
	pthread_mutex_lock(&ev->worker.lock);
	long n = ev->count;
	pthread_mutex_unlock(&ev->worker.lock);
	return n;
}

/* With ev->worker.lock held: puts the next message into s->out, if any. */
static void stream_next(struct stream *s)
{
	int n = 0;
	if (s->latest > s->announced || s->delivered_due) {
		if (s->ev->delivered > 0)
			n = snprintf(
			        s->out, sizeof(s->out),
			        "id: %lld\nevent: change\ndata: {\"seq\":%lld,\"delivered\":%lld}"
			        "\n\n",
			        (long long)s->latest, (long long)s->latest,
			        (long long)s->ev->delivered);
		else
			n = snprintf(s->out, sizeof(s->out),
			             "id: %lld\nevent: change\ndata: {\"seq\":%lld}\n\n",
			             (long long)s->latest, (long long)s->latest);
		s->announced = s->latest;
		s->delivered_sent = s->ev->delivered;
		s->delivered_due = false;
	} else if (s->keepalive_due) {
		n = snprintf(s->out, sizeof(s->out), ": keep-alive\n\n");
	}
	s->keepalive_due = false;
	s->out_len = n > 0 ? (size_t)n : 0;
	s->out_off = 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct stream *s = cls;
	struct http_events *ev = s->ev;
	pthread_mutex_lock(&ev->worker.lock);
	if (s->out_off == s->out_len)
		stream_next(s);
	ssize_t n;
	if (s->out_off < s->out_len) {
		size_t take = s->out_len - s->out_off;
		if (take > max)
			take = max;
		memcpy(buf, s->out + s->out_off, take);
		s->out_off += take;
		s->last_output_ms = clock_mono_ms();
		if (s->registered) { /* now the newest output */
			order_remove(ev, s);
			order_append(ev, s);
		}
		n = (ssize_t)take;
	} else if (s->closing) {
		n = MHD_CONTENT_READER_END_OF_STREAM;
	} else {
		s->suspended = true;
		MHD_suspend_connection(s->conn);
		n = 0;
	}
	pthread_mutex_unlock(&ev->worker.lock);
	return n;
}

static void stream_free(void *cls)
{
	struct stream *s = cls;
	struct http_events *ev = s->ev;
	if (!s->registered) {
		free(s);
		return;
	}
	pthread_mutex_lock(&ev->worker.lock);
	order_remove(ev, s);
	chain_remove(ev, s);
	ev->count--;
	pthread_cond_broadcast(&ev->gone);
	pthread_mutex_unlock(&ev->worker.lock);
	free(s);
}

enum MHD_Result http_events(struct http_request *r)
{
	struct http_events *ev = http_server_events(r->server);
	int64_t since = 0, last_id = 0;
	if (http_query_count(r, "since", 0, 0, INT64_MAX, &since))
		return MHD_YES;
	const char *header = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Last-Event-ID");
	if (header) {
		char *end = NULL;
		long long v = strtoll(header, &end, 10);
		if (*header && !*end && v > 0)
			last_id = v;
	}
	if (last_id > since)
		since = last_id;
	struct store *st = http_store(r->server);
	if (!st || !ev)
		return http_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
		                        "the store cannot be opened");
	struct stream *s = calloc(1, sizeof(*s));
	if (!s)
		return MHD_NO;
	s->ev = ev;
	s->conn = r->conn;
	s->client_id = r->who.id;
	s->announced = s->latest = since;
	s->last_output_ms = clock_mono_ms();
	s->out_len = (size_t)snprintf(s->out, sizeof(s->out), "retry: 2000\n: connected\n\n");
	struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024,
	                                                              stream_read, s, stream_free);
	if (!resp) {
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	/* Registered before the store is asked, so no change falls between.
	 * A request on a kept-alive connection can still come in while the
	 * daemon stops (quiescing only stops new connections). */
	pthread_mutex_lock(&ev->worker.lock);
	if (ev->worker.stop) {
		pthread_mutex_unlock(&ev->worker.lock);
		MHD_destroy_response(resp); /* frees s */
		return http_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable",
		                        "the daemon is stopping");
	}
	s->registered = true;
	s->last_output_ms = clock_mono_ms(); /* under the lock: keeps the order */
	order_append(ev, s);
	chain_add(ev, s);
	ev->count++;
	maybe_grow(ev);
	pthread_mutex_unlock(&ev->worker.lock);
	int64_t last = store_sync_client_last_seq(st, r->who.id);
	pthread_mutex_lock(&ev->worker.lock);
	if (last > s->latest)
		s->latest = last;
	pthread_mutex_unlock(&ev->worker.lock);
	return http_queue(r, MHD_HTTP_OK, resp);
}
