// pouch_server.mjs - pouchdb-server (tests/bench/pouch, npm ci there) on a
// free loopback port, in memory or (onDisk) on its LevelDB backend in a
// fresh temporary directory, for the PouchDB comparisons of
// bench_pouch.mjs and bench_first_sync.mjs.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const pouchDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'pouch');
export const pouchBrowserBuild = path.join(pouchDir, 'node_modules/pouchdb/dist/pouchdb.min.js');
const pouchServerBin = path.join(pouchDir, 'node_modules/pouchdb-server/bin/pouchdb-server');

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

const sleep = ms => new Promise(r => setTimeout(r, ms));

export async function json(res, what) {
	const body = await res.text();
	if (!res.ok) throw new Error(`${what}: HTTP ${res.status}: ${body.slice(0, 300)}`);
	return JSON.parse(body);
}

/* Starts the server; resolves {url, version, stop()} once it answers. */
export async function startPouchServer({ onDisk = false } = {}) {
	for (const f of [pouchBrowserBuild, pouchServerBin]) {
		if (!fs.existsSync(f)) throw new Error(`${f} is missing: run npm ci in ${pouchDir}`);
	}
	/* pouchdb-server writes config.json and log.txt into its directory:
	 * give it a fresh one and remove it afterwards. */
	const root = fs.mkdtempSync(path.join(os.tmpdir(), 'idbmount-pouch-'));
	const port = await freePort();
	const url = `http://127.0.0.1:${port}`;
	let log = '';
	const server = spawn(process.execPath,
		[pouchServerBin, ...(onDisk ? [] : ['--in-memory']), '--host', '127.0.0.1', '--port', String(port), '--dir', root,
			'--config', path.join(root, 'config.json'), '--no-color', '--no-stdout-logs'],
		{ cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
	server.stdout.on('data', b => { log += b; });
	server.stderr.on('data', b => { log += b; });
	let exit = null;
	server.on('exit', (code, sig) => { exit = code ?? sig; });
	const stop = async () => {
		if (exit === null) {
			server.kill('SIGTERM');
			for (let i = 0; i < 100 && exit === null; i++) await sleep(50);
			if (exit === null) server.kill('SIGKILL');
		}
		fs.rmSync(root, { recursive: true, force: true });
	};
	try {
		const ready = Date.now() + 30000;
		for (;;) {
			if (exit !== null) throw new Error(`pouchdb-server exited (${exit}): ${log}`);
			if (Date.now() > ready) throw new Error('pouchdb-server did not answer within 30 s: ' + log);
			try {
				const { version } = await json(await fetch(url + '/'), 'GET /');
				return { url, version, stop };
			} catch {
				await sleep(100);
			}
		}
	} catch (err) {
		await stop();
		throw err;
	}
}
