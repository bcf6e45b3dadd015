/* ctl_import.c - idbmountctl import: loading JSON lines into a store, with
 * a progress bar on a terminal (see ctl_commands.h).
 *
 * Import. `import CLIENT/DB/STORE FILE` loads JSON lines, all or nothing:
 *   - {"key":K,"value":V} puts V under K; {"key":K,"op":"delete"} deletes;
 *     the change lines `log` prints (and /v1/pull changes) import too:
 *     a line is read this way when it is an object with "key" and with
 *     "value" or "op", and no members but seq, ts, node, client, db, store,
 *     key, op, rev, origin and value (all but key, op and value are
 *     ignored: the target is the one on the command line);
 *   - any other line, when the store has an inline keyPath, is a record
 *     whose key is at the keyPath (records coming back from a Hadoop job).
 *     A record whose own members look like the above (keyPath "key" and
 *     only key and value members) is read as {"key":K,"value":V}; wrap it;
 *   - blank lines are skipped, a UTF-8 BOM and "\r\n" endings are accepted;
 *     lines apply in file order, so a later line for a key wins.
 * Pass 1 reads every line and checks it as the store would (the JSON, the
 * key, the keyPath agreement and the 16 MiB record cap; lines over 16 MiB
 * are errors). If any line is bad it prints "FILE:LINE: reason" for the
 * first 20 and how many more, imports nothing and exits 1: after fixing
 * the file a rerun is simple and nothing is half-applied. Pass 2 applies
 * the lines in transactions of up to BATCH_LINES lines or BATCH_MS
 * (origin import, database and store made when missing, out-of-line), so
 * the daemon and browsers are never locked out for long. Should pass 2
 * still fail (disk full, the store changed meanwhile, interrupted), the
 * batches committed so far stay and the message says up to which line;
 * importing the same file again is then safe, as puts of the same values
 * and deletes repeat harmlessly. Standard input ('-') and other files that
 * cannot be read twice (pipes, <(zcat x.gz)) are first copied to an
 * unlinked temp file in $TMPDIR. On a terminal both passes draw a progress
 * bar on stderr (bytes, lines, rate; at most 10 redraws a second).
 *
 * Both passes read a line once, as text: import_line_split finds its key
 * and value, which store_import_put lays out straight from their text (no
 * jansson tree), the target resolved once per transaction, not per line.
 * A line either is not sure of (errors, escaped member names, numbers
 * past 18 digits...) goes the tree way: import_line_parse and
 * store_check_put / store_put, which decide and word the error. A second
 * thread reads the lines and lays out puts in batches, ahead of the main
 * thread (see "lines read and laid out ahead"). Memory does not grow with
 * the file: two batches of lines at a time.
 */
#include "ctl_commands.h"
#include "ctl_common.h"

#include "idbmount/codec/import_line.h"
#include "idbmount/codec/json_text.h"
#include "idbmount/store/checkpointer.h"
#include "idbmount/store/store.h"
#include "idbmount/util/buf.h"
#include "idbmount/util/clock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES (16u * 1024 * 1024)
#define READ_BLOCK     (256u * 1024)
/* A write transaction ends after this many lines or this long, whichever
 * comes first: long enough that committing costs little, short enough
 * that other writers (the daemon) wait little. */
#define BATCH_LINES 10000
#define BATCH_MS    250
/* The import's page cache: a transaction of BATCH_LINES records of ~400
 * bytes changes some 20 MiB of pages (the records, the change log and
 * their indexes); in SQLite's default 2 MiB they went to the WAL early.
 * Measured on 300,000 records: 5% less time. */
#define IMPORT_CACHE_KIB (32 * 1024)
#define MAX_REPORTED     20
#define PROGRESS_MS      100

/* ---- import: reading lines -------------------------------------------------- */

#define SYN_IMPORT "import CLIENT/DB/STORE FILE|-"

/* Reads lines from a file descriptor, block by block. */
struct reader {
	int fd;
	char *block;
	size_t pos, end;
	bool eof;
	uint64_t offset; /* bytes consumed */
};

/* Reads the next line into `line` (without "\n" and a trailing "\r").
 * Returns 1 for a line, 0 at the end, -errno on a read error. A line over
 * LINE_MAX_BYTES is consumed whole and reported with *too_long. */
static int reader_next(struct reader *r, struct buf *line, bool *too_long)
{
	buf_reset(line);
	*too_long = false;
	bool any = false;
	for (;;) {
		if (r->pos == r->end) {
			if (r->eof)
				break;
			ssize_t n = read(r->fd, r->block, READ_BLOCK);
			if (n < 0) {
				if (errno == EINTR && !ctl_interrupted)
					continue;
				return -errno;
			}
			r->pos = 0;
			r->end = (size_t)n;
			r->eof = n == 0;
			continue;
		}
		any = true;
		char *start = r->block + r->pos;
		char *nl = memchr(start, '\n', r->end - r->pos);
		size_t chunk = nl ? (size_t)(nl - start) : r->end - r->pos;
		if (!*too_long && buf_append(line, start, chunk) != 0)
			*too_long = true;
		r->pos += chunk + (nl ? 1 : 0);
		r->offset += chunk + (nl ? 1 : 0);
		if (nl)
			break;
	}
	if (!any)
		return 0;
	if (!*too_long && line->len && line->data[line->len - 1] == '\r')
		buf_set_len(line, line->len - 1);
	if (line->len > LINE_MAX_BYTES)
		*too_long = true;
	return 1;
}

static int reader_rewind(struct reader *r)
{
	if (lseek(r->fd, 0, SEEK_SET) < 0)
		return -errno;
	r->pos = r->end = 0;
	r->eof = false;
	r->offset = 0;
	return 0;
}

/* Copies `in` to an unlinked temp file in $TMPDIR; *out is its fd. */
static int spool_to_temp(int in, const char *label, int *out)
{
	const char *dir = getenv("TMPDIR");
	if (!dir || !*dir)
		dir = "/tmp";
	char tmpl[PATH_MAX];
	if (snprintf(tmpl, sizeof(tmpl), "%s/idbmountctl-import-XXXXXX", dir) >=
	    (int)sizeof(tmpl)) {
		ctl_say("import: $TMPDIR is too long");
		return EXIT_FAIL;
	}
	int fd = mkstemp(tmpl);
	if (fd < 0) {
		ctl_say("import: cannot make a temp file in %s to buffer %s: %s", dir, label,
		        strerror(errno));
		return EXIT_FAIL;
	}
	unlink(tmpl);
	char *block = malloc(READ_BLOCK);
	if (!block) {
		close(fd);
		ctl_say("out of memory");
		return EXIT_FAIL;
	}
	int status = EXIT_OK;
	for (;;) {
		ssize_t n = read(in, block, READ_BLOCK);
		if (n < 0 && errno == EINTR && !ctl_interrupted)
			continue;
		if (n < 0) {
			ctl_say("import: cannot read %s: %s", label,
			        ctl_interrupted ? "interrupted" : strerror(errno));
			status = EXIT_FAIL;
			break;
		}
		if (n == 0)
			break;
		for (ssize_t done = 0; done < n;) {
			ssize_t w = write(fd, block + done, (size_t)(n - done));
			if (w < 0 && errno == EINTR && !ctl_interrupted)
				continue;
			if (w < 0) {
				ctl_say("import: cannot buffer %s in %s: %s", label, dir,
				        strerror(errno));
				status = EXIT_FAIL;
				break;
			}
			done += w;
		}
		if (status)
			break;
	}
	free(block);
	if (status) {
		close(fd);
		return status;
	}
	*out = fd;
	return EXIT_OK;
}

/* ---- import: the progress bar ----------------------------------------------- */

struct progress {
	bool on;
	const char *label;
	uint64_t total;
	int64_t start_ms, last_ms;
	int tier;  /* how much the text after the bar says (see progress_tail) */
	int width; /* of the bar; 0 for none */
};

static void human_bytes(uint64_t n, char *out, size_t outlen)
{
	static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
	if (n < 1024) {
		snprintf(out, outlen, "%llu B", (unsigned long long)n);
		return;
	}
	double v = (double)n / 1024;
	int u = 0;
	while (v >= 1024 && u < 3) {
		v /= 1024;
		u++;
	}
	snprintf(out, outlen, "%.1f %s", v, unit[u]);
}

static void human_rate(double per_sec, char *out, size_t outlen)
{
	if (per_sec >= 1e6)
		snprintf(out, outlen, "%.1fM", per_sec / 1e6);
	else if (per_sec >= 1e3)
		snprintf(out, outlen, "%.1fk", per_sec / 1e3);
	else
		snprintf(out, outlen, "%.0f", per_sec);
}

static int terminal_columns(void)
{
	struct winsize ws;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

/* The text after the bar: tier 0 with the byte rate, 1 without, 2 short. */
static int progress_tail(const struct progress *p, int tier, uint64_t done, uint64_t lines,
                         double secs, char *out, size_t outlen)
{
	int pct = p->total ? (int)(done * 100 / p->total) : 100;
	char sdone[32], stotal[32], lrate[32], brate[32];
	human_bytes(done, sdone, sizeof(sdone));
	human_bytes(p->total, stotal, sizeof(stotal));
	human_rate((double)lines / secs, lrate, sizeof(lrate));
	human_bytes((uint64_t)((double)done / secs), brate, sizeof(brate));
	unsigned long long n = lines;
	if (tier == 0)
		return snprintf(out, outlen, " %3d%% %s / %s  %llu lines  %s lines/s  %s/s", pct,
		                sdone, stotal, n, lrate, brate);
	if (tier == 1)
		return snprintf(out, outlen, " %3d%% %s / %s  %llu lines  %s lines/s", pct, sdone,
		                stotal, n, lrate);
	return snprintf(out, outlen, " %3d%% %llu lines", pct, n);
}

/* Starts a bar on stderr if it is a terminal. The layout is chosen once,
 * for the widest text the import can show, so the bar does not jitter. */
static void progress_start(struct progress *p, const char *label, uint64_t total)
{
	p->on = isatty(STDERR_FILENO) == 1;
	p->label = label;
	p->total = total;
	p->start_ms = clock_mono_ms();
	p->last_ms = p->start_ms; /* the first draw after PROGRESS_MS */
	int cols = terminal_columns() - 1;
	int fixed = (int)strlen(label) + 3; /* label, " [", "]" */
	char tail[200];
	for (p->tier = 0; p->tier < 3; p->tier++) {
		/* Widest: 7-digit line counts, 3-digit rates (0.001 s). */
		int len = progress_tail(p, p->tier, total ? total : 1023, 9999999, 0.01, tail,
		                        sizeof(tail));
		p->width = cols - fixed - len;
		if (p->width >= 10 || p->tier == 2)
			break;
	}
	if (p->width > 40)
		p->width = 40;
	if (p->width < 5)
		p->width = 0;
}

/* Redraws the bar, at most every PROGRESS_MS unless `force`. */
static void progress_draw(struct progress *p, uint64_t done, uint64_t lines, bool force)
{
	if (!p->on)
		return;
	int64_t now = clock_mono_ms();
	if (!force && now - p->last_ms < PROGRESS_MS)
		return;
	p->last_ms = now;
	double secs = (double)(now - p->start_ms) / 1000;
	char tail[200], bar[64];
	progress_tail(p, p->tier, done, lines, secs < 0.001 ? 0.001 : secs, tail, sizeof(tail));
	if (p->width) {
		int filled =
		        p->total ? (int)((double)done / (double)p->total * p->width) : p->width;
		for (int i = 0; i < p->width; i++)
			bar[i] = i < filled ? '#' : '.';
		bar[p->width] = '\0';
		fprintf(stderr, "\r%s [%s]%s\033[K", p->label, bar, tail);
	} else {
		fprintf(stderr, "\r%s%s\033[K", p->label, tail);
	}
	fflush(stderr);
}

static void progress_end(struct progress *p, uint64_t done, uint64_t lines)
{
	if (!p->on)
		return;
	progress_draw(p, done, lines, true);
	fputc('\n', stderr);
}

/* ---- import: the two passes ------------------------------------------------- */

struct import {
	struct store *st;
	struct ctl_path path;
	struct store_path sp;
	const char *label; /* FILE, or "<stdin>" */
	int fd;
	struct stat sb; /* of fd when pass 1 began */
	bool inline_keys;
	struct store_import *target;
	int found; /* levels of the path that existed */
	struct reader rd;
	struct buf line;
	/* pass 2 */
	uint64_t puts, deletes, absent;
	int64_t last_seq;
};

/* The text of line `lineno`, just read. Both passes take lines through
 * here and import_line_is_blank, so that pass 2 applies exactly the lines
 * pass 1 checked. */
static const char *line_text(const struct import *im, uint64_t lineno, size_t *len)
{
	*len = im->line.len;
	return import_line_text(im->line.data ? im->line.data : "", len, lineno);
}

/* Checks one line: "" in `why` for a good line, else the reason. The
 * text path passes the lines it is sure of; the tree path decides the
 * others and words the error. */
static void check_line(struct import *im, const char *text, size_t len, char *why, size_t why_len)
{
	struct import_line_split l;
	int64_t seq;
	if (import_line_split(text, len, im->inline_keys, &l) == 0 &&
	    (l.del ? store_import_delete(im->target, l.key, l.key_len, false, &seq)
	           : store_import_put(im->target, l.key, l.key_len, l.value, l.value_len, false,
	                              &seq)) == 0)
		return;
	import_line_check(im->st, &im->sp, im->inline_keys, text, len, why, why_len);
}

/* ---- import: lines read and laid out ahead ------------------------------------ */

/* Both passes read their lines on a second thread, in batches, and lay out
 * puts there (store_import_prepare), which is a quarter of an import's
 * work and needs no store; the main thread takes the batches in file
 * order. Pass 2 writes a batch while the next is read and laid out. Pass 1
 * (`checking`) splits the laying out: the reading thread checks every
 * other put, the main thread the rest, the lines the tree path must word
 * and the deletes (whose check touches the store's error text). At most
 * AHEAD_SLOTS batches exist, each of at most AHEAD_LINES lines or about
 * AHEAD_BYTES of text, so memory does not grow with the file. */
#define AHEAD_SLOTS 2
#define AHEAD_LINES 1000
#define AHEAD_BYTES (4u * 1024 * 1024)

/* One non-blank line: its text in the batch, and its put when laid out. */
struct ahead_line {
	uint64_t lineno;
	size_t off, len;
	bool too_long;
	bool checked;                     /* pass 1: a put laid out well */
	struct store_import_ready *ready; /* pass 2; NULL: applied from its text */
};

struct ahead_batch {
	struct buf text;
	struct ahead_line *lines;
	size_t n;
	uint64_t last_lineno; /* blank lines included */
	uint64_t offset;      /* the reader's, after the batch */
	int read_rc;          /* -errno: reading failed after these lines */
	bool end;             /* the file ends with this batch */
	bool full;            /* filled, not yet written */
};

struct ahead {
	struct import *im;
	bool checking; /* pass 1 */
	struct store_import_shape shape;
	pthread_t thread;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t moved; /* a batch was filled or emptied, or stop */
	struct ahead_batch slots[AHEAD_SLOTS];
	size_t fill, take; /* the next slot to fill and to write */
	bool stop;         /* the writer gave up: read no further */
	bool ended;        /* the main thread gave back the file's last batch */
};

static void ahead_batch_clear(struct ahead_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		store_import_ready_free(b->lines[i].ready);
	b->n = 0;
	buf_reset(&b->text);
	b->read_rc = 0;
	b->end = false;
}

/* Reads the next batch into `b` and lays out its puts. */
static void ahead_fill(struct ahead *a, struct ahead_batch *b, uint64_t *lineno)
{
	struct import *im = a->im;
	bool too_long;
	int rc = 1;
	while (b->n < AHEAD_LINES && b->text.len < AHEAD_BYTES &&
	       (rc = reader_next(&im->rd, &im->line, &too_long)) > 0) {
		++*lineno;
		size_t len;
		const char *text = line_text(im, *lineno, &len);
		if (!too_long && import_line_is_blank(text, len))
			continue;
		struct ahead_line *l = &b->lines[b->n];
		*l = (struct ahead_line){
		        .lineno = *lineno, .off = b->text.len, .too_long = too_long};
		if (!too_long) {
			if (buf_append(&b->text, text, len) != 0) {
				b->read_rc = -ENOMEM;
				break;
			}
			l->len = len;
			struct import_line_split split;
			bool mine = !a->checking || b->n % 2 == 0;
			if (mine && import_line_split(text, len, im->inline_keys, &split) == 0 &&
			    !split.del &&
			    store_import_prepare(&a->shape, split.key, split.key_len, split.value,
			                         split.value_len, &l->ready) != 0)
				l->ready = NULL;
			if (a->checking) {
				l->checked = l->ready != NULL;
				store_import_ready_free(l->ready);
				l->ready = NULL;
			}
		}
		b->n++;
	}
	if (rc <= 0 || b->read_rc) {
		b->end = true;
		if (rc < 0 && !b->read_rc)
			b->read_rc = rc;
	}
	b->last_lineno = *lineno;
	b->offset = im->rd.offset;
}

static void *ahead_main(void *arg)
{
	struct ahead *a = arg;
	uint64_t lineno = 0;
	pthread_mutex_lock(&a->lock);
	for (;;) {
		struct ahead_batch *b = &a->slots[a->fill];
		while (b->full && !a->stop)
			pthread_cond_wait(&a->moved, &a->lock);
		if (a->stop)
			break;
		pthread_mutex_unlock(&a->lock);
		ahead_fill(a, b, &lineno);
		pthread_mutex_lock(&a->lock);
		b->full = true;
		a->fill = (a->fill + 1) % AHEAD_SLOTS;
		pthread_cond_broadcast(&a->moved);
		if (b->end)
			break;
	}
	pthread_mutex_unlock(&a->lock);
	return NULL;
}

/* Stops the reading thread (wherever it is) and frees everything. */
static void ahead_stop(struct ahead *a)
{
	if (a->started) {
		pthread_mutex_lock(&a->lock);
		a->stop = true;
		pthread_cond_broadcast(&a->moved);
		pthread_mutex_unlock(&a->lock);
		pthread_join(a->thread, NULL);
		pthread_mutex_destroy(&a->lock);
		pthread_cond_destroy(&a->moved);
	}
	for (size_t i = 0; i < AHEAD_SLOTS; i++) {
		if (a->slots[i].lines)
			ahead_batch_clear(&a->slots[i]);
		free(a->slots[i].lines);
		buf_free(&a->slots[i].text);
	}
	store_import_shape_free(&a->shape);
}

/* Starts reading lines ahead (the reader rewound), for pass 1 when
 * `checking`, else for pass 2. On failure it says why and frees all. */
static int ahead_start(struct ahead *a, struct import *im, bool checking)
{
	int rc = -ENOMEM;
	memset(a, 0, sizeof(*a));
	a->im = im;
	a->checking = checking;
	for (size_t i = 0; i < AHEAD_SLOTS; i++) {
		/* A line is at most LINE_MAX_BYTES; a batch stops growing
		 * past AHEAD_BYTES. */
		buf_init(&a->slots[i].text, LINE_MAX_BYTES + AHEAD_BYTES);
		a->slots[i].lines = calloc(AHEAD_LINES, sizeof(*a->slots[i].lines));
		if (!a->slots[i].lines)
			goto fail;
	}
	rc = store_import_shape(im->target, &a->shape);
	if (rc)
		goto fail;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->moved, NULL);
	rc = -pthread_create(&a->thread, NULL, ahead_main, a);
	a->started = rc == 0;
	if (!rc)
		return 0;
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->moved);
fail:
	ahead_stop(a);
	ctl_say("import: cannot start reading ahead: %s", strerror(-rc));
	return rc;
}

/* The next filled batch, in file order; NULL once the last was given back. */
static struct ahead_batch *ahead_take(struct ahead *a)
{
	if (a->ended)
		return NULL;
	struct ahead_batch *b = &a->slots[a->take];
	pthread_mutex_lock(&a->lock);
	while (!b->full)
		pthread_cond_wait(&a->moved, &a->lock);
	pthread_mutex_unlock(&a->lock);
	return b;
}

/* Gives a written batch back for filling. */
static void ahead_done(struct ahead *a, struct ahead_batch *b)
{
	a->ended = b->end;
	ahead_batch_clear(b);
	pthread_mutex_lock(&a->lock);
	b->full = false;
	a->take = (a->take + 1) % AHEAD_SLOTS;
	pthread_cond_broadcast(&a->moved);
	pthread_mutex_unlock(&a->lock);
}

/* Pass 1: checks every line; reports the bad ones. */
static int import_check(struct import *im)
{
	struct ahead ahead;
	if (ahead_start(&ahead, im, true) != 0)
		return EXIT_FAIL;
	struct progress bar;
	progress_start(&bar, "checking ", (uint64_t)im->sb.st_size);
	uint64_t lineno = 0, offset = 0, bad = 0;
	char why[400];
	struct ahead_batch *b = NULL;
	int rc = 0;
	while (!rc && !ctl_interrupted && (b = ahead_take(&ahead)) != NULL) {
		for (size_t i = 0; i < b->n && !ctl_interrupted; i++) {
			const struct ahead_line *l = &b->lines[i];
			const char *text = b->text.data + l->off;
			why[0] = '\0';
			if (l->too_long)
				snprintf(why, sizeof(why), "line is longer than 16 MiB (%u bytes)",
				         LINE_MAX_BYTES);
			else if (!l->checked)
				check_line(im, text, l->len, why, sizeof(why));
			if (why[0] && ++bad <= MAX_REPORTED) {
				if (bar.on)
					fputs("\r\033[K", stderr);
				fprintf(stderr, "%s:%llu: %s\n", im->label,
				        (unsigned long long)l->lineno, why);
			}
		}
		lineno = b->last_lineno;
		offset = b->offset;
		progress_draw(&bar, offset, lineno, false);
		rc = b->read_rc;
		ahead_done(&ahead, b);
	}
	ahead_stop(&ahead);
	progress_end(&bar, offset, lineno);
	if (ctl_interrupted) {
		ctl_say("import: interrupted; nothing was imported");
		return EXIT_FAIL;
	}
	if (rc < 0) {
		ctl_say("import: cannot read %s: %s", im->label, strerror(-rc));
		return EXIT_FAIL;
	}
	if (bad > MAX_REPORTED)
		fprintf(stderr, "... and %llu more\n", (unsigned long long)(bad - MAX_REPORTED));
	if (bad) {
		ctl_say("import: %llu bad line%s in %s; nothing was imported",
		        (unsigned long long)bad, bad == 1 ? "" : "s", im->label);
		return EXIT_FAIL;
	}
	struct stat now;
	if (fstat(im->fd, &now) == 0 &&
	    (now.st_size != im->sb.st_size || now.st_mtim.tv_sec != im->sb.st_mtim.tv_sec ||
	     now.st_mtim.tv_nsec != im->sb.st_mtim.tv_nsec)) {
		ctl_say("import: %s changed while it was being checked; nothing was imported",
		        im->label);
		return EXIT_FAIL;
	}
	return EXIT_OK;
}

/* Counts what a line did: seq 0 for a delete of an absent record. */
static void count_line(struct import *im, bool del, int64_t seq)
{
	if (!del)
		im->puts++;
	else if (seq)
		im->deletes++;
	else
		im->absent++;
	if (seq > im->last_seq)
		im->last_seq = seq;
}

/* Applies one checked line the tree way. Returns 0 or a negative errno. */
static int apply_parsed(struct import *im, const struct import_line *l)
{
	int64_t seq = 0, rev = 0;
	if (l->del) {
		int rc = store_delete(im->st, &im->sp, l->key, ORIGIN_IMPORT, &seq);
		if (rc == -ENOENT) /* no such store yet: nothing to delete */
			rc = 0;
		if (rc)
			return rc;
	} else {
		json_t *extracted = NULL;
		const json_t *key = l->key;
		if (!key) {
			int rc = store_check_put(im->st, &im->sp, NULL, l->value, &extracted);
			if (rc)
				return rc;
			key = extracted;
		}
		int rc = store_put(im->st, &im->sp, key, l->value, ORIGIN_IMPORT, true, &rev, &seq);
		json_decref(extracted);
		if (rc)
			return rc;
	}
	count_line(im, l->del, seq);
	return 0;
}

/* Applies one checked line: the text way when it is sure of it, else the
 * tree way. Returns 0 or a negative errno, with the reason in `why` when
 * the line does not parse. */
static int apply_line(struct import *im, const char *text, size_t len, char *why, size_t why_len)
{
	struct import_line_split split;
	int64_t seq = 0;
	int rc = import_line_split(text, len, im->inline_keys, &split);
	if (rc == 0)
		rc = split.del
		             ? store_import_delete(im->target, split.key, split.key_len, true, &seq)
		             : store_import_put(im->target, split.key, split.key_len, split.value,
		                                split.value_len, true, &seq);
	if (rc == 0) {
		count_line(im, split.del, seq);
		return 0;
	}
	if (rc < 0)
		return rc;
	struct import_line l;
	if (import_line_parse(text, len, im->inline_keys, &l, why, why_len) != 0)
		rc = -EINVAL;
	else
		rc = apply_parsed(im, &l);
	import_line_free(&l);
	return rc;
}

/* How far pass 2 got in committed batches: what a failure reports. */
struct import_mark {
	uint64_t line, puts, deletes;
	int64_t seq;
};

/* Commits pass 2's open batch, which ends at line `lineno`, and moves
 * `done` up to it. Returns 0 or -errno. */
static int commit_batch(struct import *im, uint64_t lineno, struct import_mark *done)
{
	int rc = store_commit(im->st);
	if (rc == 0)
		*done = (struct import_mark){lineno, im->puts, im->deletes, im->last_seq};
	return rc;
}

/* Begins one of pass 2's transactions, with the target resolved anew. */
static int begin_batch(struct import *im)
{
	int rc = store_begin(im->st);
	if (rc == 0 && (rc = store_import_resolve(im->target)) != 0)
		store_rollback(im->st);
	return rc;
}

/* Applies one line of a batch: its laid-out put, or from its text. */
static int apply_ahead_line(struct import *im, struct ahead *a, struct ahead_batch *b,
                            struct ahead_line *l, char *why, size_t why_len)
{
	if (l->too_long) {
		snprintf(why, why_len, "line is longer than 16 MiB");
		return -EFBIG;
	}
	if (l->ready) {
		int64_t seq = 0;
		int rc = store_import_put_ready(im->target, &a->shape, l->ready, &seq);
		if (rc != STORE_IMPORT_DECLINED) {
			if (rc == 0)
				count_line(im, false, seq);
			return rc;
		}
	}
	return apply_line(im, b->text.data + l->off, l->len, why, why_len);
}

/* Pass 2: applies the lines in transactions of BATCH_LINES or BATCH_MS. */
static int import_apply(struct import *im)
{
	int rc = reader_rewind(&im->rd);
	if (rc) {
		ctl_say("import: cannot reread %s: %s", im->label, strerror(-rc));
		return EXIT_FAIL;
	}
	rc = store_set_cache_kib(im->st, IMPORT_CACHE_KIB);
	if (rc) {
		ctl_say("import: %s", store_last_error(im->st));
		return EXIT_FAIL;
	}
	struct ahead ahead;
	if (ahead_start(&ahead, im, false) != 0)
		return EXIT_FAIL;
	struct progress bar;
	progress_start(&bar, "importing", (uint64_t)im->sb.st_size);
	uint64_t lineno = 0, offset = 0;
	struct import_mark committed = {0};
	int in_batch = 0;
	int64_t batch_start = 0;
	char why[400] = "";
	struct ahead_batch *b = NULL;
	while (!rc && (b = ahead_take(&ahead)) != NULL) {
		for (size_t i = 0; i < b->n && !rc; i++) {
			struct ahead_line *l = &b->lines[i];
			lineno = l->lineno;
			if (ctl_interrupted) {
				snprintf(why, sizeof(why), "interrupted before this line");
				rc = -EINTR;
				break;
			}
			if (in_batch == 0) {
				if ((rc = begin_batch(im)) != 0)
					break;
				batch_start = clock_mono_ms();
			}
			in_batch++;
			rc = apply_ahead_line(im, &ahead, b, l, why, sizeof(why));
			/* The clock is read every 100 lines: often enough for
			 * BATCH_MS. */
			if (!rc &&
			    (in_batch == BATCH_LINES ||
			     (in_batch % 100 == 0 && clock_mono_ms() - batch_start >= BATCH_MS))) {
				rc = commit_batch(im, lineno, &committed);
				in_batch = 0;
			}
		}
		if (!rc) {
			lineno = b->last_lineno;
			offset = b->offset;
			progress_draw(&bar, offset, lineno, false);
			if (b->read_rc) {
				rc = b->read_rc;
				lineno++; /* the line that could not be read */
				snprintf(why, sizeof(why), "cannot read %s: %s", im->label,
				         strerror(-rc));
			}
		}
		ahead_done(&ahead, b);
	}
	ahead_stop(&ahead);
	if (rc == 0 && in_batch > 0) {
		rc = commit_batch(im, lineno, &committed);
		in_batch = 0;
	}
	progress_end(&bar, offset, lineno);
	if (rc == 0) {
		if (im->puts > 0)
			ctl_note_created(&im->path, im->found);
		ctl_wait_visible(im->st, im->last_seq, im->found < 3 ? ctl_tree_mark(im->st) : 0);
		return EXIT_OK;
	}
	if (in_batch > 0)
		store_rollback(im->st);
	if (!why[0])
		snprintf(why, sizeof(why), "%s",
		         *store_last_error(im->st) ? store_last_error(im->st) : strerror(-rc));
	ctl_say("import: %s:%llu: %s", im->label, (unsigned long long)lineno, why);
	if (committed.line == 0) {
		ctl_say("import stopped; nothing was imported");
	} else {
		ctl_say("import stopped; lines 1-%llu were imported (%llu records, %llu deleted), "
		        "the "
		        "rest was not; running the same import again is safe",
		        (unsigned long long)committed.line, (unsigned long long)committed.puts,
		        (unsigned long long)committed.deletes);
		ctl_wait_visible(im->st, committed.seq, ctl_tree_mark(im->st));
	}
	return EXIT_FAIL;
}

int ctl_cmd_import(struct ctl *c, int argc, char **argv)
{
	if (argc != 2)
		return ctl_arg_error(SYN_IMPORT, "import: want CLIENT/DB/STORE and FILE (or - for "
		                                 "standard input)");
	struct import im;
	memset(&im, 0, sizeof(im));
	im.fd = -1;
	int status = ctl_path_parse(argv[0], 3, 3, SYN_IMPORT, &im.path);
	if (status)
		return status;
	im.sp = ctl_path_store(&im.path);
	const char *file = argv[1];
	bool from_stdin = strcmp(file, "-") == 0;
	im.label = from_stdin ? "<stdin>" : file;
	buf_init(&im.line, LINE_MAX_BYTES + 1);
	im.rd.block = malloc(READ_BLOCK);
	char what[64 + PATH_MAX];
	snprintf(what, sizeof(what), "import %s", im.path.text);

	ctl_catch_interrupts();

	if (!im.rd.block) {
		ctl_say("out of memory");
		status = EXIT_FAIL;
	}
	if (!status)
		status = ctl_open_store(c, false);
	im.st = c->st;
	/* The target: its client must exist; its keyPath decides the lines. */
	uint64_t ino[3];
	if (!status) {
		int rc = ctl_path_lookup(im.st, &im.path, &im.found, ino);
		if (rc) {
			status = ctl_store_fail(im.st, rc, what);
		} else if (im.found == 0) {
			ctl_path_missing(what, &im.path, 0);
			status = EXIT_FAIL;
		}
	}
	if (!status && im.found == 3) {
		char *keypath = NULL;
		bool autoinc = false;
		int rc = store_objstore_info(im.st, ino[2], &keypath, &autoinc);
		if (rc)
			status = ctl_store_fail(im.st, rc, what);
		else
			im.inline_keys = strcmp(keypath, "null") != 0;
		free(keypath);
	}
	if (!status) {
		int rc = store_import_open(im.st, &im.sp, &im.target);
		if (rc)
			status = ctl_store_fail(im.st, rc, what);
	}
	/* The input, as a regular file that can be read twice. */
	if (!status) {
		int in = from_stdin ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC);
		struct stat sb;
		if (in < 0) {
			ctl_say("import: cannot open %s: %s", file, strerror(errno));
			status = EXIT_FAIL;
		} else if (fstat(in, &sb) != 0) {
			ctl_say("import: %s: %s", im.label, strerror(errno));
			status = EXIT_FAIL;
		} else if (S_ISDIR(sb.st_mode)) {
			ctl_say("import: %s is a directory", im.label);
			status = EXIT_FAIL;
		} else if (S_ISREG(sb.st_mode) && !from_stdin) {
			im.fd = in;
			in = -1;
		} else {
			status = spool_to_temp(in, im.label, &im.fd);
		}
		if (in >= 0 && !from_stdin)
			close(in);
	}
	if (!status && fstat(im.fd, &im.sb) != 0) {
		ctl_say("import: %s: %s", im.label, strerror(errno));
		status = EXIT_FAIL;
	}
	if (!status) {
		im.rd.fd = im.fd;
		status = reader_rewind(&im.rd) ? EXIT_FAIL : EXIT_OK;
		if (status)
			ctl_say("import: cannot read %s: %s", im.label, strerror(errno));
	}
	if (!status)
		status = import_check(&im);
	/* Pass 2 copies the WAL back on a thread of its own, as the daemon
	 * does: in SQLite's default, every commit that passed 1,000 pages of
	 * WAL did it, on the thread that writes (a tenth of the import). */
	struct checkpointer *checkpoints = NULL;
	if (!status && checkpointer_start(c->datadir, &checkpoints) == 0)
		store_checkpoints_follow(im.st);
	if (!status)
		status = import_apply(&im);
	checkpointer_stop(checkpoints);
	if (!status) {
		printf("imported %llu records into %s/%s/%s", (unsigned long long)im.puts,
		       im.path.part[0], im.path.part[1], im.path.part[2]);
		if (im.deletes || im.absent)
			printf(", deleted %llu (%llu already absent)",
			       (unsigned long long)im.deletes, (unsigned long long)im.absent);
		printf("\n");
		status = ctl_finish_stdout(EXIT_OK);
	}
	if (im.fd >= 0)
		close(im.fd);
	store_import_close(im.target);
	free(im.rd.block);
	buf_free(&im.line);
	ctl_path_free(&im.path);
	return status;
}
