// Walks every path of the plain IndexedDB API that leads to store names or
// versions, on a captured database, and reports what the app sees there.
const names = list => Array.from(list);

function open(version, onUpgrade, onBlocked) {
	return new Promise((resolve, reject) => {
		const req = indexedDB.open('probe-app', version);
		req.onupgradeneeded = ev => onUpgrade(req, ev);
		req.onblocked = ev => onBlocked?.(ev);
		req.onsuccess = ev => resolve({ req, ev, db: req.result });
		req.onerror = () => reject(req.error);
	});
}

function settled(r) {
	return new Promise((resolve, reject) => {
		r.onsuccess = () => resolve(r.result);
		r.onerror = () => reject(r.error);
	});
}

function errorName(fn) {
	try {
		fn();
		return 'no error';
	} catch (err) {
		return err.name;
	}
}

export async function run() {
	const seen = {};
	const first = await open(1, (req, ev) => {
		const db = req.result;
		db.createObjectStore('items', { keyPath: 'id' }).createIndex('byTag', 'tag');
		db.createObjectStore('tags');
		seen.upgrade = {
			versions: [ev.oldVersion, ev.newVersion],
			targetIsRequest: ev.target === req,
			requestTypes: [req instanceof IDBOpenDBRequest, req instanceof IDBRequest],
			db: names(ev.target.result.objectStoreNames),
			tx: names(req.transaction.objectStoreNames),
			txDb: names(req.transaction.db.objectStoreNames),
			txDbVersion: req.transaction.db.version,
			sameConnection: req.transaction.db === db,
		};
	});
	const db = first.db;
	seen.success = { db: names(first.ev.target.result.objectStoreNames), version: first.ev.target.result.version, isList: db.objectStoreNames instanceof DOMStringList };

	// A transaction over "all stores", built from objectStoreNames.
	const tx = db.transaction(db.objectStoreNames, 'readwrite');
	const put = tx.objectStore('items').put({ id: 1, tag: 'a' });
	tx.objectStore('tags').put('a', 'a');
	seen.readwrite = {
		tx: names(tx.objectStoreNames),
		txDb: names(tx.db.objectStoreNames),
		sameConnection: tx.db === db,
		requestSource: names(put.source.transaction.objectStoreNames),
		requestTransactionDb: names(put.transaction.db.objectStoreNames),
		journal: errorName(() => tx.objectStore('__idbmount_journal')),
	};
	await settled(put);
	const cursor = await settled(tx.objectStore('items').index('byTag').openCursor());
	seen.cursor = { sourceDb: names(cursor.source.objectStore.transaction.db.objectStoreNames), contains: cursor.source.objectStore.transaction.db.objectStoreNames.contains('__idbmount_outbox') };
	await new Promise(resolve => (tx.oncomplete = resolve));

	seen.refused = {
		transaction: errorName(() => db.transaction('__idbmount_outbox')),
		transactionAmongOthers: errorName(() => db.transaction(['items', '__idbmount_meta'], 'readwrite')),
	};
	const ro = db.transaction(['items', 'tags']);
	seen.readonly = { tx: names(ro.objectStoreNames), txDb: names(ro.db.objectStoreNames) };
	seen.databases = (await indexedDB.databases()).filter(d => d.name === 'probe-app');

	// Another connection asks for the next app version: the open connection
	// hears of it in app versions, and the upgrade sees app versions too.
	const heard = new Promise(resolve => {
		db.onversionchange = ev => {
			seen.versionchange = { versions: [ev.oldVersion, ev.newVersion], target: names(ev.target.objectStoreNames), targetVersion: ev.target.version };
			db.close();
			resolve();
		};
	});
	const second = await open(2, (req, ev) => {
		seen.upgrade2 = {
			versions: [ev.oldVersion, ev.newVersion],
			tx: names(req.transaction.objectStoreNames),
			deleteInternal: errorName(() => req.result.deleteObjectStore('__idbmount_revs')),
		};
		req.result.createObjectStore('more');
	});
	await heard;
	seen.after = { db: names(second.db.objectStoreNames), version: second.db.version };
	second.db.close();
	// An exception in an upgrade listener aborts that upgrade, as it does for
	// a request that is not captured.
	seen.throwingUpgrade = await open(3, () => {
		throw new Error('the app\'s upgrade failed');
	}).then(() => 'opened', err => err.name);
	const third = await open();
	seen.afterThrow = { version: third.db.version, db: names(third.db.objectStoreNames) };
	third.db.close();
	return seen;
}

/* How many journal records captured transactions append: one per task or
 * event that wrote, and one for a whole cursor loop, whether the loop is
 * driven by an onsuccess handler or by a promise per step (as the idb
 * library does). Read through the library's internals: no app can. */
export async function journalRecords() {
	const { internals } = window.idbmount;
	const opened = await open0();
	const db = opened.db;
	const count = async () => {
		const tx = internals.transaction(db, [internals.JOURNAL], 'readonly');
		return settled(tx.objectStore(internals.JOURNAL).count());
	};
	const done = tx => new Promise(resolve => (tx.oncomplete = resolve));
	const out = {};
	let before = await count();
	let tx = db.transaction('rows', 'readwrite');
	for (let i = 0; i < 200; i++) tx.objectStore('rows').put({ id: i, n: 0 });
	await done(tx);
	out.oneTask = (await count()) - before;

	before = await count();
	tx = db.transaction('rows', 'readwrite');
	tx.objectStore('rows').get(1).onsuccess = () => tx.objectStore('rows').put({ id: 1, n: 1 });
	tx.objectStore('rows').put({ id: 2, n: 1 });
	await done(tx);
	out.twoEvents = (await count()) - before;

	before = await count();
	tx = db.transaction('rows', 'readwrite');
	tx.objectStore('rows').openCursor().onsuccess = ev => {
		const c = ev.target.result;
		if (!c) return;
		c.update({ ...c.value, n: 2 });
		c.continue();
	};
	await done(tx);
	out.handlerLoop = (await count()) - before;

	before = await count();
	tx = db.transaction('rows', 'readwrite');
	const finished = done(tx);
	const request = tx.objectStore('rows').openCursor();
	const step = () => new Promise(resolve => request.addEventListener('success', () => resolve(request.result), { once: true }));
	for (let c = await step(); c; c = await step()) {
		if (c.key % 2) c.delete();
		else c.update({ ...c.value, n: 3 });
		c.continue();
	}
	await finished;
	out.promiseLoop = (await count()) - before;
	db.close();
	return out;
}

function open0() {
	return new Promise((resolve, reject) => {
		const req = indexedDB.open('probe-journal', 1);
		req.onupgradeneeded = () => req.result.createObjectStore('rows', { keyPath: 'id' });
		req.onsuccess = () => resolve({ db: req.result });
		req.onerror = () => reject(req.error);
	});
}
