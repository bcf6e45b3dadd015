"""Chromium syncing through nginx with idbmount.js (tests/nodes/browser.mjs):
the demo page comes from some node, a put reaches the mount of the node the
token names, an edit on that mount comes back through the event stream via
nginx, and after the client moved to another node (a new token, setToken)
the browser's writes reach the new node."""
import json
import os
import subprocess

from conftest import HERE, SOURCE_DIR, move_client, wait_for

WEB = os.path.join(SOURCE_DIR, "tests", "web")


def web_packages():
    """tests/web's npm packages (playwright-core), installed as
    tests/web/run-web-tests.sh does on first use."""
    if not os.path.exists(os.path.join(WEB, "node_modules", "playwright-core", "package.json")):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=WEB,
                       stdin=subprocess.DEVNULL, check=True)


class Browser:
    def __init__(self):
        self.proc = subprocess.Popen(["node", os.path.join(HERE, "browser.mjs")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def step(self, message, expect):
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        if line != expect:
            self.proc.kill()
            raise AssertionError("browser: %r instead of %r: %s" %
                                 (line, expect, self.proc.stderr.read()))

    def finish(self):
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=120)
        assert rc == 0, self.proc.stderr.read()


def test_a_browser_syncs_through_nginx_and_follows_its_client_to_another_node(cluster):
    web_packages()
    old, new = cluster.nodes["node-c"], cluster.nodes["node-a"]
    token = old.add_client("alice")
    notes = os.path.join(old.mnt, "alice", "demo", "notes")
    browser = Browser()
    try:
        browser.step({"url": cluster.url, "token": token, "notes": notes}, "put-done")
        with open(os.path.join(notes, "b1.json")) as f:
            assert json.load(f) == {"text": "from the browser"}
        for other in (new, cluster.nodes["node-b"]):
            assert not os.path.exists(os.path.join(other.mnt, "alice"))
        with open(os.path.join(notes, "m1.json"), "w") as f:
            f.write('{"from": "mount"}\n')
        browser.step({"await": "m1"}, "edit-seen")

        new_token = move_client(old, new, "alice")
        new_notes = os.path.join(new.mnt, "alice", "demo", "notes")
        assert sorted(os.listdir(new_notes)) == ["b1.json", "m1.json"]
        browser.step({"token": new_token, "notes": new_notes}, "moved-put-done")
        with open(os.path.join(new_notes, "b2.json")) as f:
            assert json.load(f) == {"text": "after the move"}
        assert not os.path.exists(os.path.join(notes, "b2.json"))
        browser.finish()
    finally:
        if browser.proc.poll() is None:
            browser.proc.kill()
            browser.proc.wait()
