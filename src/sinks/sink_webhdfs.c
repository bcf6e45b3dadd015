/* sink_webhdfs.c - the webhdfs sink: batches as files in HDFS, through WebHDFS
 * (the NameNode's REST API) or HttpFS (libcurl).
 *
 * Where a batch lives. NAME (NAME.gz with compression = gzip) is published
 * as PATH/PARTITION/NAME. Before that it is written into
 * PATH/.idbmount-staging/SINK (SINK: the sink's name, so that two sinks
 * into one path never sweep each other's copies), a hidden directory:
 * Hive, MapReduce, Spark, Flink and NiFi's HDFS processors skip names
 * starting with '.' or '_', directories included, and every name inside is
 * hidden as well. No consumer looks there and none moves it (a consumer
 * that archives a whole partition directory cannot take a staged copy with
 * it):
 *
 *   .NAME.tmp.TOKEN  one attempt at writing the batch; TOKEN is 8 hex
 *                    digits, new for every attempt;
 *   .NAME.tmp        the staged copy: an attempt whose CREATE was
 *                    answered 201, renamed.
 *
 * Why an attempt has a name of its own: a write the sink gave up on (a
 * timeout) can still complete in HDFS later, even after the batch was
 * published and taken. Under the staged name it would be a second staged
 * copy that a retried RENAME or a recovery publishes again; under its own
 * name it is only litter, which the sweep removes. So only a confirmed
 * write ever becomes the staged copy, and only the delivery's RENAME
 * removes it; that is what lets "the staged copy is gone" mean
 * "delivered" (sink.h), whatever a consumer does to published files.
 *
 * stage    CREATE of a new attempt with overwrite=false (WebHDFS answers
 *          307 with the DataNode's address, which we follow ourselves,
 *          PUTting the data there as application/octet-stream; with
 *          noredirect=true the NameNode answers 200 {"Location": ...}
 *          instead; HttpFS, httpfs = true, takes the data in the first PUT
 *          with data=true; `overwrite` is always sent, as WebHDFS defaults
 *          it to false and HttpFS to true; CREATE makes the directory),
 *          then RENAME of the attempt to .NAME.tmp. A .NAME.tmp already
 *          there (a crash before the intent was marked staged, a batch
 *          parked after staging and unparked) is deleted first: the batch
 *          is being written again from the log.
 * deliver  MKDIRS of the partition (once per directory), RENAME of
 *          .NAME.tmp to the final name. HDFS answers 200 {"boolean":false}
 *          when it did not rename (target exists, source or target parent
 *          missing): never a success by itself. GETFILESTATUS then says
 *          why: the staged copy gone means that an earlier RENAME, whose
 *          answer was lost, published it (and a consumer may have taken it
 *          since): delivered. The staged copy still there is a failure,
 *          retried: the target exists (not ours: our names are unique), or
 *          the partition directory was removed (it is made again).
 * recover  The final name there: delivered. A staged intent whose staged
 *          copy is there: deliver it; gone: delivered. A pending intent:
 *          stage and deliver again.
 * sweep    LISTSTATUS of the staging directory, DELETE of this data
 *          directory's attempts and of its staged copies that no staged
 *          intent needs (a parked batch is written again when unparked):
 *          at start and every 10 minutes, between batches (src/flusher/sweep.c).
 *          Names of other nodes and data directories are left alone.
 * close_period  CREATE of the empty done flag with overwrite=false; an
 *          existing flag (FileAlreadyExistsException) is fine.
 *
 * Someone deleting files in the staging directory by hand makes their
 * batches count as delivered (their changes are still in the change log:
 * `idbmountctl sink replay` ships them again). A staged copy is looked for
 * under the sink's current `path` and `compression`: change those while no
 * batch is staged (`idbmountctl status` shows no intent in flight), or the
 * batch counts as delivered. Versions before the staging directory staged
 * .NAME.tmp next to the final name: a batch found staged there after an
 * upgrade is published from there.
 *
 * Errors are RETRY, with one exception: 400 InvalidPathException, HDFS's
 * answer to a name it never takes (DFSUtil.isValidName: a name part
 * holding ':', "." or "..", an empty part), parks the batch (ERROR), as
 * no retry can change it. The config check refuses such names in path,
 * partition and done_flag at start, so this is a batch recorded under an
 * older config, or a cluster stricter than HDFS's rules. Any other refusal
 * (permissions, safe mode, quota, a wrong user, a name over the cluster's
 * length limit) is fixed by a person while the backlog waits in order.
 * RemoteException answers are shown as "HTTP 403 AccessControlException:
 * message". A 404 counts as "no such file" only with HDFS's
 * FileNotFoundException: a 404 page from a proxy says nothing about files.
 *
 * user.name is sent for simple authentication (Kerberos/SPNEGO is not
 * supported). `compression = gzip` writes NAME.gz (a gzip member with no
 * name and time 0, so a redo writes the same bytes); Hive, Spark and
 * `hdfs dfs -text` read it by the suffix.
 */
#include "curl_client.h"

#include "idbmount/sinks/config.h"
#include "idbmount/sinks/partition.h"
#include "idbmount/sinks/sink.h"

#include <errno.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define STAGING_DIR ".idbmount-staging"
/* A LISTSTATUS of the staging directory may be long (other nodes'
 * attempts in flight, litter of daemons that are gone). */
#define LIST_MAX (16u * 1024 * 1024)

/* In the order of the option's choices. */
enum compression {
	COMPRESSION_NONE,
	COMPRESSION_GZIP,
};

struct webhdfs_sink {
	/* Bound from the options (webhdfs_options), with the client's. */
	struct curl_client client;
	const char *configured_url;
	const char *configured_path;
	const char *configured_user; /* "" for the daemon's user */
	bool httpfs;
	bool noredirect;
	int compression; /* enum compression */

	char base[1024];    /* the URL up to and including /webhdfs/v1 */
	char path[1024];    /* the HDFS directory */
	char staging[1200]; /* PATH/.idbmount-staging/SINK */
	char user[256];
	const char *done_flag;
	bool gzip;
	char last_dir[2048]; /* made by MKDIRS already */
	/* The batch recover found staged where versions before the staging
	 * directory put it (its deliver renames it from there). */
	char legacy_name[256];
	uint32_t token_seed, attempts;
	struct buf url;
	struct buf packed; /* the gzip form of a batch */
};

/* Compresses `data` into w->packed as one gzip member. 0 or -errno. */
static int pack(struct webhdfs_sink *w, const char *data, size_t len)
{
	buf_reset(&w->packed);
	z_stream z;
	memset(&z, 0, sizeof(z));
	/* 15 + 16: a gzip header, with mtime 0 and no name: deterministic. */
	if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	size_t bound = deflateBound(&z, (uLong)len);
	char *out = buf_reserve_at(&w->packed, 0, bound);
	int rc = 0;
	if (!out) {
		rc = -EFBIG;
	} else {
		z.next_in = (Bytef *)(uintptr_t)data;
		z.avail_in = (uInt)len;
		z.next_out = (Bytef *)out;
		z.avail_out = (uInt)bound;
		if (deflate(&z, Z_FINISH) != Z_STREAM_END)
			rc = -EIO;
		else
			buf_set_len(&w->packed, z.total_out);
	}
	deflateEnd(&z);
	return rc;
}

/* ---- names HDFS takes --------------------------------------------------------------- */

/* Whether HDFS takes the name parts of `path` (DFSUtil.isValidName): none
 * holds ':', none is "." or "..", none is empty ("//"; a leading or
 * trailing '/' is fine). false with the reason in `why`. */
static bool hdfs_parts_valid(const char *path, char *why, size_t why_len)
{
	const char *part = path[0] == '/' ? path + 1 : path;
	for (;;) {
		const char *end = strchr(part, '/');
		size_t len = end ? (size_t)(end - part) : strlen(part);
		if (len == 0 && end) {
			snprintf(why, why_len, "HDFS refuses an empty name part ('//')");
			return false;
		}
		if ((len == 1 && part[0] == '.') ||
		    (len == 2 && part[0] == '.' && part[1] == '.')) {
			snprintf(why, why_len, "HDFS refuses '.' and '..' as name parts");
			return false;
		}
		const char *colon = memchr(part, ':', len);
		if (colon) {
			snprintf(why, why_len, "HDFS refuses a name part holding ':' ('%.*s')",
			         (int)len, part);
			return false;
		}
		if (!end)
			return true;
		part = end + 1;
	}
}

static bool check_hdfs_path(const char *value, char *why, size_t why_len)
{
	if (value[0] != '/') {
		snprintf(why, why_len, "'%s' is not an absolute HDFS path", value);
		return false;
	}
	size_t len = strlen(value);
	while (len > 1 && value[len - 1] == '/')
		len--;
	char trimmed[1024];
	snprintf(trimmed, sizeof(trimmed), "%.*s", (int)len, value);
	return hdfs_parts_valid(trimmed, why, why_len);
}

/* The partition template as it renders (the variables give digits, at
 * any time), and the done flag, as HDFS names. */
static bool webhdfs_check_file_option(const char *option, const char *value, char *why,
                                      size_t why_len)
{
	if (strcmp(option, "partition") != 0)
		return hdfs_parts_valid(value, why, why_len);
	char rendered[1024], reason[512];
	partition_render(value, 0, rendered, sizeof(rendered));
	if (hdfs_parts_valid(rendered, reason, sizeof(reason)))
		return true;
	snprintf(why, why_len, "gives names like '%s': %s", rendered, reason);
	return false;
}

/* ---- requests ---------------------------------------------------------------------- */

/* HDFS's answer to a name it will never take: no retry can change it. */
static bool refused_for_good(const char *exception)
{
	return strcmp(exception, "InvalidPathException") == 0;
}

/* OK for a 2xx; else RETRY or, for an answer no retry can change, ERROR,
 * with `msg` saying what happened (a RemoteException's class and
 * message). */
static enum sink_result answer(const struct curl_response *r, const char *what, char *msg,
                               size_t msg_len)
{
	enum sink_result res = curl_client_classify(r, what, msg, msg_len);
	if (res == SINK_OK)
		return SINK_OK;
	bool permanent = false;
	if (r->code == CURLE_OK && r->body.len) {
		json_t *doc = json_loadb(r->body.data, r->body.len, 0, NULL);
		json_t *ex = json_object_get(doc, "RemoteException");
		if (ex) {
			const char *name = json_string_value(json_object_get(ex, "exception"));
			const char *text = json_string_value(json_object_get(ex, "message"));
			snprintf(msg, msg_len, "%s: HTTP %ld %s: %s", what, r->status,
			         name ? name : "RemoteException", text ? text : "");
			permanent = r->status == 400 && name && refused_for_good(name);
		}
		json_decref(doc);
	}
	return permanent ? SINK_ERROR : SINK_RETRY;
}

/* Whether `r` is HDFS saying that the path does not exist. */
static bool not_found(const struct curl_response *r)
{
	if (r->code != CURLE_OK || r->status != 404 || !r->body.len)
		return false;
	json_t *doc = json_loadb(r->body.data, r->body.len, 0, NULL);
	const char *name = json_string_value(
	        json_object_get(json_object_get(doc, "RemoteException"), "exception"));
	bool found = name && strcmp(name, "FileNotFoundException") == 0;
	json_decref(doc);
	return found;
}

/* Builds BASE + escaped HDFS path + "?op=OP&user.name=U" + extra. */
static const char *make_url(struct webhdfs_sink *w, const char *hdfs_path, const char *op,
                            const char *extra)
{
	buf_reset(&w->url);
	int rc = buf_append_str(&w->url, w->base);
	if (!rc)
		rc = curl_client_escape(&w->url, hdfs_path, false);
	if (!rc)
		rc = buf_printf(&w->url, "?op=%s&user.name=", op);
	if (!rc)
		rc = curl_client_escape(&w->url, w->user, true);
	if (!rc && extra)
		rc = buf_append_str(&w->url, extra);
	return rc ? NULL : w->url.data;
}

/* Asks the NameNode for operation `op` on `hdfs_path` (plus `extra` query
 * text), without a body; `what` gets "OP path" for messages. Returns false,
 * with `msg` saying why and `r` not filled, when the URL cannot be made. */
static bool namenode_call(struct webhdfs_sink *w, const char *method, const char *hdfs_path,
                          const char *op, const char *extra, struct curl_response *r, char *what,
                          size_t what_len, char *msg, size_t msg_len)
{
	const char *url = make_url(w, hdfs_path, op, extra);
	if (!url) {
		snprintf(msg, msg_len, "URL too long");
		return false;
	}
	curl_client_request(&w->client, method, url, NULL, NULL, 0, r);
	snprintf(what, what_len, "%s %s", op, hdfs_path);
	return true;
}

/* The "boolean" of an answer like {"boolean":true}: OK with *value, or
 * RETRY/ERROR with `msg`. */
static enum sink_result boolean_answer(const struct curl_response *r, const char *what, bool *value,
                                       char *msg, size_t msg_len)
{
	enum sink_result res = answer(r, what, msg, msg_len);
	if (res != SINK_OK)
		return res;
	json_t *doc = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
	json_t *b = json_object_get(doc, "boolean");
	if (json_is_boolean(b)) {
		*value = json_is_true(b);
	} else {
		snprintf(msg, msg_len, "%s: answered %.*s, not {\"boolean\": ...}", what,
		         (int)(r->body.len < 200 ? r->body.len : 200),
		         r->body.data ? r->body.data : "");
		res = SINK_RETRY;
	}
	json_decref(doc);
	return res;
}

static enum sink_result mkdirs(struct webhdfs_sink *w, const char *dir, char *msg, size_t msg_len)
{
	if (strcmp(w->last_dir, dir) == 0)
		return SINK_OK;
	struct curl_response r;
	char what[1200];
	if (!namenode_call(w, "PUT", dir, "MKDIRS", NULL, &r, what, sizeof(what), msg, msg_len))
		return SINK_ERROR;
	bool made = false;
	enum sink_result res = boolean_answer(&r, what, &made, msg, msg_len);
	curl_response_free(&r);
	if (res == SINK_OK && !made) {
		snprintf(msg, msg_len, "%s: answered {\"boolean\":false}", what);
		res = SINK_RETRY;
	}
	if (res == SINK_OK)
		snprintf(w->last_dir, sizeof(w->last_dir), "%s", dir);
	return res;
}

/* CREATE `file` with `data`, the two steps of WebHDFS or HttpFS's one. */
static enum sink_result create_file(struct webhdfs_sink *w, const char *file, const char *data,
                                    size_t len, bool overwrite, char *msg, size_t msg_len)
{
	char extra[64];
	snprintf(extra, sizeof(extra), "&overwrite=%s%s%s", overwrite ? "true" : "false",
	         w->httpfs ? "&data=true" : "",
	         w->noredirect && !w->httpfs ? "&noredirect=true" : "");
	const char *url = make_url(w, file, "CREATE", extra);
	if (!url) {
		snprintf(msg, msg_len, "URL too long");
		return SINK_ERROR;
	}
	struct curl_slist *octet =
	        curl_slist_append(NULL, "Content-Type: application/octet-stream");
	if (!octet) {
		snprintf(msg, msg_len, "out of memory");
		return SINK_RETRY;
	}
	char what[1200];
	snprintf(what, sizeof(what), "CREATE %s", file);
	struct curl_response r;
	enum sink_result res;
	if (w->httpfs) {
		curl_client_request(&w->client, "PUT", url, octet, data ? data : "", len, &r);
		res = answer(&r, what, msg, msg_len);
		curl_response_free(&r);
		curl_slist_free_all(octet);
		return res;
	}
	curl_client_request(&w->client, "PUT", url, NULL, NULL, 0, &r);
	char location[2048] = "";
	if (r.code == CURLE_OK && r.status == 307 && r.location[0]) {
		snprintf(location, sizeof(location), "%s", r.location);
	} else if (r.code == CURLE_OK && r.status == 200 && w->noredirect) {
		json_t *doc = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
		const char *loc = json_string_value(json_object_get(doc, "Location"));
		if (loc)
			snprintf(location, sizeof(location), "%s", loc);
		json_decref(doc);
	}
	if (!location[0]) {
		res = answer(&r, what, msg, msg_len);
		if (res == SINK_OK) {
			snprintf(msg, msg_len, "%s: HTTP %ld without a DataNode location", what,
			         r.status);
			res = SINK_RETRY;
		}
		curl_response_free(&r);
		curl_slist_free_all(octet);
		return res;
	}
	curl_response_free(&r);
	snprintf(what, sizeof(what), "CREATE %s (DataNode)", file);
	curl_client_request(&w->client, "PUT", location, octet, data ? data : "", len, &r);
	res = answer(&r, what, msg, msg_len);
	if (res == SINK_OK && r.status != 201) {
		snprintf(msg, msg_len, "%s: HTTP %ld, expected 201 Created", what, r.status);
		res = SINK_RETRY;
	}
	curl_response_free(&r);
	curl_slist_free_all(octet);
	return res;
}

/* GETFILESTATUS: OK with *exists, or RETRY/ERROR with `msg`. */
static enum sink_result file_exists(struct webhdfs_sink *w, const char *file, bool *exists,
                                    char *msg, size_t msg_len)
{
	struct curl_response r;
	char what[1200];
	if (!namenode_call(w, "GET", file, "GETFILESTATUS", NULL, &r, what, sizeof(what), msg,
	                   msg_len))
		return SINK_ERROR;
	enum sink_result res = SINK_OK;
	if (not_found(&r))
		*exists = false;
	else if ((res = answer(&r, what, msg, msg_len)) == SINK_OK)
		*exists = true;
	curl_response_free(&r);
	return res;
}

/* RENAME `from` to `to`: OK with *renamed (HDFS's boolean), or RETRY/ERROR. */
static enum sink_result rename_file(struct webhdfs_sink *w, const char *from, const char *to,
                                    bool *renamed, char *msg, size_t msg_len)
{
	struct buf dest;
	buf_init(&dest, 8192);
	int rc = buf_append_str(&dest, "&destination=");
	if (!rc)
		rc = curl_client_escape(&dest, to, false);
	struct curl_response r;
	char what[2500];
	bool asked = !rc && namenode_call(w, "PUT", from, "RENAME", dest.data, &r, what,
	                                  sizeof(what), msg, msg_len);
	buf_free(&dest);
	if (!asked) {
		snprintf(msg, msg_len, "RENAME %s: URL too long", from);
		return SINK_ERROR;
	}
	enum sink_result res = boolean_answer(&r, what, renamed, msg, msg_len);
	curl_response_free(&r);
	return res;
}

/* DELETE of a file (gone already is fine): OK, or RETRY/ERROR. */
static enum sink_result delete_file(struct webhdfs_sink *w, const char *file, char *msg,
                                    size_t msg_len)
{
	struct curl_response r;
	char what[1200];
	if (!namenode_call(w, "DELETE", file, "DELETE", "&recursive=false", &r, what, sizeof(what),
	                   msg, msg_len))
		return SINK_ERROR;
	bool deleted;
	enum sink_result res = boolean_answer(&r, what, &deleted, msg, msg_len);
	curl_response_free(&r);
	return res;
}

/* ---- batches ----------------------------------------------------------------------- */

struct batch_paths {
	char dir[2048];    /* PATH/PARTITION */
	char final[2400];  /* PATH/PARTITION/NAME */
	char staged[2400]; /* PATH/.idbmount-staging/SINK/.NAME.tmp */
	char legacy[2400]; /* PATH/PARTITION/.NAME.tmp: where versions before staged it */
};

/* `parent` + "/" + `name`, with no "//" when `parent` is the root. */
static void join(char *out, size_t outlen, const char *parent, const char *name)
{
	snprintf(out, outlen, "%s%s%s", parent, strcmp(parent, "/") == 0 ? "" : "/", name);
}

static void batch_paths(const struct webhdfs_sink *w, const struct sink_batch *b,
                        struct batch_paths *p)
{
	const char *ext = w->gzip ? ".gz" : "";
	char file[300];
	if (b->partition[0])
		join(p->dir, sizeof(p->dir), w->path, b->partition);
	else
		snprintf(p->dir, sizeof(p->dir), "%s", w->path);
	snprintf(file, sizeof(file), "%s%s", b->name, ext);
	join(p->final, sizeof(p->final), p->dir, file);
	snprintf(file, sizeof(file), ".%s%s.tmp", b->name, ext);
	join(p->staged, sizeof(p->staged), w->staging, file);
	join(p->legacy, sizeof(p->legacy), p->dir, file);
}

/* A token no other attempt of this process had, and unlikely in any other
 * process (the seed is random). */
static uint32_t next_token(struct webhdfs_sink *w)
{
	return w->token_seed + ++w->attempts * 0x9e3779b9u;
}

static enum sink_result webhdfs_stage(void *ctx, const struct sink_batch *b, char *msg,
                                      size_t msg_len)
{
	struct webhdfs_sink *w = ctx;
	if (!b->data || b->len == 0) {
		snprintf(msg, msg_len, "refusing to write an empty batch %s", b->name);
		return SINK_ERROR;
	}
	struct batch_paths p;
	batch_paths(w, b, &p);
	const char *data = b->data;
	size_t len = b->len;
	if (w->gzip) {
		int rc = pack(w, b->data, b->len);
		if (rc) {
			snprintf(msg, msg_len, "compressing %s: %s", b->name, strerror(-rc));
			return SINK_ERROR;
		}
		data = w->packed.data;
		len = w->packed.len;
	}
	char attempt[2500];
	snprintf(attempt, sizeof(attempt), "%s.%08x", p.staged, next_token(w));
	enum sink_result res = create_file(w, attempt, data, len, false, msg, msg_len);
	if (res != SINK_OK)
		return res;
	/* Confirmed: it becomes the staged copy. */
	bool renamed = false;
	res = rename_file(w, attempt, p.staged, &renamed, msg, msg_len);
	if (res != SINK_OK || renamed)
		return res;
	/* A staged copy of this batch is there already (see the top): the
	 * batch is written again, so it goes. */
	res = delete_file(w, p.staged, msg, msg_len);
	if (res == SINK_OK)
		res = rename_file(w, attempt, p.staged, &renamed, msg, msg_len);
	if (res == SINK_OK && !renamed) {
		snprintf(msg, msg_len, "RENAME %s to %s: HDFS answered {\"boolean\":false}",
		         attempt, p.staged);
		res = SINK_RETRY;
	}
	return res;
}

static enum sink_result webhdfs_deliver(void *ctx, const struct sink_batch *b, char *msg,
                                        size_t msg_len)
{
	struct webhdfs_sink *w = ctx;
	struct batch_paths p;
	batch_paths(w, b, &p);
	const char *staged = strcmp(b->name, w->legacy_name) == 0 ? p.legacy : p.staged;
	enum sink_result res = mkdirs(w, p.dir, msg, msg_len);
	if (res != SINK_OK)
		return res;
	bool renamed = false;
	res = rename_file(w, staged, p.final, &renamed, msg, msg_len);
	if (res == SINK_OK && !renamed) {
		/* Why not? The staged copy gone: an earlier RENAME published
		 * it, its answer was lost (sink.h). */
		bool have_staged = false, have_final = false;
		res = file_exists(w, staged, &have_staged, msg, msg_len);
		if (res == SINK_OK && have_staged)
			res = file_exists(w, p.final, &have_final, msg, msg_len);
		if (res == SINK_OK && have_staged) {
			if (!have_final)
				w->last_dir[0] = '\0'; /* removed since MKDIRS? made again */
			snprintf(msg, msg_len,
			         "RENAME %s to %s: HDFS answered {\"boolean\":false}%s", staged,
			         p.final,
			         have_final ? " (the target exists)" : " (is its directory gone?)");
			res = SINK_RETRY;
		}
	}
	if (res == SINK_OK)
		w->legacy_name[0] = '\0';
	return res;
}

static enum sink_result webhdfs_recover(void *ctx, const struct sink_batch *b, bool staged,
                                        enum sink_recovery *found, char *msg, size_t msg_len)
{
	struct webhdfs_sink *w = ctx;
	struct batch_paths p;
	batch_paths(w, b, &p);
	w->legacy_name[0] = '\0';
	bool have = false;
	enum sink_result res = file_exists(w, p.final, &have, msg, msg_len);
	if (res != SINK_OK)
		return res;
	if (have || !staged) {
		*found = have ? SINK_RECOVER_DELIVERED : SINK_RECOVER_REDO;
		return SINK_OK;
	}
	res = file_exists(w, p.staged, &have, msg, msg_len);
	if (res == SINK_OK && !have) {
		res = file_exists(w, p.legacy, &have, msg, msg_len);
		if (res == SINK_OK && have)
			snprintf(w->legacy_name, sizeof(w->legacy_name), "%s", b->name);
	}
	if (res != SINK_OK)
		return res;
	/* Staged and the copy gone: only the delivery removes it. */
	*found = have ? SINK_RECOVER_STAGED : SINK_RECOVER_DELIVERED;
	return SINK_OK;
}

/* ---- the sweep ----------------------------------------------------------------------- */

/* Whether `name` (in the staging directory) is one of `owner`'s. */
static bool owned(const char *name, const char *owner)
{
	size_t n = strlen(owner);
	return name[0] == '.' && strncmp(name + 1, owner, n) == 0 &&
	       (name[1 + n] == '-' || name[1 + n] == '.');
}

/* Whether `name` is an attempt: ".NAME.tmp." and 8 hex digits. */
static bool is_attempt(const char *name)
{
	size_t len = strlen(name);
	if (len < 14 || strncmp(name + len - 13, ".tmp.", 5) != 0)
		return false;
	for (const char *p = name + len - 8; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

/* Whether the staging directory's `name` goes: one of `owner`'s attempts,
 * or one of its staged copies (".NAME.tmp") whose batch is not in `keep`
 * (in either compression: a staged copy is kept whatever the config says
 * now). */
static bool litter(const char *name, const char *owner, const char *const *keep, size_t n_keep)
{
	if (!owned(name, owner))
		return false;
	if (is_attempt(name))
		return true;
	size_t len = strlen(name);
	if (len < 5 || strcmp(name + len - 4, ".tmp") != 0)
		return false;
	for (size_t i = 0; i < n_keep; i++) {
		char plain[300], packed[300];
		snprintf(plain, sizeof(plain), ".%s.tmp", keep[i]);
		snprintf(packed, sizeof(packed), ".%s.gz.tmp", keep[i]);
		if (strcmp(name, plain) == 0 || strcmp(name, packed) == 0)
			return false;
	}
	return true;
}

static enum sink_result webhdfs_sweep(void *ctx, const char *owner, const char *const *keep,
                                      size_t n_keep, char *msg, size_t msg_len)
{
	struct webhdfs_sink *w = ctx;
	struct curl_response r;
	char what[1300];
	if (!namenode_call(w, "GET", w->staging, "LISTSTATUS", NULL, &r, what, sizeof(what), msg,
	                   msg_len))
		return SINK_ERROR;
	if (not_found(&r)) {
		curl_response_free(&r);
		return SINK_OK; /* nothing was ever staged */
	}
	enum sink_result res = answer(&r, what, msg, msg_len);
	if (res != SINK_OK) {
		curl_response_free(&r);
		return res;
	}
	json_t *doc = r.body.len < LIST_MAX ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
	curl_response_free(&r);
	json_t *list = json_object_get(json_object_get(doc, "FileStatuses"), "FileStatus");
	if (!json_is_array(list)) {
		snprintf(msg, msg_len, "%s: not a FileStatuses answer (or over %u MiB)", what,
		         LIST_MAX >> 20);
		json_decref(doc);
		return SINK_RETRY;
	}
	size_t i, removed = 0;
	json_t *entry;
	json_array_foreach(list, i, entry)
	{
		const char *name = json_string_value(json_object_get(entry, "pathSuffix"));
		if (!name || !litter(name, owner, keep, n_keep))
			continue;
		char file[2400];
		join(file, sizeof(file), w->staging, name);
		res = delete_file(w, file, msg, msg_len);
		if (res != SINK_OK)
			break;
		removed++;
	}
	json_decref(doc);
	if (res == SINK_OK && removed)
		snprintf(msg, msg_len,
		         "removed %zu copies left by given-up attempts or parked batches from %s",
		         removed, w->staging);
	return res;
}

static enum sink_result webhdfs_close_period(void *ctx, const char *partition, char *msg,
                                             size_t msg_len)
{
	struct webhdfs_sink *w = ctx;
	char dir[2048], flag[2400];
	join(dir, sizeof(dir), w->path, partition);
	join(flag, sizeof(flag), dir, w->done_flag);
	enum sink_result res = mkdirs(w, dir, msg, msg_len);
	if (res != SINK_OK)
		return res;
	res = create_file(w, flag, "", 0, false, msg, msg_len);
	if (res != SINK_OK && strstr(msg, "FileAlreadyExistsException"))
		return SINK_OK;
	return res;
}

static void webhdfs_cancel(void *ctx)
{
	struct webhdfs_sink *w = ctx;
	curl_client_cancel(&w->client);
}

static void webhdfs_close(void *ctx)
{
	struct webhdfs_sink *w = ctx;
	if (!w)
		return;
	curl_client_cleanup(&w->client);
	buf_free(&w->url);
	buf_free(&w->packed);
	free(w);
}

static const struct sink_option webhdfs_options[] = {
        {.name = "url",
         .kind = SINK_OPT_URL,
         .help = "the NameNode's (or HttpFS's) HTTP address, e.g. http://namenode:9870",
         SINK_BIND(struct webhdfs_sink, configured_url)},
        {.name = "path",
         .kind = SINK_OPT_STRING,
         .help = "the HDFS directory the batches go to",
         .check = check_hdfs_path,
         SINK_BIND(struct webhdfs_sink, configured_path)},
        {.name = "user",
         .kind = SINK_OPT_STRING,
         .default_value = "",
         .help = "user.name to act as (default: the daemon's user)",
         SINK_BIND(struct webhdfs_sink, configured_user)},
        {.name = "httpfs",
         .kind = SINK_OPT_BOOL,
         .default_value = "false",
         .help = "the server is HttpFS: send the data with the first PUT (data=true), no "
                 "redirect",
         SINK_BIND(struct webhdfs_sink, httpfs)},
        {.name = "noredirect",
         .kind = SINK_OPT_BOOL,
         .default_value = "false",
         .help = "ask the NameNode for the DataNode's address as JSON (noredirect=true) "
                 "instead of a 307",
         SINK_BIND(struct webhdfs_sink, noredirect)},
        {.name = "compression",
         .kind = SINK_OPT_CHOICE,
         .default_value = "none",
         .help = "gzip writes NAME.gz files",
         .choices = "none|gzip",
         SINK_BIND(struct webhdfs_sink, compression)},
        CURL_CLIENT_OPTIONS(struct webhdfs_sink),
        {0},
};

static int webhdfs_init(const struct sink_config *cfg, void **ctx, char *err, size_t err_len)
{
	struct webhdfs_sink *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	sink_options_bind(cfg, webhdfs_options, w);
	int rc = curl_client_init(&w->client, err, err_len);
	if (rc) {
		free(w);
		return rc;
	}
	buf_init(&w->url, 16384);
	/* deflateBound of a batch: max_bytes and one line over it, and a bit. */
	buf_init(&w->packed, (size_t)cfg->max_bytes * 2 + 96u * 1024 * 1024);
	size_t len = strlen(w->configured_url);
	while (len && w->configured_url[len - 1] == '/')
		len--;
	snprintf(w->base, sizeof(w->base), "%.*s/webhdfs/v1", (int)len, w->configured_url);
	snprintf(w->path, sizeof(w->path), "%s", w->configured_path);
	len = strlen(w->path);
	while (len > 1 && w->path[len - 1] == '/')
		w->path[--len] = '\0';
	/* A directory per sink: two sinks into one path (different
	 * selections) must not sweep each other's copies. */
	if (strcmp(cfg->name, ".") == 0 || strcmp(cfg->name, "..") == 0) {
		snprintf(err, err_len, "HDFS refuses '%s' as the name of its staging directory",
		         cfg->name);
		webhdfs_close(w);
		return -EINVAL;
	}
	char staging_root[1100];
	join(staging_root, sizeof(staging_root), w->path, STAGING_DIR);
	join(w->staging, sizeof(w->staging), staging_root, cfg->name);
	w->client.body_max = LIST_MAX;
	if (getrandom(&w->token_seed, sizeof(w->token_seed), 0) != (ssize_t)sizeof(w->token_seed))
		w->token_seed = (uint32_t)getpid() ^ (uint32_t)time(NULL);
	const char *user = w->configured_user;
	if (!*user) {
		struct passwd *pw = getpwuid(geteuid());
		user = pw ? pw->pw_name : "idbmount";
	}
	snprintf(w->user, sizeof(w->user), "%s", user);
	w->done_flag = cfg->done_flag;
	w->gzip = w->compression == COMPRESSION_GZIP;
	*ctx = w;
	return 0;
}

const struct sink_type sink_type_webhdfs = {
        .name = "webhdfs",
        .summary = "files in HDFS through WebHDFS or HttpFS",
        .options = webhdfs_options,
        .files = true,
        .check_file_option = webhdfs_check_file_option,
        .init = webhdfs_init,
        .stage = webhdfs_stage,
        .deliver = webhdfs_deliver,
        .recover = webhdfs_recover,
        .close_period = webhdfs_close_period,
        .sweep = webhdfs_sweep,
        .cancel = webhdfs_cancel,
        .close = webhdfs_close,
};
