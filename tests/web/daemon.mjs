// A real idbmount daemon for the web tests: fresh data directory and
// mountpoint, HTTP on a free loopback port, a client with a token.
// The binaries come from ctest's environment (IDBMOUNT_BIN, IDBMOUNTCTL_BIN),
// as in tests/fs/conftest.py; by hand:
//   IDBMOUNT_BIN=build/idbmount IDBMOUNTCTL_BIN=build/idbmountctl node --test tests/web
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
export const IDBMOUNT = process.env.IDBMOUNT_BIN || path.join(repo, 'build/idbmount');
export const IDBMOUNTCTL = process.env.IDBMOUNTCTL_BIN || path.join(repo, 'build/idbmountctl');

function freePort() {
	return new Promise((resolve, reject) => {
		const s = net.createServer();
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
		s.on('error', reject);
	});
}

function isMounted(dir) {
	const real = fs.realpathSync(dir);
	return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some(l => l.split(' ')[4] === real);
}

export function sleep(ms) {
	return new Promise(r => setTimeout(r, ms));
}

/* Polls `fn` until it returns a truthy value; fails with `what` after a
 * generous deadline (no timing is asserted, only the outcome). */
export async function eventually(fn, what, deadlineMs = 20000) {
	const end = Date.now() + deadlineMs;
	let last;
	for (;;) {
		try {
			last = await fn();
			if (last) return last;
		} catch (err) {
			last = err;
		}
		if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last: ${last instanceof Error ? last.stack : JSON.stringify(last)}`);
		await sleep(25);
	}
}

export class Daemon {
	/* `args`: extra daemon arguments, e.g. ['--max-body', '65536']. */
	constructor(args = []) {
		this.args = args;
		this.root = fs.mkdtempSync(path.join(os.tmpdir(), 'idbmount-web-'));
		this.data = path.join(this.root, 'data');
		this.mnt = path.join(this.root, 'mnt');
		fs.mkdirSync(this.mnt);
		this.proc = null;
	}

	ctl(...args) {
		const p = spawnSync(IDBMOUNTCTL, ['--data', this.data, ...args], { encoding: 'utf8', timeout: 60000, maxBuffer: 1 << 28 });
		if (p.status !== 0) throw new Error(`idbmountctl ${args.join(' ')} failed (${p.status ?? p.signal ?? p.error}): ${p.stderr}`);
		return p.stdout;
	}

	/* `client add NAME` prints the token (the last word of its output). */
	addClient(name) {
		const out = this.ctl('client', 'add', name).trim();
		const token = out.split(/\s+/).pop();
		if (!/^[A-Za-z0-9_-]{16,}$/.test(token)) throw new Error('no token in: ' + out);
		return token;
	}

	changes(since = 0) {
		return this.ctl('log', '--since', String(since)).split('\n').filter(Boolean).map(l => JSON.parse(l));
	}

	async start() {
		this.port = this.port || await freePort();
		this.url = `http://127.0.0.1:${this.port}`;
		this.logPath = path.join(this.root, 'daemon.stderr');
		const log = fs.openSync(this.logPath, 'a');
		this.proc = spawn(IDBMOUNT, ['-f', '--data', this.data, '--listen', `127.0.0.1:${this.port}`, ...this.args, this.mnt],
			{ stdio: ['ignore', log, log] });
		fs.closeSync(log);
		let exited = null;
		this.proc.on('exit', code => {
			exited = code;
		});
		await eventually(async () => {
			if (exited !== null) throw new Error(`idbmount exited with ${exited}: ${this.stderr()}`);
			if (!isMounted(this.mnt)) return false;
			const res = await fetch(this.url + '/healthz').catch(() => null);
			return res && res.ok;
		}, 'the daemon to mount and answer /healthz', 15000);
		return this;
	}

	stderr() {
		try {
			return fs.readFileSync(this.logPath, 'utf8');
		} catch {
			return '';
		}
	}

	/* Unmounts as a user does; the daemon must exit cleanly. */
	async stop() {
		if (!this.proc) return 0;
		const proc = this.proc;
		this.proc = null;
		const code = new Promise(resolve => {
			if (proc.exitCode !== null) resolve(proc.exitCode);
			else proc.on('exit', c => resolve(c));
		});
		if (isMounted(this.mnt)) spawnSync('fusermount3', ['-u', this.mnt]);
		const timer = setTimeout(() => proc.kill('SIGKILL'), 20000);
		const rc = await code;
		clearTimeout(timer);
		if (isMounted(this.mnt)) spawnSync('fusermount3', ['-u', '-z', this.mnt]);
		return rc;
	}

	async cleanup() {
		const rc = await this.stop();
		fs.rmSync(this.root, { recursive: true, force: true });
		if (rc !== 0) throw new Error(`idbmount exited with ${rc}:\n${this.stderr()}`);
	}

	path(...parts) {
		return path.join(this.mnt, ...parts);
	}

	read(...parts) {
		return fs.readFileSync(this.path(...parts), 'utf8');
	}

	exists(...parts) {
		return fs.existsSync(this.path(...parts));
	}

	sh(cmd) {
		return execFileSync('bash', ['-c', cmd], { encoding: 'utf8', timeout: 60000 });
	}
}
