/* webhdfs.c - the webhdfs sink: batches as files in HDFS, through WebHDFS
 * (the NameNode's REST API) or HttpFS (libcurl).
 *
 * stage    MKDIRS of the batch's directory (once per directory), then
 *          CREATE of ".NAME.tmp" there with overwrite=true (a partial
 *          copy of an earlier attempt is replaced). WebHDFS answers the
 *          first PUT with 307 and the DataNode's address; we follow it
 *          ourselves and PUT the data there, Content-Type
 *          application/octet-stream. With noredirect=true the NameNode
 *          answers 200 {"Location": ...} instead. HttpFS (httpfs = true)
 *          takes the data in the first PUT with data=true. `overwrite` is
 *          always sent, as WebHDFS defaults it to false, HttpFS to true.
 * deliver  RENAME to NAME. HDFS answers 200 {"boolean":false} when it did
 *          not rename (target exists, source or target parent missing):
 *          that is a failure, never a success. A false after a lost answer
 *          to an earlier RENAME is found out by GETFILESTATUS: the target
 *          there and the temp gone means it was done.
 * recover  GETFILESTATUS of the final name (there: delivered) and, for a
 *          staged intent, of the temp name (there: rename it).
 * close_period  CREATE of the empty done flag with overwrite=false; an
 *          existing flag (FileAlreadyExistsException) is fine.
 *
 * Temp names start with '.', which Hive, MapReduce and Spark skip, like
 * '_'. Errors: all RETRY. Nothing in a batch's bytes can make HDFS refuse
 * it; a refusal (permissions, safe mode, quota, a wrong user) is fixed by a
 * person while the backlog waits in order. RemoteException answers are
 * shown as "HTTP 403 AccessControlException: message".
 * user.name is sent for simple authentication (Kerberos/SPNEGO is not
 * supported). `compression = gzip` writes NAME.gz (a gzip member with no
 * name and time 0, so a redo writes the same bytes); Hive, Spark and
 * `hdfs dfs -text` read it by the suffix.
 */
#include "curl_client.h"

#include "idbmount/config.h"
#include "idbmount/sink.h"

#include <errno.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

struct webhdfs_sink {
	struct curl_client client;
	char base[1024]; /* the URL up to and including /webhdfs/v1 */
	char path[1024]; /* the HDFS directory */
	char user[256];
	char done_flag[256];
	bool httpfs;
	bool noredirect;
	bool gzip;
	char last_dir[2048]; /* made by MKDIRS already */
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

enum file_status {
	FILE_MISSING,
	FILE_EXISTS,
	FILE_UNKNOWN,
};

/* The message of a RemoteException body, or the classify message. */
static enum sink_result answer(const struct curl_response *r, const char *what, char *msg,
                               size_t msg_len)
{
	enum sink_result res = curl_client_classify(r, what, msg, msg_len);
	if (res == SINK_OK)
		return SINK_OK;
	if (r->code == CURLE_OK && r->body.len) {
		json_t *doc = json_loadb(r->body.data, r->body.len, 0, NULL);
		json_t *ex = json_object_get(doc, "RemoteException");
		if (ex)
			snprintf(msg, msg_len, "%s: HTTP %ld %s: %s", what, r->status,
			         json_string_value(json_object_get(ex, "exception"))
			                 ? json_string_value(json_object_get(ex, "exception"))
			                 : "RemoteException",
			         json_string_value(json_object_get(ex, "message"))
			                 ? json_string_value(json_object_get(ex, "message"))
			                 : "");
		json_decref(doc);
	}
	return SINK_RETRY;
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

static void batch_dir(const struct webhdfs_sink *w, const struct sink_batch *b, char *out,
                      size_t outlen)
{
	snprintf(out, outlen, "%s%s%s", w->path, b->partition[0] ? "/" : "", b->partition);
}

static enum sink_result mkdirs(struct webhdfs_sink *w, const char *dir, char *msg, size_t msg_len)
{
	if (strcmp(w->last_dir, dir) == 0)
		return SINK_OK;
	struct curl_response r;
	char what[1200];
	if (!namenode_call(w, "PUT", dir, "MKDIRS", NULL, &r, what, sizeof(what), msg, msg_len))
		return SINK_ERROR;
	enum sink_result res = answer(&r, what, msg, msg_len);
	if (res == SINK_OK && !strstr(r.body.data ? r.body.data : "", "true")) {
		snprintf(msg, msg_len, "%s: answered %s", what, r.body.data ? r.body.data : "");
		res = SINK_RETRY;
	}
	curl_response_free(&r);
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
		if (res == SINK_OK)
			snprintf(msg, msg_len, "%s: HTTP %ld without a DataNode location", what,
			         r.status);
		curl_response_free(&r);
		curl_slist_free_all(octet);
		return SINK_RETRY;
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

static enum file_status file_status(struct webhdfs_sink *w, const char *file, char *msg,
                                    size_t msg_len)
{
	struct curl_response r;
	char what[1200];
	if (!namenode_call(w, "GET", file, "GETFILESTATUS", NULL, &r, what, sizeof(what), msg,
	                   msg_len))
		return FILE_UNKNOWN;
	enum file_status st = FILE_UNKNOWN;
	if (r.code == CURLE_OK && r.status == 200)
		st = FILE_EXISTS;
	else if (r.code == CURLE_OK && r.status == 404)
		st = FILE_MISSING;
	else
		answer(&r, what, msg, msg_len);
	curl_response_free(&r);
	return st;
}

static void batch_files(const struct webhdfs_sink *w, const struct sink_batch *b, char *tmp,
                        char *final, size_t len)
{
	char dir[2048];
	batch_dir(w, b, dir, sizeof(dir));
	const char *ext = w->gzip ? ".gz" : "";
	snprintf(tmp, len, "%s/.%s%s.tmp", dir, b->name, ext);
	snprintf(final, len, "%s/%s%s", dir, b->name, ext);
}

static enum sink_result webhdfs_stage(void *ctx, const struct sink_batch *b, char *msg,
                                      size_t msg_len)
{
	struct webhdfs_sink *w = ctx;
	if (!b->data || b->len == 0) {
		snprintf(msg, msg_len, "refusing to write an empty batch %s", b->name);
		return SINK_ERROR;
	}
	char dir[2048], tmp[2400], final[2400];
	batch_dir(w, b, dir, sizeof(dir));
	batch_files(w, b, tmp, final, sizeof(tmp));
	enum sink_result res = mkdirs(w, dir, msg, msg_len);
	if (res != SINK_OK)
		return res;
	if (w->gzip) {
		int rc = pack(w, b->data, b->len);
		if (rc) {
			snprintf(msg, msg_len, "compressing %s: %s", b->name, strerror(-rc));
			return SINK_ERROR;
		}
		return create_file(w, tmp, w->packed.data, w->packed.len, true, msg, msg_len);
	}
	return create_file(w, tmp, b->data, b->len, true, msg, msg_len);
}

static enum sink_result webhdfs_deliver(void *ctx, const struct sink_batch *b, char *msg,
                                        size_t msg_len)
{
	struct webhdfs_sink *w = ctx;
	char tmp[2400], final[2400];
	batch_files(w, b, tmp, final, sizeof(tmp));
	struct buf dest;
	buf_init(&dest, 8192);
	buf_append_str(&dest, "&destination=");
	curl_client_escape(&dest, final, false);
	struct curl_response r;
	char what[2500];
	bool asked = namenode_call(w, "PUT", tmp, "RENAME", dest.data, &r, what, sizeof(what), msg,
	                           msg_len);
	buf_free(&dest);
	if (!asked)
		return SINK_ERROR;
	enum sink_result res = answer(&r, what, msg, msg_len);
	bool renamed = false;
	if (res == SINK_OK) {
		json_t *doc = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, NULL);
		renamed = json_is_true(json_object_get(doc, "boolean"));
		json_decref(doc);
	}
	curl_response_free(&r);
	if (res != SINK_OK || renamed)
		return res;
	/* false: find out why. */
	char why[512] = "";
	enum file_status have_final = file_status(w, final, why, sizeof(why));
	enum file_status have_tmp = file_status(w, tmp, why, sizeof(why));
	if (have_final == FILE_EXISTS && have_tmp == FILE_MISSING)
		return SINK_OK; /* an earlier RENAME did it; its answer was lost */
	if (have_final == FILE_MISSING && have_tmp == FILE_MISSING && b->data) {
		/* The staged copy is gone (removed by hand): write it again. */
		res = webhdfs_stage(ctx, b, msg, msg_len);
		if (res != SINK_OK)
			return res;
		snprintf(msg, msg_len, "%s: the temp file was missing; wrote it again", what);
		return SINK_RETRY;
	}
	snprintf(msg, msg_len, "%s to %s: HDFS answered {\"boolean\":false}%s%s%s", what, final,
	         have_final == FILE_EXISTS ? " (the target exists)" : "", why[0] ? "; " : "", why);
	return SINK_RETRY;
}

static enum sink_result webhdfs_recover(void *ctx, const struct sink_batch *b, bool staged,
                                        enum sink_recovery *found, char *msg, size_t msg_len)
{
	struct webhdfs_sink *w = ctx;
	char tmp[2400], final[2400];
	batch_files(w, b, tmp, final, sizeof(tmp));
	enum file_status st = file_status(w, final, msg, msg_len);
	if (st == FILE_UNKNOWN)
		return SINK_RETRY;
	if (st == FILE_EXISTS) {
		*found = SINK_RECOVER_DELIVERED;
		return SINK_OK;
	}
	if (!staged) {
		*found = SINK_RECOVER_REDO;
		return SINK_OK;
	}
	st = file_status(w, tmp, msg, msg_len);
	if (st == FILE_UNKNOWN)
		return SINK_RETRY;
	/* Staged and neither name there: the copy was lost, write it again
	 * (only a person removes files under a hidden name). */
	*found = st == FILE_EXISTS ? SINK_RECOVER_STAGED : SINK_RECOVER_REDO;
	return SINK_OK;
}

static enum sink_result webhdfs_close_period(void *ctx, const char *partition, char *msg,
                                             size_t msg_len)
{
	struct webhdfs_sink *w = ctx;
	char dir[2048], flag[2400];
	snprintf(dir, sizeof(dir), "%s/%s", w->path, partition);
	snprintf(flag, sizeof(flag), "%s/%s", dir, w->done_flag);
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

static int webhdfs_init(const struct sink_config *cfg, void **ctx, char *err, size_t err_len)
{
	struct webhdfs_sink *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	int rc = curl_client_init(&w->client, cfg, err, err_len);
	if (rc) {
		free(w);
		return rc;
	}
	buf_init(&w->url, 16384);
	/* deflateBound of a batch: max_bytes and one line over it, and a bit. */
	buf_init(&w->packed, (size_t)cfg->max_bytes * 2 + 96u * 1024 * 1024);
	const char *url = sink_config_string(cfg, "url");
	size_t len = strlen(url);
	while (len && url[len - 1] == '/')
		len--;
	snprintf(w->base, sizeof(w->base), "%.*s/webhdfs/v1", (int)len, url);
	snprintf(w->path, sizeof(w->path), "%s", sink_config_string(cfg, "path"));
	len = strlen(w->path);
	while (len > 1 && w->path[len - 1] == '/')
		w->path[--len] = '\0';
	const char *user = sink_config_string(cfg, "user");
	if (!*user) {
		struct passwd *pw = getpwuid(geteuid());
		user = pw ? pw->pw_name : "idbmount";
	}
	snprintf(w->user, sizeof(w->user), "%s", user);
	snprintf(w->done_flag, sizeof(w->done_flag), "%s", cfg->done_flag);
	w->httpfs = sink_config_bool(cfg, "httpfs");
	w->noredirect = sink_config_bool(cfg, "noredirect");
	w->gzip = strcmp(sink_config_string(cfg, "compression"), "gzip") == 0;
	*ctx = w;
	return 0;
}

static bool check_hdfs_path(const char *value, char *why, size_t why_len)
{
	if (value[0] != '/') {
		snprintf(why, why_len, "'%s' is not an absolute HDFS path", value);
		return false;
	}
	return true;
}

static const struct sink_option webhdfs_options[] = {
        {"url", SINK_OPT_URL, NULL,
         "the NameNode's (or HttpFS's) HTTP address, e.g. http://namenode:9870", NULL, false, NULL},
        {"path", SINK_OPT_STRING, NULL, "the HDFS directory the batches go to", NULL, false,
         check_hdfs_path},
        {"user", SINK_OPT_STRING, "", "user.name to act as (default: the daemon's user)", NULL,
         false, NULL},
        {"httpfs", SINK_OPT_BOOL, "false",
         "the server is HttpFS: send the data with the first PUT (data=true), no redirect", NULL,
         false, NULL},
        {"noredirect", SINK_OPT_BOOL, "false",
         "ask the NameNode for the DataNode's address as JSON (noredirect=true) instead of a "
         "307",
         NULL, false, NULL},
        {"compression", SINK_OPT_CHOICE, "none", "gzip writes NAME.gz files", "none|gzip", false,
         NULL},
        CURL_CLIENT_OPTIONS,
        {NULL, 0, NULL, NULL, NULL, false, NULL},
};

const struct sink_type sink_type_webhdfs = {
        .name = "webhdfs",
        .summary = "files in HDFS through WebHDFS or HttpFS",
        .options = webhdfs_options,
        .files = true,
        .init = webhdfs_init,
        .stage = webhdfs_stage,
        .deliver = webhdfs_deliver,
        .recover = webhdfs_recover,
        .close_period = webhdfs_close_period,
        .cancel = webhdfs_cancel,
        .close = webhdfs_close,
};
