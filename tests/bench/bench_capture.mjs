// bench_capture.mjs - what drop-in capture costs an app's writes, on demand
// (not in ctest; numbers depend on the machine):
//
//   node tests/bench/bench_capture.mjs [--rounds 5] [--compare OLD]
//
// (with tests/web's node_modules installed: cd tests/web && npm ci; the
// daemon is a Release build made in build-release/, or IDBMOUNT_BIN /
// IDBMOUNTCTL_BIN as they are: release_build.mjs)
//
// In real Chromium (Debian's), on a page of a real daemon, with no sync
// running: each write pattern below runs against a plain IndexedDB
// database ("raw") and a captured one in the same page, in slices that
// alternate raw and captured (a change of the machine's load falls on
// both alike); the records are ~400 bytes. Patterns:
//   one write per transaction     1,000 transactions of one put (what
//                                 idb-keyval's set() and localforage's
//                                 setItem() do), 10 slices of 100
//   1,000 writes per transaction  10 transactions of 1,000 puts
//   a generated key per transaction  1,000 transactions of one add() into
//                                 an autoIncrement store, 10 slices of 100
//   cursor updates                a transaction updating 1,000 records
//                                 through a cursor, 5 times
//   clear()                       clearing a store of 5,000 records, 5
//                                 times (the refill is not measured)
// Two measures per slice: the time in the page (performance.now()) and the
// CPU time the browser's processes used meanwhile (/proc, every process of
// this Chromium: the page's renderer, the browser process where IndexedDB
// runs, ...), which other work on a shared machine moves much less.
// Target: captured <= 1.3x raw for every pattern.
//
// --compare OLD runs the same rounds with another copy of the library too
// (a src/web directory or a one-file library: see library_route.mjs), in
// its own pages, alternating with the built-in one round by round: an A/B
// in one run.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';

const here = path.dirname(fileURLToPath(import.meta.url));
const { launchChromium } = await import(path.join(here, '../web/chromium.mjs'));
const { useReleaseBuild } = await import('./release_build.mjs');
const measured = useReleaseBuild(); /* before daemon.mjs reads IDBMOUNT_BIN */
const { Daemon } = await import(path.join(here, '../web/daemon.mjs'));
const { routeLibrary } = await import('./library_route.mjs');

const args = process.argv.slice(2);
const option = (name, fallback) => {
	const i = args.indexOf(name);
	return i >= 0 ? args[i + 1] : fallback;
};
const ROUNDS = Number(option('--rounds', 5));
const compare = option('--compare', null);
const libraries = [{ name: 'built in', path: null }];
if (compare) libraries.push({ name: path.basename(compare), path: compare });

/* A flag no other Chromium has: its processes are found through it. */
const MARK = `--idbmount-bench-capture=${process.pid}`;
const TICKS = 100; /* USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s */

/* CPU seconds used so far by our Chromium: the process with MARK and its
 * descendants. */
function chromiumCpu() {
	const procs = new Map();
	for (const pid of fs.readdirSync('/proc').filter(n => /^\d+$/.test(n))) {
		try {
			const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
			const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
			procs.set(pid, { ppid: f[1], cpu: (Number(f[11]) + Number(f[12])) / TICKS, cmd: null });
		} catch {
			/* gone meanwhile */
		}
	}
	const ours = new Set();
	for (const pid of procs.keys()) {
		try {
			if (fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(MARK)) ours.add(pid);
		} catch {
			/* gone meanwhile */
		}
	}
	let grew = true;
	while (grew) {
		grew = false;
		for (const [pid, p] of procs) if (!ours.has(pid) && ours.has(p.ppid)) grew = ours.add(pid) && true;
	}
	let cpu = 0;
	for (const pid of ours) cpu += procs.get(pid).cpu;
	return cpu;
}

const d = new Daemon();
d.addClient('bench');
await d.start();
const browser = await launchChromium([MARK]);

const PATTERNS = {
	'one write per transaction': 10,
	'1,000 writes per transaction': 10,
	'a generated key per transaction': 10,
	'cursor updates (1,000 records)': 5,
	'clear() of 5,000 records': 5,
};

/* The page's side: window.bench.open(pattern) and window.bench.slice(pattern,
 * which, n) -> ms. */
function pageBench(roundNo) {
	return (async () => {
		const m = await import('/idbmount.js');
		m.captureIndexedDB({ databases: name => name.startsWith('captured-') });
		const pad = 'x'.repeat(360);
		const rec = i => ({ id: i, name: 'record ' + i, pad });
		const settled = r => new Promise((resolve, reject) => {
			r.onsuccess = () => resolve(r.result);
			r.onerror = () => reject(r.error);
		});
		const committed = tx => new Promise((resolve, reject) => {
			tx.oncomplete = resolve;
			tx.onabort = () => reject(tx.error);
		});
		const openDb = name => {
			const r = indexedDB.open(name, 1);
			r.onupgradeneeded = () => {
				r.result.createObjectStore('rows', { keyPath: 'id' });
				r.result.createObjectStore('log', { autoIncrement: true });
			};
			return settled(r);
		};
		const fill = async (db, records) => {
			const tx = db.transaction(['rows'], 'readwrite');
			for (let i = 0; i < records; i++) tx.objectStore('rows').put(rec(i));
			await committed(tx);
		};
		const timed = async fn => {
			const t0 = performance.now();
			await fn();
			return performance.now() - t0;
		};
		/* Setting up a slice (refilling a store) is not timed. */
		const patterns = {
			'one write per transaction': (db, n) => timed(async () => {
				for (let i = 0; i < 100; i++) {
					const tx = db.transaction(['rows'], 'readwrite');
					tx.objectStore('rows').put(rec(n * 100 + i));
					await committed(tx);
				}
			}),
			'1,000 writes per transaction': (db, n) => timed(async () => {
				const tx = db.transaction(['rows'], 'readwrite');
				for (let i = 0; i < 1000; i++) tx.objectStore('rows').put(rec(n * 1000 + i));
				await committed(tx);
			}),
			'a generated key per transaction': db => timed(async () => {
				for (let i = 0; i < 100; i++) {
					const tx = db.transaction(['log'], 'readwrite');
					tx.objectStore('log').add({ at: i, pad });
					await committed(tx);
				}
			}),
			'cursor updates (1,000 records)': (db, n) => timed(async () => {
				const tx = db.transaction(['rows'], 'readwrite');
				tx.objectStore('rows').openCursor().onsuccess = ev => {
					const c = ev.target.result;
					if (!c) return;
					c.update({ ...c.value, n });
					c.continue();
				};
				await committed(tx);
			}),
			'clear() of 5,000 records': db => timed(async () => {
				const tx = db.transaction(['rows'], 'readwrite');
				tx.objectStore('rows').clear();
				await committed(tx);
			}),
		};
		const prepare = {
			'cursor updates (1,000 records)': (db, n) => (n === 0 ? fill(db, 1000) : null),
			'clear() of 5,000 records': db => fill(db, 5000),
		};
		const dbs = {};
		let k = 0;
		window.bench = {
			async open(pattern) {
				for (const which of ['raw', 'captured']) dbs[which]?.close();
				k += 1;
				dbs.raw = await openDb(`raw-r${roundNo}-${k}`);
				dbs.captured = await openDb(`captured-r${roundNo}-${k}`);
				void pattern;
			},
			async prepare(pattern, which, n) {
				await prepare[pattern]?.(dbs[which], n);
			},
			slice: (pattern, which, n) => patterns[pattern](dbs[which], n),
		};
	})();
}

/* One round in a fresh page: every pattern, raw and captured alternating
 * slice by slice. Returns {pattern: {raw: {ms, cpu}, captured: {ms, cpu}}}. */
async function round(library, roundNo) {
	const context = await browser.newContext();
	const page = await context.newPage();
	await routeLibrary(page, library.path);
	await page.goto(d.url + '/healthz');
	await page.evaluate(pageBench, roundNo);
	const out = {};
	for (const [pattern, slices] of Object.entries(PATTERNS)) {
		await page.evaluate(p => window.bench.open(p), pattern);
		out[pattern] = { raw: { ms: 0, cpu: 0 }, captured: { ms: 0, cpu: 0 } };
		for (let n = 0; n < slices; n++)
			for (const which of (n + roundNo) % 2 ? ['raw', 'captured'] : ['captured', 'raw']) {
				await page.evaluate(a => window.bench.prepare(...a), [pattern, which, n]);
				const cpu0 = chromiumCpu();
				out[pattern][which].ms += await page.evaluate(a => window.bench.slice(...a), [pattern, which, n]);
				out[pattern][which].cpu += chromiumCpu() - cpu0;
			}
	}
	await context.close();
	return out;
}

const median = a => {
	const s = a.slice().sort((x, y) => x - y);
	return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

try {
	const load = () => fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
	console.log(`capture cost: Chromium ${browser.version()}, ${ROUNDS} rounds, ${new Date().toISOString()}, daemon: ${measured}, load average ${load()} at the start`);
	const results = new Map(libraries.map(l => [l.name, []]));
	for (let r = 0; r < ROUNDS; r++)
		for (const library of r % 2 ? libraries.slice().reverse() : libraries) results.get(library.name).push(await round(library, r));
	console.log(`load average ${load()} at the end`);
	const rows = [['pattern', 'library', 'raw ms', 'captured ms', 'time captured/raw (all rounds)', 'CPU s raw', 'CPU s captured', 'CPU captured/raw (all rounds)']];
	for (const p of Object.keys(PATTERNS))
		for (const library of libraries) {
			const runs = results.get(library.name).map(x => x[p]);
			const ratios = f => runs.map(x => x.captured[f] / x.raw[f]);
			const cell = f => `${median(ratios(f)).toFixed(2)}x (${ratios(f).map(x => x.toFixed(2)).join(' ')})`;
			rows.push([p, library.name, median(runs.map(x => x.raw.ms)).toFixed(0), median(runs.map(x => x.captured.ms)).toFixed(0), cell('ms'),
				median(runs.map(x => x.raw.cpu)).toFixed(2), median(runs.map(x => x.captured.cpu)).toFixed(2), cell('cpu')]);
		}
	console.log('(medians of the rounds)');
	const w = rows[0].map((_, i) => Math.max(...rows.map(r => r[i].length)));
	for (const r of rows) console.log(r.map((c, i) => c.padEnd(w[i])).join(' | '));
} finally {
	await browser.close();
	await d.cleanup();
}
