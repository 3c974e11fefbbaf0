// A JavaScript application's own cache code, as the applications that share the cache write it:
// the entry key built from the params (names sorted, each value by JSON.stringify), the value
// written with JSON.stringify and read back with JSON.parse, through the `redis` npm client.
//
//   node app.js <redis url> read <endpoint> <params JSON>
//   node app.js <redis url> write <endpoint> <params JSON> <value JSON>
//   node app.js <redis url> response-times
//   node app.js <redis url> points <series name> <JSON [[timestamp ms, value, tags object], ...]>
//
// Prints one JSON line: {key} for a write; {key, found, value, same} for a read, where `same`
// says the stored text is exactly what JSON.stringify writes for the value it holds.
// `response-times` reads the response-time log as a JavaScript dashboard does (the fields it
// knows, by name) and prints {members, hits, medianMs}. `points` writes time-series points as
// the applications' metrics code does: the raw point and the meta hash, no aggregate buckets;
// it prints {written}.
"use strict";
const { createClient } = require("redis");

function entryKey(endpoint, params) {
  const parts = Object.keys(params)
    .sort()
    .map((name) => `${name}:${JSON.stringify(params[name])}`);
  return `api_cache:${endpoint}:${parts.length ? parts.join("|") : "no_params"}`;
}

async function responseTimes(client) {
  const members = await client.zRange("cache_metrics:response_times", 0, -1);
  const calls = members.map((text) => {
    const { endpoint, cacheKey, responseTime, hit } = JSON.parse(text);
    return { endpoint, cacheKey, responseTime, hit };
  });
  const times = calls.map((c) => c.responseTime).sort((a, b) => a - b);
  return {
    members: calls.length,
    hits: calls.filter((c) => c.hit === true).length,
    medianMs: times.length ? times[Math.floor((times.length - 1) / 2)] : null,
  };
}

async function writePoints(client, name, points) {
  for (const [timestamp, value, tags] of points) {
    const member = JSON.stringify({ value, timestamp, tags: JSON.stringify(tags || {}) });
    await client.zAdd(`metric:${name}`, { score: timestamp, value: member });
    await client.hSet(`meta:${name}`, {
      lastUpdate: String(timestamp),
      updatedAt: new Date(timestamp).toISOString(),
    });
  }
  return { written: points.length };
}

async function main() {
  const [url, mode, endpoint, paramsJson, valueJson] = process.argv.slice(2);
  // No reconnecting: a server that is not there is an error, at once.
  const client = createClient({ url, socket: { connectTimeout: 10000, reconnectStrategy: false } });
  client.on("error", () => {}); // connect() and each command reject with the error themselves
  await client.connect();
  try {
    if (mode === "response-times") return await responseTimes(client);
    if (mode === "points") return await writePoints(client, endpoint, JSON.parse(paramsJson));
    const key = entryKey(endpoint, JSON.parse(paramsJson));
    if (mode === "write") {
      await client.set(key, JSON.stringify(JSON.parse(valueJson)), { EX: 60 });
      return { key };
    }
    if (mode !== "read") throw new Error(`unknown mode ${mode}: use read, write, response-times or points`);
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
