// PLACEHOLDER: the real browser library (src/web/idbmount.js) is written on
// the `web` branch; the merge takes that file. This one only lets the
// daemon's embedding and /idbmount.js be built and tested.
export const placeholder = true;
