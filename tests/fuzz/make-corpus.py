#!/usr/bin/env python3
"""make-corpus.py - writes the seed corpus of every fuzz target into
tests/fuzz/corpus/<target>/, one small file per seed, named for what it
holds. The files are kept in the repository; run this again after editing
a list (it rewrites the seeds it makes and leaves other files alone).

Seeds are meaningful inputs: the forms each reader takes, the edges the
unit tests name, and the inputs of the problems fuzzing found, so that
every run starts from them.

    /usr/bin/python3 tests/fuzz/make-corpus.py
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def padded(text, fits):
    """`text` with trailing spaces until fits(its length): some targets
    pick a keyPath, a store or a record cap by the input's length."""
    data = text.encode() if isinstance(text, str) else text
    while not fits(len(data)):
        data += b" "
    return data


# ---- key: stems, key texts, pairs, doubles ------------------------------
KEY = {
    "stem-int": "42", "stem-real": "-1.5", "stem-exp": "1e+21", "stem-zero": "0",
    "stem-string": "alice", "stem-slash": "a%2Fb", "stem-numeric-string": "%342",
    "stem-dot": "%2Ex", "stem-empty": "~s", "stem-inf": "Infinity", "stem-neginf": "-Infinity",
    "stem-date": "~d1970-01-01T00:00:00.000Z", "stem-date-extended": "~d+275760-09-13T00:00:00.000Z",
    "stem-binary": "~bAAEC", "stem-array": '~a["u1",7]', "stem-array-nested": "~a[[],[1,%22x%22]]",
    "stem-hashed": "~h" + "0123456789abcdef" * 4, "stem-noncanonical-escape": "%61",
    "stem-noncanonical-number": "042", "stem-noncanonical-array": "~a[1.0]",
    "stem-utf8": "caf\u00e9 \U0001F600", "stem-percent": "100%25",
    "text-int": "5", "text-string": '"alice"', "text-date": '{"~d":"2026-01-02T03:04:05.000Z"}',
    "text-binary": '{"~b":"AAEC"}', "text-array": '["u1",7,{"~b":"AA"}]',
    "text-inf": '{"~n":"-Infinity"}', "text-nested": "[[[]]]", "text-long": '"' + "x" * 300 + '"',
    "text-big": "1e19", "text-negzero": "-0", "text-tenth": "0.1", "text-min": "5e-324",
    "text-max": "1.7976931348623157e308", "text-escapes": '"a/b\\u0000%~."',
    "pair-same-number": "1\n1.0", "pair-strings": '"a"\n"b"',
    "pair-same-string": '"\u00e9"\n"\\u00e9"', "pair-arrays": '["a",1]\n["a",1.0]',
    "pair-long": '"' + "y" * 260 + '"\n"' + "y" * 259 + 'z"',
}
for name, text in KEY.items():
    write("key", name, text)
for name, x in {"double-tenth": 0.1, "double-1e21": 1e21, "double-min": 5e-324,
                "double-2p53": 2.0 ** 53 + 2, "double-third": 1 / 3, "double-neg": -123.456}.items():
    write("key", name, struct.pack("<d", x))

# ---- json_text: any text, against jansson --------------------------------
JSON_TEXT = {
    "empty-object": "{}", "empty-array": " [ ] ", "zero": "0", "negzero": "-0",
    "int18": "-123456789012345678", "int19": "1234567890123456789",
    "int-past-64-bits": "[18446744073709552000, -12345678901234567890]",
    "decimal": "1.50", "tenth": "0.1", "exp": "1E+2", "tiny": "2e-7", "huge": "1e400",
    "literals": "[true, false, null]",
    "escapes": '"a/b\\/c \\u00e9\\u20ac\\ud83d\\ude00 \\u0000\\u001f\\b\\f\\n\\r\\t \\"\\\\"',
    "raw-utf8": '"caf\u00e9 \u20ac \U0001F600 \x7f"', "bad-utf8": b'"\xc3"',
    "overlong": b'"\xc0\xaf"', "surrogate-alone": '"\\ud800"',
    "nested": '{"a":1,"b":[1,2,{"c":null}],"d":{}}',
    "spacing": '\t{\r\n "x" :\t[ true , false ]\n}\n',
    "key-path": '{"id": 7, "a": {"b": [1, "x"], "id": "inner"}, "z": true}',
    "name-escaped": '{"\\u0041":1,"B":2,"\\u00e9":3,"k0":{"k1":4}}',
    "name-twice": '{"a":1,"a":2}', "name-twice-escaped": '{"a":1,"\\u0061":2}',
    "name-nul": '{"a\\u0000":1}', "trailing-comma": "[1,]", "missing-colon": '{"a" 1}',
    "deep": "[" * 150 + "]" * 150, "too-deep": "[" * 250 + "]" * 250,
    "trailing-text": "[] x", "leading-zero": "01", "bare-string": '"abc',
}
for name, text in JSON_TEXT.items():
    write("json_text", name, text)


def mutation(mid, key=None, value=None, op="put", base=None, db="shop", store="orders", extra=""):
    parts = ['"id":"%s"' % mid, '"db":"%s"' % db, '"store":"%s"' % store, '"op":"%s"' % op]
    if key is not None:
        parts.append('"key":%s' % key)
    if value is not None:
        parts.append('"value":%s' % value)
    if base is not None:
        parts.append('"base":%s' % base)
    return "{" + ",".join(parts) + extra + "}"


# ---- push_body ----------------------------------------------------------
PUSH = {
    "one-put": '{"mutations":[%s]}' % mutation("m1", "1", '{"item":"tea"}', base="null"),
    "put-and-delete": '{"client":"alice","mutations":[%s,%s]}' % (
        mutation("m1", '"k"', '{"a":[1,2.5,"x"]}'), mutation("m2", '"k"', op="delete", base="3")),
    "empty": '{"mutations":[]}', "no-mutations": '{"client":"alice"}',
    "mutations-not-array": '{"mutations":{"a":1}}', "not-object": "[1,2]",
    "mutations-twice": '{"mutations":[1],"mutations":[%s]}' % mutation("m3", "2", "3"),
    "array-then-scalar": '{"mutations":[1],"mutations":5}',
    "bad-array-then-good": '{"mutations":[.1],"mutations":[%s]}' % mutation("m3", "2", "3"),
    "escaped-name": '{"mut\\u0061tions":[%s],"d\\u00e9":1}' % mutation("m4", "4", "{}"),
    "name-holding-nul": '{"mutations\\u0000":[%s]}' % mutation("m5", "5", "{}"),
    "client-holding-nul": '{"mutations":[],"client\\u0000x":"bob"}',
    "bad-mutation-text": '{"mutations":[{"id":tru}]}',
    "brackets-crossed": '{"mutations":[{"a":[1}]}]}',
    "int-past-64-bits": '{"mutations":[%s]}' % mutation("m6", "6", '{"v":18446744073709552000}'),
    "spacing": ' \n{ "mutations" : [ %s ] , "x" : null }\n' % mutation("m7", '"s"', "[ ]"),
    "trailing-text": '{"mutations":[]} x',
    "many": '{"mutations":[%s]}' % ",".join(mutation("n%d" % i, str(i), '{"i":%d}' % i)
                                            for i in range(18)),
    "value-escapes": '{"mutations":[%s]}' % mutation("m8", '"\u00e9"', '"a\"b\\c\u0000"'),
    "string-brackets": '{"mutations":[%s]}' % mutation("m9", '"]}"', '"[{\\"'),
    "deep-value": '{"mutations":[%s]}' % mutation("m10", "1", "[" * 40 + "]" * 40),
    "bad-utf8-name": b'{"\xc3":1,"mutations":[]}',
    "nul-byte-outside": b'{"mutations":[]\x00}',
    "name-not-string": '{1:2,"mutations":[]}',
    "base-real": '{"mutations":[%s]}' % mutation("m11", "1", "1", base="2.0"),
}
for name, text in PUSH.items():
    write("push_body", name, text)

# ---- mutation: keyPath picked by length % 5 (null, "id", "a.b", "", [a,b]),
# cap by length % 3 (0: 64 bytes) --------------------------------------------
KEYPATHS = {"null": 0, "id": 1, "ab": 2, "empty": 3, "pair": 4}
MUTATION = [
    ("put-null", mutation("m1", "1", '{"item":"tea","n":1.50}', base="null"), "null"),
    ("put-id-inline", mutation("m2", "7", '{"id":7,"name":"seven"}'), "id"),
    ("put-id-added", mutation("m3", '"k"', '{"name":"no id"}'), "id"),
    ("put-id-disagrees", mutation("m4", "8", '{"id":9}'), "id"),
    ("put-id-real", mutation("m5", "7", '{"id":7.0}'), "id"),
    ("put-deep", mutation("m6", '"x"', '{"a":{"b":"x"},"c":[1]}'), "ab"),
    ("put-pair", mutation("m7", '["u",1]', '{"a":"u","b":1}'), "pair"),
    ("put-date-key", mutation("m8", '{"~d":"2026-01-02T03:04:05.000Z"}', '[1,2,3]'), "null"),
    ("put-binary-key", mutation("m9", '{"~b":"AAEC"}', '"v"'), "id"),
    ("put-array-key", mutation("m10", '["a",["b",2]]', "null"), "null"),
    ("put-bad-key", mutation("m11", "true", "{}"), "null"),
    ("put-key-past-64-bits", mutation("m12", "10000000000000000000", "{}"), "id"),
    ("put-value-past-64-bits", mutation("m13", "1", '{"v":-12345678901234567890}'), "null"),
    ("value-twice", mutation("m14", "1", "1", extra=',"value":2'), "null"),
    ("value-escaped-name", '{"id":"m15","db":"d","store":"s","op":"put","key":1,"v\\u0061lue":{"x":1}}',
     "null"),
    ("value-bad-text", mutation("m16", "1", "[1,]"), "null"),
    ("value-dup-names", mutation("m17", "3", '{"id":3,"a":1,"a":2}'), "id"),
    ("value-large", mutation("m18", "1", '{"pad":"%s"}' % ("p" * 120)), "null"),
    ("delete", mutation("m19", '"k"', op="delete", base="2"), "null"),
    ("name-holding-nul", '{"id":"m20","d\\u0000b":"shop","op":"put","key":1,"value":1}', "null"),
]
for name, text, keypath in MUTATION:
    small_cap = name == "value-large"
    write("mutation", name, padded(text, lambda n, k=KEYPATHS[keypath], c=small_cap:
                                   n % 5 == k and (n % 3 == 0) == c))

# ---- config --------------------------------------------------------------
DIR = "[sink spool]\ntype = dir\npath = /var/spool/idbmount\n"
CONFIG = {
    "empty": "", "comments": "; nothing\n# at all\n\n",
    "dir": DIR + "select = alice/shop/orders, bob\nmax_records = 500\nmax_bytes = 4M\n"
           "max_age = 2s\nretry_initial = 100ms\nretry_max = 1m\nmax_line = 0\nprefix = feed-1\n"
           "partition = ${YEAR}/${MONTH}/${DAY}/${HOUR}\ndone_flag = _SUCCESS\n"
           "flag_empty_periods = no\ncompleted_suffix = .COMPLETED\nacknowledge = rename\n",
    "http": "[sink web]\ntype = http\nurl = http://127.0.0.1:9/x?a=1;b=2\nformat = jsonl\n"
            "header = X-Tenant: shop; eu\nheader = X-Other: 1\n",
    "webhdfs": "[sink hdfs]\ntype = webhdfs\nurl = http://nn:9870\npath = /data/idb\nuser = etl\n",
    "two-sinks": DIR + "\n[sink web]\ntype = http\nurl = https://x.example/\n",
    "bom-crlf": "\ufeff[sink s]\r\ntype = dir\r\npath = /tmp/x\r\n",
    "type-last": "[sink s]\npath = /tmp/x\nselect = *\ntype = dir\n",
    "unknown-key": DIR + "colour = blue\n", "set-twice": DIR + "max_age = 1s\nmax_age = 2s\n",
    "outside-section": "x = 1\n" + DIR, "unknown-section": "[sinks s]\ntype = dir\n",
    "bad-name": "[sink bad/name]\ntype = dir\npath = /tmp/x\n",
    "defined-twice": DIR + DIR, "no-type": "[sink s]\npath = /tmp/x\n",
    "bad-values": DIR + "max_records = ten\nmax_bytes = 12X\nmax_age = 5\nprefix = .hidden\n",
    "bad-partition": DIR + "partition = ${YEAR}/${WEEK}\n", "not-a-line": DIR + "no equals sign\n",
    "retry-above": DIR + "retry_initial = 2m\nretry_max = 1m\n",
    "done-flag-alone": DIR + "done_flag = _SUCCESS\n",
    "form-feed-header": DIR + "\f[sink b]\nselect = bob\n",
    "vtab-header": DIR + " \v[sink b]\ntype = dir\npath = /tmp/b\n",
    "nul-in-line": (DIR + "select = x\0" + "y" * 250 + "\ntype = http\n"),
    "long-name": "[sink " + "n" * 60 + "]\ntype = dir\npath = /x\n",
    "spaces-in-header": "[sink   s  ]\ntype = dir\npath = /x\n",
}
for name, text in CONFIG.items():
    write("config", name, text)

# ---- import_line: store picked by length % 4 (plain, people "id", deep
# "a.b", pair ["a","b"]) ------------------------------------------------------
STORES = {"plain": 0, "people": 1, "deep": 2, "pair": 3}
IMPORT = [
    ("put", '{"key":5,"value":{"item":"tea","qty":2}}', "plain"),
    ("put-op", '{"key":"k","op":"put","value":[1,"x"]}', "plain"),
    ("delete", '{"key":"k","op":"delete"}', "plain"),
    ("delete-with-value", '{"key":1,"op":"delete","value":1}', "plain"),
    ("bad-op", '{"key":1,"op":"move","value":1}', "plain"),
    ("change-line", '{"seq":345,"ts":"2026-11-23T10:00:00.123Z","node":"host1","client":"alice",'
     '"db":"shop","store":"orders","key":5,"op":"put","rev":12,"origin":"browser",'
     '"value":{"a":1}}', "plain"),
    ("change-line-delete", '{"seq":3,"ts":"2026-11-23T10:00:00.123Z","node":"h","client":"a",'
     '"db":"d","store":"s","key":{"~d":"2026-01-02T03:04:05.000Z"},"op":"delete","rev":2,'
     '"origin":"fs"}', "plain"),
    ("foreign-member", '{"key":1,"value":2,"note":3}', "plain"),
    ("key-alone", '{"key":1}', "plain"),
    ("record-out-of-line", '{"id":7,"name":"x"}', "plain"),
    ("record", '{"id":7,"name":"seven"}', "people"),
    ("record-no-key", '{"name":"none"}', "people"),
    ("record-bad-key", '{"id":true}', "people"),
    ("record-deep", '{"a":{"b":"k"},"c":1}', "deep"),
    ("record-pair", '{"a":"u","b":[1,2]}', "pair"),
    ("record-looks-like-wrapper", '{"key":1,"value":2}', "people"),
    ("bom", b'\xef\xbb\xbf{"key":1,"value":1}', "plain"),
    ("blank", " \t\r", "plain"),
    ("invalid", '{"key":1,"value":}', "plain"),
    ("value-past-64-bits", '{"key":5,"value":{"n":88888888888801361753.75}}', "plain"),
    ("key-past-64-bits", '{"key":10000000000000000000,"value":1}', "plain"),
    ("value-holding-nul", '{"key":"n","value":"a\\u0000b"}', "plain"),
]
for name, text, store in IMPORT:
    write("import_line", name, padded(text, lambda n, k=STORES[store]: n % 4 == k))

# ---- partition: 8 bytes of ms, 1 byte of output size, the template --------


def partition_seed(ms, cut, template):
    year0 = -62167219200000
    span = 253402300800000 - year0
    return struct.pack("<Q", (ms - year0) % span) + bytes([cut]) + template.encode()


PARTITION = {
    "hour": (1795428307042, 40, "${YEAR}/${MONTH}/${DAY}/${HOUR}"),
    "second": (1795428307999, 63, "${YEAR}/${MONTH}/${DAY}/${HOUR}/${MINUTE}/${SECOND}"),
    "names": (1798761599999, 10, "y=${YEAR}/m=${MONTH}/feed"),
    "month-alone": (1835438400000, 5, "${MONTH}"),
    "day-first": (951782400000, 20, "${DAY}/${YEAR}"),
    "before-1970": (-1, 30, "${YEAR}/${MONTH}/${DAY}/${HOUR}/${MINUTE}/${SECOND}"),
    "year-31": (-61167218400001, 32, "${YEAR}/${MONTH}/${DAY}/${HOUR}"),
    "unknown-variable": (0, 20, "${WEEK}/${YEAR"), "no-variable": (0, 20, "fixed/dir"),
    "absolute": (0, 20, "/${YEAR}"), "empty": (0, 1, ""), "dollars": (0, 9, "$${YEAR}}$"),
    "leap-day": (951782400000, 64, "${YEAR}-${MONTH}-${DAY}"),
    "year-end": (1798761599999, 64, "${YEAR}/${MONTH}/${DAY}/${HOUR}/${MINUTE}"),
    "year-0": (-62167219200000, 64, "${YEAR}/${MONTH}"),
    "year-9999": (253402300799999, 64, "${YEAR}/${SECOND}"),
    "minute": (1795428300000, 3, "t=${HOUR}${MINUTE}"),
    "hidden-part": (0, 64, "${YEAR}/.tmp/_x"),
    "backslash": (0, 64, "${YEAR}\\x"),
    "all-twice": (1234567890123, 64, "${SECOND}${SECOND}/${YEAR}${YEAR}"),
    "epoch": (0, 64, "${YEAR}/${MONTH}/${DAY}/${HOUR}/${MINUTE}/${SECOND}"),
    "cut-in-variable": (1795428307042, 3, "${YEAR}/${MONTH}"),
    "utf8": (1795428307042, 64, "r\u00e9gion=${DAY}"),
    "control": (1795428307042, 64, "a\tb/${HOUR}"),
}
for name, (ms, cut, template) in PARTITION.items():
    write("partition", name, partition_seed(ms, cut, template))

# ---- http: "@TOKEN@", "@PIPE@" and "@PORT@" are filled in by the target --


def request(line, headers, body=b""):
    head = line + "\r\n" + "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
    return head.encode() + (body if isinstance(body, bytes) else body.encode())


LOCAL = ("Host", "127.0.0.1:@PORT@")
AUTH = ("Authorization", "Bearer @TOKEN@")
PUT = '{"mutations":[%s]}' % mutation("h1", value='{"item":"tea"}')
SCHEMA = '{"db":"shop","version":2,"stores":[{"name":"orders","keyPath":"id","autoIncrement":true}]}'
HTTP = {
    "healthz": request("GET /healthz HTTP/1.1", [LOCAL]),
    "metrics": request("GET /metrics HTTP/1.1", [("Host", "localhost:@PORT@")]),
    "demo-page": request("GET / HTTP/1.1", [("Host", "fuzz.example")]),
    "library-head": request("HEAD /idbmount.js HTTP/1.1", [("Host", "FUZZ.EXAMPLE.:8080")]),
    "types": request("GET /idbmount.d.ts HTTP/1.0", [LOCAL]),
    "pull": request("GET /v1/pull?since=0&limit=10 HTTP/1.1", [LOCAL, AUTH]),
    "pull-own-client": request("GET /v1/pull?client=fuzz HTTP/1.1", [LOCAL, AUTH]),
    "pull-other-client": request("GET /v1/pull?client=bob HTTP/1.1", [LOCAL, AUTH]),
    "pull-repeated": request("GET /v1/pull?since=0&since=5 HTTP/1.1", [LOCAL, AUTH]),
    "pull-nul": request("GET /v1/pull?client=fuzz%00x HTTP/1.1", [LOCAL, AUTH]),
    "pull-no-token": request("GET /v1/pull HTTP/1.1", [LOCAL]),
    "pull-basic": request("GET /v1/pull HTTP/1.1", [LOCAL, ("Authorization", "Basic @TOKEN@")]),
    "push": request("POST /v1/push HTTP/1.1", [LOCAL, AUTH, ("Content-Type", "application/json"),
                                               ("Content-Length", str(len(PUT)))], PUT),
    "push-chunked": request("POST /v1/push HTTP/1.1", [LOCAL, AUTH, ("Transfer-Encoding", "chunked")],
                            "%x\r\n%s\r\n0\r\n\r\n" % (len(PUT), PUT)),
    "push-malformed": request("POST /v1/push HTTP/1.1", [LOCAL, AUTH, ("Content-Length", "15")],
                              '{"mutations": ['),
    "push-too-large": request("POST /v1/push HTTP/1.1", [LOCAL, AUTH, ("Content-Length", "99999999")]),
    "push-expect": request("POST /v1/push HTTP/1.1", [LOCAL, AUTH, ("Expect", "100-continue"),
                                                      ("Content-Length", str(len(PUT)))], PUT),
    "push-pipeline-token": request("POST /v1/push HTTP/1.1",
                                   [LOCAL, ("Authorization", "Bearer @PIPE@"),
                                    ("Content-Length", "2")], "{}"),
    "schema": request("POST /v1/schema HTTP/1.1", [LOCAL, AUTH, ("Content-Length", str(len(SCHEMA)))],
                      SCHEMA),
    "events": request("GET /v1/events?since=0&access_token=@TOKEN@ HTTP/1.1",
                      [LOCAL, ("Last-Event-ID", "3")]),
    "changes": request("GET /v1/changes?since=0&limit=5 HTTP/1.1",
                       [LOCAL, ("Authorization", "Bearer @PIPE@")]),
    "changes-client-token": request("GET /v1/changes HTTP/1.1", [LOCAL, AUTH]),
    "preflight": request("OPTIONS /v1/push HTTP/1.1", [LOCAL, ("Origin", "https://app.example"),
                                                       ("Access-Control-Request-Method", "POST")]),
    "origin-refused": request("GET /healthz HTTP/1.1", [LOCAL, ("Origin", "https://evil.example")]),
    "origin-own": request("GET /healthz HTTP/1.1", [LOCAL, ("Origin", "http://127.0.0.1:@PORT@")]),
    "host-other": request("GET /healthz HTTP/1.1", [("Host", "rebind.example:@PORT@")]),
    "host-none": request("GET /healthz HTTP/1.0", []),
    "host-latin1": b"GET /healthz HTTP/1.1\r\nHost: caf\xe9.example\r\n\r\n",
    "host-v6": request("GET /healthz HTTP/1.1", [("Host", "[::1]:@PORT@")]),
    "body-on-get": request("GET /healthz HTTP/1.1", [LOCAL, ("Content-Length", "3")], "abc"),
    "wrong-method": request("DELETE /v1/push HTTP/1.1", [LOCAL, AUTH]),
    "not-found": request("GET /v2/nothing HTTP/1.1", [LOCAL]),
    "pipelined": request("GET /healthz HTTP/1.1", [LOCAL]) + request("GET /metrics HTTP/1.1", [LOCAL]),
    "garbage": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
}
for name, data in HTTP.items():
    write("http", name, data)
