/* sink.h - the interface every sink type implements, Fluent Bit style.
 *
 * A sink type is one file under src/sinks/ that ends in one exported
 * `const struct sink_type`: a table of its options (name, default, kind,
 * help, and the field of the sink's context each one fills), which config.c
 * validates a config file against, `idbmountctl sink list` prints and the
 * sink's init binds into its context in one call (sink_options_bind,
 * config.h), as Fluent Bit's config map does; and a handful of callbacks. The flusher (flusher.c),
 * not the sink, owns cursors, batching, selectors, the change-line
 * rendering, retries and backoff: a callback makes one attempt and answers
 *
 *   SINK_OK     done;
 *   SINK_RETRY  not done, may work later (connection refused, 503, ENOSPC):
 *               the flusher backs off and calls again with the same batch;
 *   SINK_ERROR  this batch can never go (a 4xx for its content): the flusher
 *               parks it (reported; `idbmountctl sink unpark` re-queues it).
 *
 * with a message for logs, `idbmountctl status` and /metrics.
 *
 * Exactly once. A batch is recorded as an intent in the store before any
 * callback sees it, then goes through two steps, each committed in the
 * store when it returns OK:
 *
 *   stage    make the batch durable where no consumer looks (a hidden
 *            temp name); optional: sinks with one step (http) have none;
 *   deliver  make it visible in one atomic step (rename, RENAME, POST).
 *
 * After a crash the flusher calls `recover` for the unfinished intent,
 * telling it whether staging had been committed, and the sink says what it
 * finds: DELIVERED (the final name exists, or the staged copy is gone,
 * which only a delivery can do), STAGED (the staged copy is intact: only
 * deliver it) or REDO (stage and deliver again from the change log; the
 * batch's name and content are the same, they are derived from the log).
 * `deliver` answers OK in the same two cases (a retry after an answer that
 * was lost): a consumer may take a published file away at any moment.
 * For "gone" to mean "delivered", a sink keeps its staged copy where
 * consumers never look, answers `stage` OK only once that copy is
 * confirmed complete, and never lets a write it gave up on (a timeout)
 * appear under the staged name later.
 *
 * A sink's context is built by init from its validated options and only
 * read after; every callback of one sink runs on that sink's own thread.
 */
#ifndef IDBMOUNT_SINK_H
#define IDBMOUNT_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sink_config; /* config.h */

enum sink_result {
	SINK_OK = 0,
	SINK_RETRY = 1,
	SINK_ERROR = 2,
};

enum sink_recovery {
	SINK_RECOVER_DELIVERED = 0,
	SINK_RECOVER_STAGED = 1,
	SINK_RECOVER_REDO = 2,
};

/* What an option's value must look like (config.c checks it). */
enum sink_option_kind {
	SINK_OPT_STRING,   /* any text, or what `check` accepts */
	SINK_OPT_COUNT,    /* a decimal integer >= 0 */
	SINK_OPT_SIZE,     /* bytes, with an optional k, M or G (binary) suffix */
	SINK_OPT_DURATION, /* a number with a unit: ms, s, m or h */
	SINK_OPT_BOOL,     /* true/false, yes/no, on/off, 1/0 */
	SINK_OPT_CHOICE,   /* one of `choices` ("a|b|c") */
	SINK_OPT_URL,      /* http:// or https:// */
	SINK_OPT_PATH,     /* an absolute file system path */
};

/* The C type of the context field an option is bound to (SINK_BIND). */
enum sink_field {
	SINK_FIELD_NONE,   /* not bound */
	SINK_FIELD_STRING, /* const char *: the value or default, owned by the config */
	SINK_FIELD_NUMBER, /* int64_t: a COUNT, a SIZE in bytes, a DURATION in ms */
	SINK_FIELD_BOOL,   /* bool */
	SINK_FIELD_CHOICE, /* int: the value's index in `choices` */
	SINK_FIELD_LIST,   /* struct sink_strings: every value of a repeatable option */
};

/* The values of a repeatable option, in file order (sink_options_unbind
 * frees the array, not the strings: the config owns those). */
struct sink_strings {
	const char **values;
	size_t n;
};

/* The field kind of an lvalue: a field of another C type does not compile. */
#define SINK_FIELD_OF(lvalue)                                                                      \
	_Generic((lvalue),                                                                         \
	        const char *: SINK_FIELD_STRING,                                                   \
	        int64_t: SINK_FIELD_NUMBER,                                                        \
	        bool: SINK_FIELD_BOOL,                                                             \
	        int: SINK_FIELD_CHOICE,                                                            \
	        struct sink_strings: SINK_FIELD_LIST)

/* In an option's initializer: binds it to `member` of the context `type`. */
#define SINK_BIND(type, member)                                                                    \
	.field = SINK_FIELD_OF(((type *)0)->member), .offset = offsetof(type, member)

struct sink_option {
	const char *name;
	enum sink_option_kind kind;
	/* The embedded default as it would be written in the file; NULL makes
	 * the option required, "" means "none" (e.g. no partition). */
	const char *default_value;
	const char *help;
	const char *choices; /* SINK_OPT_CHOICE: "flume-json|jsonl" */
	bool repeatable;     /* may be given several times (http headers) */
	/* Further checks beyond the kind; false with the reason in `why`. */
	bool (*check)(const char *value, char *why, size_t why_len);
	/* Where sink_options_bind puts the value (SINK_BIND); SINK_FIELD_NONE
	 * for an option the engine reads otherwise (type, select). */
	enum sink_field field;
	size_t offset;
};

/* One batch as the callbacks see it. */
struct sink_batch {
	const char *name;      /* final file name, unique for ever */
	const char *partition; /* relative directory ("" for none), no slashes at the ends */
	const char *data;      /* the change lines, each ending in "\n" (NULL in recover) */
	size_t len;
	const size_t *line_ends; /* offset just past each line's "\n" */
	size_t lines;
	int64_t first_seq, last_seq;
};

struct sink_type {
	const char *name;                  /* the `type = ` value */
	const char *summary;               /* one line for `sink list` */
	const struct sink_option *options; /* ends with {NULL} */
	/* Whether batches are files: `prefix`, `partition` and `done_flag`
	 * apply (and close_period must be set). */
	bool files;
	/* Optional, files only: what this type refuses in those three beyond
	 * config.c's own rules (webhdfs: names HDFS never takes); false with
	 * the reason in `why`. */
	bool (*check_file_option)(const char *option, const char *value, char *why, size_t why_len);
	/* The embedded default of `max_records` for this type (0: the
	 * common default), e.g. a Flume channel's transaction capacity. */
	int64_t default_max_records;

	/* Builds the context from validated options. 0 or -errno with a
	 * message (a directory that cannot be made, curl that will not start). */
	int (*init)(const struct sink_config *cfg, void **ctx, char *err, size_t err_len);
	/* NULL for one-step sinks. */
	enum sink_result (*stage)(void *ctx, const struct sink_batch *batch, char *msg,
	                          size_t msg_len);
	enum sink_result (*deliver)(void *ctx, const struct sink_batch *batch, char *msg,
	                            size_t msg_len);
	/* Finds out how far an intent got before a crash (batch->data NULL);
	 * `staged` says whether staging had been committed. */
	enum sink_result (*recover)(void *ctx, const struct sink_batch *batch, bool staged,
	                            enum sink_recovery *found, char *msg, size_t msg_len);
	/* Files only: writes the done flag of a closed period's directory,
	 * after its last batch was delivered; must be idempotent. */
	enum sink_result (*close_period)(void *ctx, const char *partition, char *msg,
	                                 size_t msg_len);
	/* Optional: removes what this data directory's attempts left where
	 * no consumer looks (webhdfs: writes given up on that completed
	 * later). Every batch name of this data directory starts with
	 * `owner` ("PREFIX-NODE-EPOCH") and a '-' or '.'; the staged copies
	 * of the batches named in `keep` (intents staged, not yet delivered)
	 * stay. Called between batches, at start and now and then; OK may
	 * leave a message saying what was removed. */
	enum sink_result (*sweep)(void *ctx, const char *owner, const char *const *keep,
	                          size_t n_keep, char *msg, size_t msg_len);
	/* Optional, both or neither: for sinks that learn only after deliver
	 * that a consumer took a batch (the dir sink watching for Flume's
	 * rename to .COMPLETED or NiFi's delete). poll_taken answers -1 when
	 * this sink counts a delivery as taken, else 1 when a consumer may
	 * have taken a batch since the previous call, 0 when none did; called
	 * often, it must not block. The flusher then asks `taken` about each
	 * batch delivered and not yet taken, oldest first: 1 when its consumer
	 * took it (what that poll saw), 0 when not. Once at start it asks with
	 * `look`: the sink could not see takes while the daemon was down, and
	 * looks at the batch itself (and watches for it from then on). */
	int (*poll_taken)(void *ctx);
	int (*taken)(void *ctx, const struct sink_batch *batch, bool look);
	/* Optional: makes the call in progress on the sink's thread give up
	 * soon (answering RETRY), e.g. a POST to a server that does not
	 * answer. Called from another thread, at shutdown, once the time to
	 * deliver what was ready is over. */
	void (*cancel)(void *ctx);
	void (*close)(void *ctx);
};

extern const struct sink_type sink_type_dir;
extern const struct sink_type sink_type_webhdfs;
extern const struct sink_type sink_type_http;

/* Every sink type, NULL-terminated (config.c). */
extern const struct sink_type *const sink_types[];

/* The type named `name`, or NULL. */
const struct sink_type *sink_type_find(const char *name);

#endif
