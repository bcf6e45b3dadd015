"""The config file: every bad input stops the daemon at start with
FILE:LINE and a clear message; good files start it; `sink list` shows the
option tables the file is checked against."""
import os
import subprocess

import pytest

from conftest import IDBMOUNT, IDBMOUNTCTL, is_mounted


def run_daemon(tmp_path, text):
    cfg = tmp_path / "bad.ini"
    cfg.write_text(text)
    (tmp_path / "mnt").mkdir(exist_ok=True)
    p = subprocess.run([IDBMOUNT, "-f", "--data", str(tmp_path / "data"),
                        "--config", str(cfg), str(tmp_path / "mnt")],
                       capture_output=True, text=True, timeout=30)
    assert not is_mounted(str(tmp_path / "mnt"))
    return cfg, p


DIR = "[sink s]\ntype = dir\npath = /tmp/idbmount-test-unused\n"
HDFS = "[sink w]\ntype = webhdfs\nurl = http://127.0.0.1:9\npath = /data/idb\n"

BAD = [
    # (config text, line, words the message must hold)
    ("x = 1\n", 1, "outside any section"),
    ("[sink s]\npath = /tmp/x\n", 1, "has no 'type = '"),
    ("[sink s]\ntype = kafka\n", 2, "'kafka' is not a sink type"),
    ("[sinks s]\ntype = dir\n", 1, "unknown section [sinks s]"),
    ("[sink bad/name]\ntype = dir\npath = /tmp/x\n", 1, "sink name"),
    (DIR + "colour = blue\n", 4, "unknown key 'colour' for type dir"),
    (DIR + "max_records = ten\n", 4, "max_records: 'ten' is not a whole number"),
    (DIR + "max_records = 0\n", 4, "max_records must be at least 1"),
    (DIR + "max_records = -5\n", 4, "max_records: '-5'"),
    (DIR + "max_bytes = 12X\n", 4, "max_bytes: '12X' is not a size"),
    (DIR + "max_bytes = 0\n", 4, "max_bytes: '0' is not a size"),
    (DIR + "max_age = 5\n", 4, "max_age: '5' is not a duration"),
    (DIR + "max_age = 5 s\n", 4, "max_age: '5 s' is not a duration"),
    (DIR + "retry_max = 0s\n", 4, "retry_max: '0s' is not a duration"),
    (DIR + "retry_initial = 2m\nretry_max = 1m\n", 1, "retry_initial (120000 ms) is above retry_max"),
    (DIR + "fsync = maybe\n", 4, "fsync: 'maybe' is not true or false"),
    (DIR + "max_age = 1s\nmax_age = 2s\n", 5, "'max_age' is set twice (first on line 4)"),
    (DIR + "prefix = .hidden\n", 4, "prefix: must not be empty or start with '.' or '_'"),
    (DIR + "prefix = a b\n", 4, "prefix: may hold only"),
    (DIR + "partition = ${YEAR}/${WEEK}\n", 4, "unknown variable at '${WEEK}'"),
    (DIR + "partition = /${YEAR}\n", 4, "relative path"),
    (DIR + "partition = fixed\n", 4, "has no ${...} time variable"),
    (DIR + "partition = ${YEAR}/_tmp\n", 4, "parts starting with '.' or '_'"),
    (DIR + "done_flag = _SUCCESS\n", 1, "done_flag needs a partition"),
    (DIR + "done_flag = a/b\n", 4, "done_flag: must be a plain file name"),
    (DIR + "partition = ${HOUR}\ndone_flag = _SUCCESS\nflag_empty_periods = sometimes\n", 6,
     "flag_empty_periods: 'sometimes' is not true or false"),
    ("[sink h]\ntype = http\nurl = http://x/\nflag_empty_periods = true\n", 4,
     "unknown key 'flag_empty_periods' for type http"),
    (DIR + "select = alice/shop/orders/x\n", 4, "is not a CLIENT[/DB[/STORE]] pattern"),
    (DIR + "select = alice//orders\n", 4, "is not a CLIENT[/DB[/STORE]] pattern"),
    (DIR + "select = ,\n", 4, "no pattern given"),
    (DIR + "[sink s]\ntype = dir\npath = /tmp/y\n", 4, "[sink s] is defined twice (first on line 1)"),
    ("[sink s]\ntype = dir\npath = relative/dir\n", 3, "path: 'relative/dir' is not an absolute path"),
    ("[sink s]\ntype = dir\n", 1, "type dir needs 'path'"),
    ("[sink h]\ntype = http\n", 1, "type http needs 'url'"),
    ("[sink h]\ntype = http\nurl = ftp://x/\n", 3, "url: 'ftp://x/' is not an http:// or https:// URL"),
    ("[sink h]\ntype = http\nurl = http://x/\nformat = xml\n", 4, "format: 'xml' is not one of flume-json|jsonl"),
    ("[sink h]\ntype = http\nurl = http://x/\nheader = no colon\n", 4, "'no colon' is not a 'Name: value' header"),
    ("[sink h]\ntype = http\nurl = http://x/\npartition = ${YEAR}\n", 4, "batches of this type are not files"),
    ("[sink w]\ntype = webhdfs\nurl = http://nn:9870\npath = tmp\n", 4, "is not an absolute HDFS path"),
    ("[sink w]\ntype = webhdfs\nurl = http://nn:9870\n", 1, "type webhdfs needs 'path'"),
    # What HDFS refuses in a name (DFSUtil.isValidName), for webhdfs only.
    (HDFS + "partition = ${HOUR}:${MINUTE}\n", 5,
     "partition: gives names like '00:00': HDFS refuses a name part holding ':' ('00:00')"),
    (HDFS + "partition = ${YEAR}/at:${HOUR}\n", 5,
     "partition: gives names like '1970/at:00': HDFS refuses a name part holding ':' ('at:00')"),
    (HDFS + "partition = ${YEAR}/..\n", 5, "parts starting with '.' or '_'"),
    (HDFS + "partition = ${HOUR}\ndone_flag = _DONE:1\n", 6,
     "done_flag: HDFS refuses a name part holding ':' ('_DONE:1')"),
    ("[sink w]\ntype = webhdfs\nurl = http://nn:9870\npath = /data/a:b\n", 4,
     "path: HDFS refuses a name part holding ':' ('a:b')"),
    ("[sink w]\ntype = webhdfs\nurl = http://nn:9870\npath = /data/../etc\n", 4,
     "path: HDFS refuses '.' and '..' as name parts"),
    ("[sink w]\ntype = webhdfs\nurl = http://nn:9870\npath = /data/./x\n", 4,
     "path: HDFS refuses '.' and '..' as name parts"),
    ("[sink w]\ntype = webhdfs\nurl = http://nn:9870\npath = /data//x\n", 4,
     "path: HDFS refuses an empty name part ('//')"),
    (DIR + "this is not a setting\n", 4, "not a 'name = value' line"),
    (DIR + "timeout = 5s\n", 4, "unknown key 'timeout' for type dir"),
    # A NUL byte would end the line for the parser, and the rest of a long
    # line would be read as a line of its own.
    pytest.param(DIR + "select = x\0" + "y" * 300 + "\n", 4, "holds a NUL byte", id="nul"),
    # A line past the parser's 64 KiB would be read as two, and every
    # header after it counted a line late: entries would land in the
    # section before.
    pytest.param(DIR + ";" + "x" * 70000 + "\n[sink b]\ntype = dir\npath = /tmp/b\n", 4,
                 "is longer than 65535 bytes", id="long-line"),
    # libinih takes a header after any blank (a form feed too): so must the
    # reading of headers, or the entries under it land in the sink before.
    pytest.param(DIR + "\f[sink b!]\ntype = dir\n", 4, "[sink b!]: a sink name is",
                 id="form-feed"),
]


@pytest.mark.parametrize("text,line,words", BAD)
def test_bad_config_is_refused_with_file_and_line(tmp_path, text, line, words):
    cfg, p = run_daemon(tmp_path, text)
    assert p.returncode == 2, p.stderr
    assert "%s:%d: " % (cfg, line) in p.stderr, p.stderr
    assert words in p.stderr, p.stderr
    assert "not started" in p.stderr


def test_every_problem_is_reported_in_line_order(tmp_path):
    cfg, p = run_daemon(tmp_path, "[sink a]\ntype = dir\npath = /tmp/x\n"
                        "max_age = soon\nbogus = 1\n[sink b]\ntype = http\n"
                        "url = nope\n")
    assert p.returncode == 2
    lines = [l for l in p.stderr.splitlines() if l.startswith(str(cfg))]
    assert [int(l.split(":")[1]) for l in lines] == [4, 5, 8], p.stderr


def test_missing_config_file(tmp_path):
    (tmp_path / "mnt").mkdir()
    p = subprocess.run([IDBMOUNT, "-f", "--data", str(tmp_path / "data"),
                        "--config", str(tmp_path / "nope.ini"),
                        str(tmp_path / "mnt")], capture_output=True, text=True)
    assert p.returncode == 2
    assert "nope.ini: cannot read the configuration: No such file" in p.stderr


def test_sink_that_cannot_be_built_stops_the_start(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg, p = run_daemon(tmp_path, "[sink s]\ntype = dir\npath = %s/sub\n" % blocker)
    assert p.returncode == 2
    assert "%s:1: [sink s]: cannot make %s/sub" % (cfg, blocker) in p.stderr


def test_empty_config_starts_with_no_sinks(sinks):
    sinks.start("; no sinks yet\n# comments both ways\n")
    sinks.put("alice/shop/orders", 1, {"a": 1})
    assert sinks.status()["sinks"] == []
    assert "no sinks" in sinks.ctl("status").stdout


def test_defaults_and_comments(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start("[sink s]\n; a comment\ntype = dir\n# another\npath = %s\n" % spool)
    assert spool.is_dir()
    st = sinks.sink_status("s")
    assert st["type"] == "dir" and st["cursor"] == 0


def test_sink_list_prints_the_option_tables(sinks):
    out = sinks.ctl("sink", "list").stdout
    for words in ["type = dir", "type = webhdfs", "type = http", "max_records",
                  "10000", "max_age", "500ms", "partition", "done_flag",
                  "completed_suffix", ".COMPLETED", "format", "flume-json|jsonl",
                  "header", "[repeatable]", "httpfs", "noredirect",
                  "(max_records defaults to 100 for this type)", "(required)"]:
        assert words in out, words


def test_help_mentions_config():
    p = subprocess.run([IDBMOUNT, "--help"], capture_output=True, text=True)
    assert "--config FILE" in p.stdout
    p = subprocess.run([IDBMOUNTCTL, "--help"], capture_output=True, text=True)
    assert "sink replay NAME --from SEQ" in p.stdout and "status" in p.stdout


def test_the_example_config_is_valid(sinks, tmp_path):
    """mount-helpers/idbmount.example.ini, with its paths moved into the
    test's directory and its servers pointed at a closed port."""
    src = os.path.join(os.environ.get("IDBMOUNT_SOURCE_DIR", "../.."),
                       "mount-helpers", "idbmount.example.ini")
    text = open(src).read()
    text = text.replace("/var/spool/idbmount", str(tmp_path / "spool"))
    text = text.replace("/var/lib/idbmount/feed", str(tmp_path / "feed"))
    for host in ("namenode.example:9870", "flume.example:5140", "nifi.example:8081"):
        text = text.replace(host, "127.0.0.1:9")
    sinks.start(text)
    names = sorted(s["name"] for s in sinks.status()["sinks"])
    assert names == ["feed", "flume", "hdfs", "nifi", "spool"]


def test_a_name_only_hdfs_refuses_is_fine_for_a_dir_sink(sinks, tmp_path):
    """The dir sink keeps its own rules: ':' is a plain character there."""
    spool = tmp_path / "spool"
    sinks.start("[sink s]\ntype = dir\npath = %s\npartition = ${HOUR}:${MINUTE}\n"
                "max_age = 20ms\n" % spool)
    sinks.put("alice/shop/orders", 1, {"a": 1})
    sinks.wait_caught_up("s")
    assert [d for d in os.listdir(spool) if ":" in d]


@pytest.mark.parametrize("name", [".", ".."])
def test_a_webhdfs_sink_name_hdfs_refuses_stops_the_start(tmp_path, name):
    """Its staged copies live in PATH/.idbmount-staging/NAME."""
    cfg, p = run_daemon(tmp_path, "[sink %s]\ntype = webhdfs\nurl = http://127.0.0.1:9\n"
                        "path = /data/idb\n" % name)
    assert p.returncode == 2, p.stderr
    assert "%s:1: [sink %s]: HDFS refuses '%s' as the name of its staging directory" % (
        cfg, name, name) in p.stderr
