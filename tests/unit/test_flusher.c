/* test_flusher.c - unit tests of the flusher (src/flusher/): when a batch
 * closes (by count, by bytes, by age), the retry policy (bounds, growth,
 * jitter, the reset after a success), and exactly once across a crash: a
 * child process runs the flusher into a real dir sink and dies at a chosen
 * point of a batch's intent (after staging, before delivering, between
 * publishing and the commit); a new flusher on the same data directory
 * then finishes the work, and every change must be in exactly one file.
 * No mount, no network: the sink is the dir sink, wrapped only to count
 * what it writes and to die. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "flusher_internal.h"

#include "idbmount/codec/changeline.h"
#include "idbmount/util/clock.h"
#include "idbmount/util/mkdirs.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- batches ---------------------------------------------------------------------- */

static struct store_change change(int64_t seq, int64_t ts_ms)
{
	struct store_change c = {
	        .seq = seq,
	        .ts_ms = ts_ms,
	        .client = "alice",
	        .db = "shop",
	        .objstore = "orders",
	        .key = "1",
	        .rev = 1,
	        .origin = ORIGIN_IMPORT,
	        .value = "{\"n\":1}",
	        .name = "1.json",
	        .objstore_id = 1,
	};
	return c;
}

/* The length of the line of change(seq, ts): every test line has it. */
static size_t line_length(void)
{
	struct buf b = BUF_INIT(1 << 20);
	struct store_change c = change(1, 1000);
	assert_int_equal(changeline_render(&b, &c, "node"), 0);
	size_t len = b.len;
	buf_free(&b);
	return len;
}

static struct sink_config limits(int64_t max_records, int64_t max_bytes, int64_t max_age_ms)
{
	struct sink_config cfg = {
	        .max_records = max_records,
	        .max_bytes = max_bytes,
	        .max_age_ms = max_age_ms,
	        .max_line = 2048,
	};
	return cfg;
}

static void test_batch_closes_by_count(void **state)
{
	(void)state;
	struct sink_config cfg = limits(3, 1 << 20, 60000);
	struct batch b;
	batch_init(&b);
	batch_reset(&b, 0, (size_t)cfg.max_bytes);
	for (int64_t seq = 1; seq <= 2; seq++) {
		struct store_change c = change(seq, 1000);
		assert_int_equal(batch_add(&b, &c, "node", &cfg, true), 0);
		assert_false(b.full);
		assert_false(batch_due(&b, 1000, cfg.max_age_ms));
	}
	struct store_change third = change(3, 1000);
	assert_int_equal(batch_add(&b, &third, "node", &cfg, true), 1);
	assert_true(b.full);
	assert_int_equal(b.n, 3);
	assert_int_equal(b.first_seq, 1);
	assert_int_equal(b.last_seq, 3);
	assert_int_equal(b.scan_seq, 3);
	/* Full: due at once, whatever its age. */
	assert_true(batch_due(&b, 1000, cfg.max_age_ms));
	batch_free(&b);
}

static void test_batch_closes_by_bytes(void **state)
{
	(void)state;
	size_t len = line_length();
	/* Room for two and a half lines: the third would go over. */
	struct sink_config cfg = limits(1000, (int64_t)(len * 5 / 2), 60000);
	struct batch b;
	batch_init(&b);
	batch_reset(&b, 0, (size_t)cfg.max_bytes);
	struct store_change c1 = change(1, 1000), c2 = change(2, 1000), c3 = change(3, 1000);
	assert_int_equal(batch_add(&b, &c1, "node", &cfg, true), 0);
	assert_int_equal(batch_add(&b, &c2, "node", &cfg, true), 0);
	assert_false(b.full);
	/* The third line starts the next batch: it is not in this one. */
	assert_int_equal(batch_add(&b, &c3, "node", &cfg, true), 1);
	assert_true(b.full);
	assert_int_equal(b.n, 2);
	assert_int_equal(b.lines.len, 2 * len);
	assert_int_equal(b.last_seq, 2);
	assert_int_equal(b.scan_seq, 2);
	assert_true(batch_due(&b, 1000, cfg.max_age_ms));

	/* Exactly max_bytes closes the batch with the line in it. */
	cfg.max_bytes = (int64_t)(2 * len);
	batch_reset(&b, 0, (size_t)cfg.max_bytes);
	assert_int_equal(batch_add(&b, &c1, "node", &cfg, true), 0);
	assert_int_equal(batch_add(&b, &c2, "node", &cfg, true), 1);
	assert_int_equal(b.n, 2);

	/* A line longer than max_bytes still ships, alone. */
	cfg.max_bytes = (int64_t)(len / 2);
	batch_reset(&b, 0, (size_t)cfg.max_bytes);
	assert_int_equal(batch_add(&b, &c1, "node", &cfg, true), 1);
	assert_int_equal(b.n, 1);

	/* Unlimited (a redo reads an intent's whole range): no closing. */
	batch_reset(&b, 0, (size_t)cfg.max_bytes);
	assert_int_equal(batch_add(&b, &c1, "node", &cfg, false), 0);
	assert_int_equal(batch_add(&b, &c2, "node", &cfg, false), 0);
	assert_int_equal(batch_add(&b, &c3, "node", &cfg, false), 0);
	assert_int_equal(b.n, 3);
	batch_free(&b);
}

static void test_batch_closes_by_age(void **state)
{
	(void)state;
	struct sink_config cfg = limits(1000, 1 << 20, 500);
	struct batch b;
	batch_init(&b);
	batch_reset(&b, 0, (size_t)cfg.max_bytes);
	/* An empty batch is never due. */
	assert_false(batch_due(&b, INT64_MAX / 2, cfg.max_age_ms));
	struct store_change first = change(1, 10000), later = change(2, 10400);
	assert_int_equal(batch_add(&b, &first, "node", &cfg, true), 0);
	assert_int_equal(batch_add(&b, &later, "node", &cfg, true), 0);
	assert_false(b.full);
	/* The age is the first change's, by its own time. */
	assert_false(batch_due(&b, 10000, cfg.max_age_ms));
	assert_false(batch_due(&b, 10499, cfg.max_age_ms));
	assert_true(batch_due(&b, 10500, cfg.max_age_ms));
	assert_true(batch_due(&b, 99999, cfg.max_age_ms));
	batch_free(&b);
}

/* ---- the retry policy ------------------------------------------------------------- */

/* The wait ceiling after `failures` failures in a row. */
static int64_t ceiling(int64_t initial, int64_t max, unsigned failures)
{
	int64_t d = initial;
	for (unsigned i = 0; i < failures && d < max; i++)
		d *= 2;
	return d < max ? d : max;
}

static void test_backoff_bounds_and_growth(void **state)
{
	(void)state;
	for (unsigned seed = 1; seed <= 200; seed++) {
		unsigned rng = seed;
		struct retry r;
		retry_init(&r, 200, 60000, &rng);
		for (unsigned k = 0; k < 14; k++) {
			int64_t wait;
			assert_int_equal(retry_after(&r, SINK_RETRY, false, &wait), RETRY_WAIT);
			int64_t d = ceiling(200, 60000, k);
			/* Equal jitter: half fixed, half random. */
			assert_in_range(wait, d / 2, d);
			assert_int_equal(r.failures, k + 1);
		}
	}
	/* Growth: the lowest wait doubles until the cap. */
	unsigned rng = 7;
	struct retry r;
	retry_init(&r, 200, 60000, &rng);
	int64_t lows[14];
	for (unsigned k = 0; k < 14; k++) {
		int64_t wait;
		retry_after(&r, SINK_RETRY, false, &wait);
		lows[k] = wait;
	}
	assert_true(lows[0] <= 200);
	assert_true(lows[5] >= 200 * 32 / 2);
	assert_true(lows[13] >= 30000 && lows[13] <= 60000);
}

static void test_backoff_jitter(void **state)
{
	(void)state;
	/* Sinks that failed together do not retry in step: the same failure
	 * count gives different waits under different random states. */
	int64_t seen[64];
	size_t distinct = 0;
	for (unsigned seed = 1; seed <= 64; seed++) {
		unsigned rng = seed * 2654435761u;
		struct retry r;
		retry_init(&r, 1000, 60000, &rng);
		int64_t wait;
		retry_after(&r, SINK_RETRY, false, &wait);
		retry_after(&r, SINK_RETRY, false, &wait);
		bool known = false;
		for (size_t i = 0; i < distinct && !known; i++)
			known = seen[i] == wait;
		if (!known)
			seen[distinct++] = wait;
	}
	assert_true(distinct >= 16);
}

static void test_backoff_resets_after_success(void **state)
{
	(void)state;
	unsigned rng = 42;
	struct retry r;
	retry_init(&r, 100, 60000, &rng);
	int64_t wait;
	for (int i = 0; i < 8; i++)
		retry_after(&r, SINK_RETRY, false, &wait);
	assert_true(wait >= 100 * 128 / 2);
	assert_int_equal(retry_after(&r, SINK_OK, false, &wait), RETRY_DONE);
	assert_int_equal(r.failures, 0);
	assert_int_equal(retry_after(&r, SINK_RETRY, false, &wait), RETRY_WAIT);
	assert_in_range(wait, 50, 100);
}

static void test_retry_verdicts(void **state)
{
	(void)state;
	unsigned rng = 1;
	struct retry r;
	retry_init(&r, 100, 1000, &rng);
	int64_t wait = -1;
	/* Refused for good: parked, not retried, no wait. */
	assert_int_equal(retry_after(&r, SINK_ERROR, false, &wait), RETRY_GIVE_UP);
	assert_int_equal(wait, 0);
	/* A failure while stopping is left for the next start. */
	assert_int_equal(retry_after(&r, SINK_RETRY, true, &wait), RETRY_LEAVE);
	assert_int_equal(wait, 0);
	assert_int_equal(retry_after(&r, SINK_RETRY, false, &wait), RETRY_WAIT);
	assert_true(wait > 0);
}

/* ---- exactly once across a crash ---------------------------------------------------- */

#define RECORDS 10 /* batches of 3: 1-3, 4-6, 7-9 and 10 (closed by age) */
#define CRASHED 42 /* the child's exit status when it died where asked */

enum crash_point {
	CRASH_NEVER,
	CRASH_AFTER_STAGE,    /* staged, not yet committed as staged */
	CRASH_BEFORE_DELIVER, /* committed as staged, not delivered */
	CRASH_AFTER_DELIVER,  /* published, not committed */
};

static enum crash_point crash_at;
static int calls;  /* of the crashing callback, in the child */
static int stages; /* batches written (staged) */

/* The second batch dies at the chosen point; the first goes through. */
static void maybe_crash(enum crash_point here)
{
	if (here == crash_at && ++calls == 2)
		_exit(CRASHED);
}

static enum sink_result crash_stage(void *ctx, const struct sink_batch *batch, char *msg,
                                    size_t msg_len)
{
	enum sink_result res = sink_type_dir.stage(ctx, batch, msg, msg_len);
	stages += res == SINK_OK;
	if (res == SINK_OK)
		maybe_crash(CRASH_AFTER_STAGE);
	return res;
}

static enum sink_result crash_deliver(void *ctx, const struct sink_batch *batch, char *msg,
                                      size_t msg_len)
{
	maybe_crash(CRASH_BEFORE_DELIVER);
	enum sink_result res = sink_type_dir.deliver(ctx, batch, msg, msg_len);
	if (res == SINK_OK)
		maybe_crash(CRASH_AFTER_DELIVER);
	return res;
}

struct crash_env {
	char root[64];
	char datadir[128];
	char out[128];
	char ini[128];
	int64_t seqs[RECORDS];
};

static void put_records(struct crash_env *e)
{
	char err[512];
	struct store *st = NULL;
	assert_int_equal(store_open(e->datadir, &st, err, sizeof(err)), 0);
	char token[STORE_TOKEN_MAX];
	assert_int_equal(store_client_add(st, "alice", NULL, token), 0);
	struct store_path path = {"alice", "shop", "orders"};
	for (int i = 0; i < RECORDS; i++) {
		json_t *key = json_integer(i + 1);
		json_t *value = json_pack("{s:i}", "n", i + 1);
		int64_t rev = 0;
		assert_int_equal(
		        store_put(st, &path, key, value, ORIGIN_IMPORT, true, &rev, &e->seqs[i]),
		        0);
		json_decref(key);
		json_decref(value);
	}
	store_close(st);
}

static void write_config(const struct crash_env *e)
{
	FILE *f = fopen(e->ini, "w");
	assert_non_null(f);
	fprintf(f,
	        "[sink t]\ntype = dir\npath = %s\nmax_records = 3\nmax_age = 100ms\n"
	        "retry_initial = 10ms\nretry_max = 100ms\nfsync = false\n",
	        e->out);
	fclose(f);
}

static void setup_env(struct crash_env *e)
{
	snprintf(e->root, sizeof(e->root), "/tmp/idbmount-test-flusher-XXXXXX");
	assert_non_null(mkdtemp(e->root));
	snprintf(e->datadir, sizeof(e->datadir), "%s/data", e->root);
	snprintf(e->out, sizeof(e->out), "%s/out", e->root);
	snprintf(e->ini, sizeof(e->ini), "%s/sinks.ini", e->root);
	char err[512];
	assert_int_equal(mkdirs(e->datadir, 0700, false, err, sizeof(err)), 0);
	put_records(e);
	write_config(e);
}

/* The dir sink, with its stage and deliver watched. */
static const struct sink_type *watched_dir(void)
{
	static struct sink_type watched;
	watched = sink_type_dir;
	watched.stage = crash_stage;
	watched.deliver = crash_deliver;
	return &watched;
}

/* Runs the flusher with the crashing sink until it dies (in a child). */
static void run_until_crash(const struct crash_env *e, enum crash_point at)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		crash_at = at;
		struct config *cfg = NULL;
		char err[1024];
		struct flusher *f = NULL;
		if (config_load(e->ini, &cfg, err, sizeof(err)) != 0)
			_exit(3);
		cfg->sinks[0]->type = watched_dir();
		if (flusher_new(cfg, e->datadir, &f, err, sizeof(err)) != 0 || flusher_start(f))
			_exit(4);
		sleep(60);
		_exit(5); /* never got to the crash */
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), CRASHED);
}

static struct store_sink sink_state(const struct crash_env *e)
{
	char err[512];
	struct store *st = NULL;
	assert_int_equal(store_open(e->datadir, &st, err, sizeof(err)), 0);
	struct store_sink k;
	assert_int_equal(store_sink_load(st, "t", &k), 0);
	store_close(st);
	return k;
}

/* Runs a fresh flusher with the dir sink (watched, never crashing) until
 * everything shipped. */
static void run_to_the_end(const struct crash_env *e)
{
	struct config *cfg = NULL;
	char err[1024];
	assert_int_equal(config_load(e->ini, &cfg, err, sizeof(err)), 0);
	crash_at = CRASH_NEVER;
	stages = 0;
	cfg->sinks[0]->type = watched_dir();
	struct flusher *f = NULL;
	assert_int_equal(flusher_new(cfg, e->datadir, &f, err, sizeof(err)), 0);
	assert_int_equal(flusher_start(f), 0);
	int64_t deadline = clock_mono_ms() + 60000;
	while (sink_state(e).cursor < e->seqs[RECORDS - 1] && clock_mono_ms() < deadline) {
		struct timespec pause = {0, 10 * 1000 * 1000};
		nanosleep(&pause, NULL);
	}
	flusher_stop(f);
	config_free(cfg);
}

/* Every change's seq in the published files, and the files' count. */
static size_t published_seqs(const struct crash_env *e, int64_t *seqs, size_t max, size_t *files)
{
	size_t n = 0;
	*files = 0;
	DIR *dh = opendir(e->out);
	assert_non_null(dh);
	struct dirent *d;
	while ((d = readdir(dh)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		/* Nothing but published batches: no temp file left behind. */
		size_t len = strlen(d->d_name);
		assert_true(len > 6 && strcmp(d->d_name + len - 6, ".jsonl") == 0);
		(*files)++;
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", e->out, d->d_name);
		FILE *f = fopen(path, "r");
		assert_non_null(f);
		char line[4096];
		while (fgets(line, sizeof(line), f)) {
			json_t *doc = json_loads(line, 0, NULL);
			assert_non_null(doc);
			assert_true(n < max);
			seqs[n++] = json_integer_value(json_object_get(doc, "seq"));
			json_decref(doc);
		}
		fclose(f);
	}
	closedir(dh);
	return n;
}

static size_t hidden_files(const struct crash_env *e)
{
	size_t n = 0;
	DIR *dh = opendir(e->out);
	assert_non_null(dh);
	struct dirent *d;
	while ((d = readdir(dh)) != NULL)
		n += d->d_name[0] == '.' && strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
	closedir(dh);
	return n;
}

static void remove_tree(const char *root)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
}

/* `rewritten`: whether the batch the crash interrupted must be written
 * again (only one whose staging was never committed). */
static void check_exactly_once(enum crash_point at, bool rewritten)
{
	struct crash_env e;
	setup_env(&e);
	run_until_crash(&e, at);
	/* The crash left the second batch's intent unfinished. */
	struct store_sink before = sink_state(&e);
	assert_int_equal(before.cursor, e.seqs[2]);
	run_to_the_end(&e);
	/* Batches 7-9 and 10, and the interrupted one if it must be. */
	assert_int_equal(stages, rewritten ? 3 : 2);

	struct store_sink after = sink_state(&e);
	assert_int_equal(after.cursor, e.seqs[RECORDS - 1]);
	assert_int_equal(after.delivered_changes, RECORDS);
	char err[512];
	struct store *st = NULL;
	assert_int_equal(store_open(e.datadir, &st, err, sizeof(err)), 0);
	struct store_sink_intent in;
	assert_int_equal(store_sink_intent_next(st, "t", &in), -ENOENT);
	store_close(st);

	int64_t seqs[4 * RECORDS];
	size_t files = 0;
	size_t n = published_seqs(&e, seqs, 4 * RECORDS, &files);
	/* Every change exactly once, in batches of 3 (the last by age). */
	assert_int_equal(n, RECORDS);
	for (int i = 0; i < RECORDS; i++) {
		size_t found = 0;
		for (size_t k = 0; k < n; k++)
			found += seqs[k] == e.seqs[i];
		assert_int_equal(found, 1);
	}
	assert_int_equal(files, (RECORDS + 2) / 3);
	assert_int_equal(hidden_files(&e), 0);
	remove_tree(e.root);
}

static void test_crash_after_stage(void **state)
{
	(void)state;
	check_exactly_once(CRASH_AFTER_STAGE, true);
}

static void test_crash_before_deliver(void **state)
{
	(void)state;
	check_exactly_once(CRASH_BEFORE_DELIVER, false);
}

static void test_crash_between_publish_and_commit(void **state)
{
	(void)state;
	check_exactly_once(CRASH_AFTER_DELIVER, false);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_batch_closes_by_count),
	        cmocka_unit_test(test_batch_closes_by_bytes),
	        cmocka_unit_test(test_batch_closes_by_age),
	        cmocka_unit_test(test_backoff_bounds_and_growth),
	        cmocka_unit_test(test_backoff_jitter),
	        cmocka_unit_test(test_backoff_resets_after_success),
	        cmocka_unit_test(test_retry_verdicts),
	        cmocka_unit_test(test_crash_after_stage),
	        cmocka_unit_test(test_crash_before_deliver),
	        cmocka_unit_test(test_crash_between_publish_and_commit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
