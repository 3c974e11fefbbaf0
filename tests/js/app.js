// A JavaScript application's own cache code, as the applications that share the cache write it:
// the entry key built from the params (names sorted, each value by JSON.stringify), the value
// written with JSON.stringify and read back with JSON.parse, through the `redis` npm client.
//
//   node app.js <redis url> read <endpoint> <params JSON>
//   node app.js <redis url> write <endpoint> <params JSON> <value JSON>
//
// Prints one JSON line: {key} for a write; {key, found, value, same} for a read, where `same`
// says the stored text is exactly what JSON.stringify writes for the value it holds.
"use strict";
const { createClient } = require("redis");

function entryKey(endpoint, params) {
  const parts = Object.keys(params)
    .sort()
    .map((name) => `${name}:${JSON.stringify(params[name])}`);
  return `api_cache:${endpoint}:${parts.length ? parts.join("|") : "no_params"}`;
}

async function main() {
  const [url, mode, endpoint, paramsJson, valueJson] = process.argv.slice(2);
  const key = entryKey(endpoint, JSON.parse(paramsJson));
  // No reconnecting: a server that is not there is an error, at once.
  const client = createClient({ url, socket: { connectTimeout: 10000, reconnectStrategy: false } });
  client.on("error", () => {}); // connect() and each command reject with the error themselves
  await client.connect();
  try {
    if (mode === "write") {
      await client.set(key, JSON.stringify(JSON.parse(valueJson)), { EX: 60 });
      return { key };
    }
    if (mode !== "read") throw new Error(`unknown mode ${mode}: use read or write`);
    const text = await client.get(key);
    if (text === null) return { key, found: false };
    const value = JSON.parse(text);
    return { key, found: true, value, same: JSON.stringify(value) === text };
  } finally {
    await client.close();
  }
}

main().then(
  (out) => console.log(JSON.stringify(out)),
  (err) => {
    console.error(`app.js: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
