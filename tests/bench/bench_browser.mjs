// bench_browser.mjs - browser-side figures of idbmount.js, on demand (not in
// ctest; numbers depend on the machine):
//
//   node tests/bench/bench_browser.mjs          (with tests/web's
//   node_modules installed: cd tests/web && npm ci; the daemon is a Release
//   build made in build-release/, or IDBMOUNT_BIN / IDBMOUNTCTL_BIN as they
//   are: release_build.mjs)
//
// In real Chromium (Debian's), on a page of a real daemon:
//   1. capture cost: 10,000 puts of ~400-byte records in 10 transactions
//      of 1,000, into a plain IndexedDB database and into a captured one
//      (the writes plus one journal record per transaction); median of 5
//      runs each.
//      Target: captured <= 1.3x raw.
//   2. browser -> acknowledged: the time from the first put() of 10,000
//      such records until the server acknowledged all of them (outbox
//      empty), and how long the app's own transactions took meanwhile;
//      beside it the same 10 transactions of raw puts. Each in a fresh page
//      (a cold IndexedDB, a new database: a page's first writes run 1.5-2x
//      slower than 1.'s warm runs), BENCH_ROUNDS times (3) alternating,
//      medians. Targets: at least 0.6 of those raw puts' throughput (the
//      ratio to 1.'s warm raw puts is printed too), and >= 20,000
//      records/s.
//   3. outbox -> acknowledged: the same 10,000 records written first with no
//      sync running (a tab that was offline), then the time from starting
//      the sync until all are acknowledged: the push path alone, without
//      the app's writes competing for the same IndexedDB stores.
//      Then, timed on its own: folding the revisions the acknowledgements
//      recorded (one run per batch) into per-record entries, which the
//      sync otherwise does once it has been idle for a second.
//
// IDBMOUNT_LIB=path serves another copy of the library instead of the
// daemon's built-in one, for A/B runs of two versions against the same
// daemon (a src/web directory or a one-file library: see
// library_route.mjs), alternating runs with and without it.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';

const here = path.dirname(fileURLToPath(import.meta.url));
const { launchChromium } = await import(path.join(here, '../web/chromium.mjs'));
const { useReleaseBuild } = await import('./release_build.mjs');
const measured = useReleaseBuild(); /* before daemon.mjs reads IDBMOUNT_BIN */
const { Daemon } = await import(path.join(here, '../web/daemon.mjs'));
const { routeLibrary } = await import('./library_route.mjs');

const N = 10000;
const d = new Daemon();
const token = d.addClient('bench');
await d.start();
const browser = await launchChromium();
/* Every page of the benchmark gets the library under test, and the raw
 * IndexedDB loop every comparison is made against: N records of ~400
 * bytes (ids from `first`), 1,000 puts a transaction; resolves the
 * milliseconds it took. */
async function benchPage() {
	const page = await browser.newPage();
	await routeLibrary(page, process.env.IDBMOUNT_LIB);
	await page.addInitScript(() => {
		const pad = 'x'.repeat(360);
		globalThis.benchRecord = i => ({ id: i, name: 'record ' + i, pad });
		globalThis.benchRawPuts = async (db, N, first = 0) => {
			const t0 = performance.now();
			for (let b = 0; b < N; b += 1000) {
				const tx = db.transaction(['rows'], 'readwrite');
				const s = tx.objectStore('rows');
				for (let i = b; i < b + 1000; i++) s.put(benchRecord(first + i));
				await new Promise((res, rej) => {
					tx.oncomplete = res;
					tx.onerror = () => rej(tx.error);
				});
			}
			return performance.now() - t0;
		};
	});
	return page;
}
try {
	const page = await benchPage();
	await page.goto(d.url + '/healthz');
	await page.setContent('<!doctype html><title>bench</title>');
	const capture = await page.evaluate(async N => {
		const m = await import('/idbmount.js');
		const req = r => new Promise((res, rej) => {
			r.onsuccess = () => res(r.result);
			r.onerror = () => rej(r.error);
		});
		const run = (db, runNo) => benchRawPuts(db, N, runNo * N);
		const rawOpen = indexedDB.open('raw-bench', 1);
		rawOpen.onupgradeneeded = () => rawOpen.result.createObjectStore('rows', { keyPath: 'id' });
		const raw = await req(rawOpen);
		const lib = await m.openDatabase('captured-bench', { version: 1, stores: [{ name: 'rows', keyPath: 'id' }] });
		const capturedConn = await lib.connection();
		const times = { raw: [], captured: [] };
		for (let r = 0; r < 5; r++) {
			times.raw.push(await run(raw, r));
			times.captured.push(await run(capturedConn, r));
		}
		const median = a => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
		return { raw: median(times.raw), captured: median(times.captured) };
	}, N);

	/* 2. Each round: the same 10 transactions of raw puts, and put() ->
	 * acknowledged, each in a fresh page (a browser context of its own:
	 * a cold IndexedDB) into a new database, the order alternating; the
	 * medians are compared. A fresh page's first writes run 1.5-2x slower
	 * than the warm runs of 1. (measured), so the reference for put ->
	 * acknowledged is the raw puts made under the same conditions. */
	const freshPage = async () => {
		const page = await benchPage();
		await page.goto(d.url + '/healthz');
		await page.setContent('<!doctype html><title>bench</title>');
		return page;
	};
	const coldRaw = async round => {
		const page = await freshPage();
		const ms = await page.evaluate(async ({ N, round }) => {
			const open = indexedDB.open('cold-raw-' + round, 1);
			open.onupgradeneeded = () => open.result.createObjectStore('rows', { keyPath: 'id' });
			const db = await new Promise((res, rej) => {
				open.onsuccess = () => res(open.result);
				open.onerror = () => rej(open.error);
			});
			return benchRawPuts(db, N);
		}, { N, round });
		await page.context().close();
		return ms;
	};
	const putToAck = async round => {
		const page = await freshPage();
		const name = 'ack-bench-' + round;
		const got = await page.evaluate(async ({ N, token, name }) => {
			const m = await import('/idbmount.js');
			const db = await m.openDatabase(name, { version: 1, stores: [{ name: 'rows', keyPath: 'id' }] });
			const sync = db.sync({ token });
			await new Promise(r => {
				const check = () => (sync.state.leader && !sync.state.syncing ? r() : setTimeout(check, 20));
				check();
			});
			const t0 = performance.now();
			for (let b = 0; b < N; b += 1000) {
				await db.transaction(['rows'], 'readwrite', tx => {
					const s = tx.store('rows');
					for (let i = b; i < b + 1000; i++) s.raw.put(benchRecord(i));
				});
			}
			const tWritten = performance.now();
			/* Done when a sync round ends with nothing pending (the round
			 * counts the outbox itself; polling it would compete). */
			await new Promise(resolve => {
				const check = () => {
					if (!sync.state.syncing && sync.state.outbox === 0) resolve();
				};
				sync.addEventListener('status', check);
				sync.wake();
			});
			const t1 = performance.now();
			sync.stop();
			return { writeMs: tWritten - t0, totalMs: t1 - t0 };
		}, { N, token, name });
		await page.context().close();
		got.files = fs.readdirSync(d.path('bench', name, 'rows')).length;
		return got;
	};
	const ROUNDS = Number(process.env.BENCH_ROUNDS || 3);
	const colds = [];
	const acks = [];
	for (let r = 0; r < ROUNDS; r++) {
		if (r % 2) {
			acks.push(await putToAck(r));
			colds.push(await coldRaw(r));
		} else {
			colds.push(await coldRaw(r));
			acks.push(await putToAck(r));
		}
	}
	const med = a => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)];
	const ack = { totalMs: med(acks.map(a => a.totalMs)), writeMs: med(acks.map(a => a.writeMs)) };
	const coldMs = med(colds);
	const files = Math.min(...acks.map(a => a.files));

	const page3 = await benchPage();
	await page3.goto(d.url + '/healthz');
	await page3.setContent('<!doctype html><title>bench</title>');
	const drain = await page3.evaluate(async ({ N, token }) => {
		const m = await import('/idbmount.js');
		const db = await m.openDatabase('drain-bench', { version: 1, stores: [{ name: 'rows', keyPath: 'id' }] });
		for (let b = 0; b < N; b += 1000) {
			await db.transaction(['rows'], 'readwrite', tx => {
				const s = tx.store('rows');
				for (let i = b; i < b + 1000; i++) s.raw.put(benchRecord(i));
			});
		}
		const t0 = performance.now();
		const sync = db.sync({ token });
		await new Promise(resolve => {
			const check = () => {
				if (sync.state.leader && !sync.state.syncing && sync.state.outbox === 0) resolve();
			};
			sync.addEventListener('status', check);
		});
		const t1 = performance.now();
		/* The revisions the acknowledgements recorded as one run per batch
		 * are folded into per-record entries when the sync is idle: timed
		 * here on its own (a library without runs has nothing to fold). */
		let foldMs = null;
		if (typeof sync.foldRevisions === 'function') {
			const f0 = performance.now();
			await sync.foldRevisions();
			foldMs = performance.now() - f0;
		}
		sync.stop();
		return { totalMs: t1 - t0, foldMs };
	}, { N, token });
	const drained = fs.readdirSync(d.path('bench', 'drain-bench', 'rows')).length;

	const rows = [
		['raw IndexedDB puts, 10 x 1,000', `${capture.raw.toFixed(0)} ms`, `${(N / capture.raw * 1000).toFixed(0)} rec/s`, ''],
		['captured puts (write + journal record)', `${capture.captured.toFixed(0)} ms`, `${(N / capture.captured * 1000).toFixed(0)} rec/s`,
			`${(capture.captured / capture.raw).toFixed(2)}x raw (target <= 1.3x)`],
		[`raw puts, 10 x 1,000, fresh page (median of ${ROUNDS})`, `${coldMs.toFixed(0)} ms`, `${(N / coldMs * 1000).toFixed(0)} rec/s`,
			`runs: ${colds.map(x => x.toFixed(0)).join(', ')} ms`],
		[`put() -> all acknowledged, fresh page (median of ${ROUNDS})`, `${ack.totalMs.toFixed(0)} ms`, `${(N / ack.totalMs * 1000).toFixed(0)} rec/s`,
			`${(coldMs / ack.totalMs).toFixed(2)} of the raw puts' throughput in a fresh page (target >= 0.6), ${(capture.raw / ack.totalMs).toFixed(2)} of warm raw puts; runs: ${acks.map(a => a.totalMs.toFixed(0)).join(', ')} ms; ${files} files in the mount`],
		['  of which the app\'s own 10 transactions', `${ack.writeMs.toFixed(0)} ms`, `${(N / ack.writeMs * 1000).toFixed(0)} rec/s`,
			'writes and pushes compete for the same stores'],
		['outbox written first -> all acknowledged', `${drain.totalMs.toFixed(0)} ms`, `${(N / drain.totalMs * 1000).toFixed(0)} rec/s`,
			`${drained} files in the mount`],
		['then: revision runs folded (idle work)', drain.foldMs === null ? '-' : `${drain.foldMs.toFixed(0)} ms`, '',
			drain.foldMs === null ? 'this library has no revision runs' : 'after all were acknowledged'],
	];
	const w = [0, 1, 2, 3].map(i => Math.max(...rows.map(r => r[i].length), 4));
	console.log(`browser benchmark: ${N} records of ~400 bytes, Chromium ${browser.version()}, library ${process.env.IDBMOUNT_LIB || 'built in'}, daemon: ${measured}, load average ${fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
	for (const r of rows) console.log(r.map((c, i) => c.padEnd(w[i])).join(' | '));
} finally {
	await browser.close();
	await d.cleanup();
}
