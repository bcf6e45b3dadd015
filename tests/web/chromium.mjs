// chromium.mjs - Debian's Chromium as every browser test and benchmark
// launches it: the binary ($IDBMOUNT_CHROMIUM, else /usr/bin/chromium; no
// browser is downloaded) and the switches that keep a headless run quiet
// and alike from one machine to the next.
import fs from 'node:fs';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.IDBMOUNT_CHROMIUM || '/usr/bin/chromium';

export const CHROMIUM_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking',
	'--disable-component-update', '--disable-sync', '--no-first-run'];

// Launches it through playwright-core with CHROMIUM_ARGS and `extraArgs`;
// a missing binary fails with what installs it.
export function launchChromium(extraArgs = []) {
	if (!fs.existsSync(CHROMIUM))
		throw new Error(`${CHROMIUM} is missing: run mount-helpers/install-deps.sh --test`);
	return chromium.launch({ executablePath: CHROMIUM, args: [...CHROMIUM_ARGS, ...extraArgs] });
}
