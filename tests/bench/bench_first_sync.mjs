// bench_first_sync.mjs - a first sync of a large store into a fresh
// browser, on demand (not in ctest; numbers depend on the machine):
//
//   cd tests/web && npm ci --no-audit --no-fund           (playwright-core)
//   cd tests/bench/pouch && npm ci --no-audit --no-fund   (pouchdb, pouchdb-server)
//   node tests/bench/bench_first_sync.mjs [--records N] [--pouch-batch N | --no-pouch]
//
// The daemon gets N records (100,000 by default) of ~400 bytes, pushed
// from node in batches of 1,000; pouchdb-server (in memory) gets the same
// documents with _bulk_docs. Then, in Debian's Chromium, each in a fresh
// profile on disk (a user data directory of its own):
//   1. raw IndexedDB: the same records put in transactions of 1,000 on
//      the page that then syncs, before and after the sync (into databases
//      of their own), the reference of the target;
//   2. idbmount.js: startSync on a database that has the store but no
//      record, until the checkpoint reached the server's last change (and
//      every record is counted in the store); the time until the first
//      page of records was committed (the first "change" event: usable by
//      the app); then, timed on its own with the sync stopped, folding
//      the revision runs the pull recorded (what the sync does once idle);
//   3. PouchDB (dist/pouchdb.min.js, IndexedDB adapter): a one-shot
//      replication from pouchdb-server into an empty database, batch_size
//      1,000 (--pouch-batch), and the time until its first "change".
// Memory: the peak of the summed PSS of all the profile's Chromium
// processes (sampled every 100 ms) while each one synced, and the page's
// JS heap (performance.memory, precise) at its highest "change" event.
//
// Target: the first sync takes at most 1.5x the raw puts (their mean).
//
// IDBMOUNT_LIB=path serves another copy of the library instead of the
// daemon's, for an A/B run against the same daemon (a src/web directory
// or a one-file library: see library_route.mjs).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const { launchChromiumProfile } = await import(path.join(here, '../web/chromium.mjs'));
const { useReleaseBuild } = await import('./release_build.mjs');
const measured = useReleaseBuild(); /* before daemon.mjs reads IDBMOUNT_BIN */
const { Daemon } = await import(path.join(here, '../web/daemon.mjs'));
const { routeLibrary } = await import('./library_route.mjs');

const args = process.argv.slice(2);
const argValue = name => {
	const i = args.indexOf(name);
	return i < 0 ? null : Number(args[i + 1]);
};
const N = argValue('--records') ?? 100000;
const POUCH_BATCH = argValue('--pouch-batch') ?? 1000;
const withPouch = !args.includes('--no-pouch');
const PAGE = 1000;
const pad = 'x'.repeat(360);
const idOf = i => 'r' + String(i).padStart(7, '0');
const MEMORY_INFO = '--enable-precise-memory-info';

/* Summed PSS (bytes: resident memory, pages shared between processes
 * counted once in all) of the processes whose command line names `dir`. */
function rssOf(dir) {
	let total = 0;
	for (const pid of fs.readdirSync('/proc').filter(p => /^\d+$/.test(p))) {
		try {
			if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir)) continue;
			const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
			if (m) total += Number(m[1]) * 1024;
		} catch {
			/* gone meanwhile */
		}
	}
	return total;
}

/* Runs fn() while sampling the PSS of profile `dir`; resolves
 * {result, peakRss}. */
async function sampled(dir, fn) {
	let peak = rssOf(dir);
	const timer = setInterval(() => {
		peak = Math.max(peak, rssOf(dir));
	}, 100);
	try {
		const result = await fn();
		peak = Math.max(peak, rssOf(dir));
		return { result, peakRss: peak };
	} finally {
		clearInterval(timer);
	}
}

/* A fresh browser profile on disk; resolves {context, page, dir, close}. */
async function freshProfile() {
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'idbmount-first-sync-profile-'));
	const context = await launchChromiumProfile(dir, [MEMORY_INFO]);
	const page = context.pages()[0] || await context.newPage();
	return {
		context, page, dir,
		close: async () => {
			await context.close();
			fs.rmSync(dir, { recursive: true, force: true });
		},
	};
}

/* In the page: N records put into database `name` in transactions of
 * 1,000; resolves the time in ms. */
const RAW_PUTS = async ({ N, PAGE, name }) => {
	const pad = 'x'.repeat(360);
	const req = r => new Promise((res, rej) => {
		r.onsuccess = () => res(r.result);
		r.onerror = () => rej(r.error);
	});
	const open = indexedDB.open(name, 1);
	open.onupgradeneeded = () => open.result.createObjectStore('rows', { keyPath: 'id' });
	const db = await req(open);
	const t0 = performance.now();
	for (let b = 0; b < N; b += PAGE) {
		const tx = db.transaction(['rows'], 'readwrite');
		const s = tx.objectStore('rows');
		for (let i = b; i < Math.min(N, b + PAGE); i++) s.put({ id: 'r' + String(i).padStart(7, '0'), name: 'record ' + i, pad });
		await new Promise((res, rej) => {
			tx.oncomplete = res;
			tx.onabort = () => rej(tx.error);
		});
	}
	const ms = performance.now() - t0;
	const count = await req(db.transaction(['rows']).objectStore('rows').count());
	db.close();
	if (count !== N) throw new Error(`raw: ${count} records, not ${N}`);
	return ms;
};

async function post(url, token, body) {
	const res = await fetch(url, {
		method: 'POST', headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
	});
	const text = await res.text();
	if (!res.ok) throw new Error(`POST ${url}: ${res.status} ${text.slice(0, 300)}`);
	return JSON.parse(text);
}

const load = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
const loadBefore = load();
const d = new Daemon();
const token = d.addClient('bench');
await d.start();
let pouch = null;
const profiles = [];
try {
	/* The server's side, before any clock runs. */
	await post(d.url + '/v1/schema', token, { db: 'first', version: 1, stores: [{ name: 'rows', keyPath: 'id', autoIncrement: false, indexes: [] }] });
	let head = 0;
	for (let b = 0; b < N; b += PAGE) {
		const mutations = [];
		for (let i = b; i < Math.min(N, b + PAGE); i++)
			mutations.push({ id: 'seed-' + i, db: 'first', store: 'rows', key: idOf(i), op: 'put', value: { id: idOf(i), name: 'record ' + i, pad }, base: null });
		const answer = await post(d.url + '/v1/push', token, { mutations });
		for (const r of answer.results) {
			if (r.status !== 'ok') throw new Error('seed push: ' + JSON.stringify(r));
			head = Math.max(head, r.seq);
		}
	}
	let pouchInfo = null;
	if (withPouch) {
		const { startPouchServer, json } = await import('./pouch_server.mjs');
		pouch = await startPouchServer();
		await json(await fetch(pouch.url + '/first', { method: 'PUT' }), 'PUT first');
		for (let b = 0; b < N; b += PAGE) {
			const docs = [];
			for (let i = b; i < Math.min(N, b + PAGE); i++) docs.push({ _id: idOf(i), name: 'record ' + i, pad });
			const res = await json(await fetch(pouch.url + '/first/_bulk_docs', {
				method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ docs }),
			}), '_bulk_docs');
			if (res.some(x => !x.ok)) throw new Error('_bulk_docs: ' + JSON.stringify(res.find(x => !x.ok)));
		}
		pouchInfo = await json(await fetch(pouch.url + '/first'), 'GET first');
		if (pouchInfo.doc_count !== N) throw new Error(`pouchdb-server holds ${pouchInfo.doc_count} docs`);
	}

	/* idbmount.js, with the raw puts on the same page. */
	const a = await freshProfile();
	profiles.push(a);
	await routeLibrary(a.context, process.env.IDBMOUNT_LIB);
	await a.page.goto(d.url + '/healthz');
	await a.page.setContent('<!doctype html><title>first sync</title>');
	const browserVersion = (await a.page.evaluate(() => navigator.userAgent)).match(/Chrome\/([\d.]+)/)?.[1];
	const rawBefore = await a.page.evaluate(RAW_PUTS, { N, PAGE, name: 'raw-before' });
	const first = await sampled(a.dir, () => a.page.evaluate(async ({ token, head, N }) => {
		const m = await import('/idbmount.js');
		const db = await m.openDatabase('first', { version: 1, stores: [{ name: 'rows', keyPath: 'id' }] });
		let firstPageMs = null;
		let heap = 0;
		const t0 = performance.now();
		const sync = db.sync({ token });
		sync.addEventListener('change', () => {
			if (firstPageMs === null) firstPageMs = performance.now() - t0;
			heap = Math.max(heap, performance.memory?.usedJSHeapSize ?? 0);
		});
		await new Promise((resolve, reject) => {
			const check = () => {
				if (sync.state.checkpoint >= head && !sync.state.syncing) resolve();
			};
			sync.addEventListener('status', check);
			sync.addEventListener('error', ev => reject(new Error(JSON.stringify(ev.detail))));
		});
		const totalMs = performance.now() - t0;
		const count = await db.count('rows');
		sync.stop();
		/* The fold, on its own: a Sync that does not run, so nothing else
		 * folds meanwhile. */
		const folder = new m.Sync({ database: 'first', token, lock: false });
		const f0 = performance.now();
		const runs = await folder.foldRevisions();
		const foldMs = performance.now() - f0;
		folder.stop();
		db.close();
		if (count !== N) throw new Error(`first sync: ${count} records, not ${N}`);
		return { totalMs, firstPageMs, heap, foldMs, runs };
	}, { token, head, N }));
	const rawAfter = await a.page.evaluate(RAW_PUTS, { N, PAGE, name: 'raw-after' });
	await a.close();
	profiles.pop();

	let pouchRun = null;
	if (withPouch) {
		const { pouchBrowserBuild } = await import('./pouch_server.mjs');
		const b = await freshProfile();
		profiles.push(b);
		await b.page.goto(pouch.url + '/');
		await b.page.setContent('<!doctype html><title>first replication</title>');
		await b.page.addScriptTag({ path: pouchBrowserBuild });
		pouchRun = await sampled(b.dir, () => b.page.evaluate(async ({ remote, N, batch }) => {
			const db = new PouchDB('first');
			let firstPageMs = null;
			let heap = 0;
			const t0 = performance.now();
			const info = await PouchDB.replicate(remote, db, { batch_size: batch }).on('change', () => {
				if (firstPageMs === null) firstPageMs = performance.now() - t0;
				heap = Math.max(heap, performance.memory?.usedJSHeapSize ?? 0);
			});
			const totalMs = performance.now() - t0;
			const { doc_count: count } = await db.info();
			if (!info.ok || count !== N) throw new Error(`replication: ${count} docs; ${JSON.stringify(info).slice(0, 300)}`);
			return { totalMs, firstPageMs, heap, adapter: db.adapter };
		}, { remote: pouch.url + '/first', N, batch: POUCH_BATCH }));
		await b.close();
		profiles.pop();
	}

	const mib = n => `${(n / 1048576).toFixed(0)} MiB`;
	const rate = ms => `${(N / ms * 1000).toFixed(0)} rec/s`;
	const raw = (rawBefore + rawAfter) / 2;
	const rows = [
		['raw IndexedDB puts, tx of 1,000 (before the sync)', `${rawBefore.toFixed(0)} ms`, rate(rawBefore), '', ''],
		['raw IndexedDB puts, tx of 1,000 (after the sync)', `${rawAfter.toFixed(0)} ms`, rate(rawAfter), '', ''],
		['idbmount.js first sync', `${first.result.totalMs.toFixed(0)} ms`, rate(first.result.totalMs),
			`first page ${first.result.firstPageMs.toFixed(0)} ms`,
			`${(first.result.totalMs / raw).toFixed(2)}x raw (target <= 1.5x); peak PSS ${mib(first.peakRss)}, JS heap ${mib(first.result.heap)}`],
		['then: the pull\'s revision runs folded (idle work)', `${first.result.foldMs.toFixed(0)} ms`, '', '', `${first.result.runs} runs`],
	];
	if (pouchRun)
		rows.push([`PouchDB replicate from pouchdb-server, batch_size ${POUCH_BATCH} (${pouchRun.result.adapter})`, `${pouchRun.result.totalMs.toFixed(0)} ms`,
			rate(pouchRun.result.totalMs), `first change ${pouchRun.result.firstPageMs.toFixed(0)} ms`,
			`${(pouchRun.result.totalMs / raw).toFixed(2)}x raw; peak PSS ${mib(pouchRun.peakRss)}, JS heap ${mib(pouchRun.result.heap)}`]);
	const w = [0, 1, 2, 3, 4].map(i => Math.max(...rows.map(r => r[i].length)));
	console.log(`first sync benchmark: ${N} records of ~400 bytes, pages of ${PAGE}, Chromium ${browserVersion}, fresh profiles on disk, `
		+ `daemon: ${measured}, library ${process.env.IDBMOUNT_LIB || 'built in'}${pouch ? `, pouchdb-server ${pouch.version} in memory` : ''}, `
		+ `load average ${loadBefore} before, ${load()} after`);
	for (const r of rows) console.log(r.map((c, i) => c.padEnd(w[i])).join(' | '));
} finally {
	for (const p of profiles) await p.close().catch(() => {});
	if (pouch) await pouch.stop();
	await d.cleanup();
}
