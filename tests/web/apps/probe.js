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
