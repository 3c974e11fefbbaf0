// Writes the keys of tests/data/keys.jsonl as the JavaScript applications build them: their own
// key code, on node's JSON.stringify and String(). Each input line gives `endpoint`,
// `params_json` and, for the versioned scheme, `versioned_options`; the output line adds the keys.
//
//   node make_keys.js ../data/keys.jsonl            prints the file as node writes it
//   node make_keys.js ../data/keys.jsonl --check    exits 1 (naming the lines) where it differs
"use strict";
const fs = require("fs");

// The standard scheme: `{prefix}:{endpoint}:{params}`, params sorted by name (JavaScript's
// default sort), each `name:value`, joined with "|"; `no_params` when there are none.
function standardKey(endpoint, params, encode) {
  const parts = Object.keys(params)
    .sort()
    .map((name) => `${name}:${encode(params[name])}`);
  return `api_cache:${endpoint}:${parts.length ? parts.join("|") : "no_params"}`;
}

// The versioned scheme: `api:{version}:{endpoint}`, `:user_{id}`, `?` params by JSON.stringify
// joined with "&", `#` the headers the caller chose to include, joined with "&".
function versionedKey(endpoint, params, options) {
  let key = `api:${options.version || "v1"}:${endpoint}`;
  if (options.userId) key += `:user_${options.userId}`;
  const names = Object.keys(params).sort();
  if (names.length) key += "?" + names.map((n) => `${n}=${JSON.stringify(params[n])}`).join("&");
  const headers = options.includeHeaders && options.headers ? options.headers : {};
  const headerNames = Object.keys(headers).sort();
  if (headerNames.length) key += "#" + headerNames.map((n) => `${n}=${headers[n]}`).join("&");
  return key;
}

function withKeys(line) {
  const c = JSON.parse(line);
  const params = JSON.parse(c.params_json);
  const out = { endpoint: c.endpoint, params_json: c.params_json };
  if ("versioned_options" in c) {
    out.versioned_options = c.versioned_options;
    out.versioned = versionedKey(c.endpoint, params, c.versioned_options);
  } else {
    out.json = standardKey(c.endpoint, params, JSON.stringify);
    out.plain = standardKey(c.endpoint, params, String);
  }
  return JSON.stringify(out);
}

const [path, flag] = process.argv.slice(2);
// Split on "\n" only: a case holds a raw U+2028, which is no line break here.
const lines = fs.readFileSync(path, "utf8").split("\n").filter((l) => l.trim());
const made = lines.map(withKeys);
if (flag === "--check") {
  const differ = lines.map((l, i) => [i + 1, l, made[i]]).filter(([, l, m]) => l !== m);
  for (const [n, l, m] of differ) console.log(`line ${n}:\n  file: ${l}\n  node: ${m}`);
  console.log(`${lines.length} lines, ${differ.length} differ`);
  process.exit(differ.length ? 1 : 0);
}
process.stdout.write(made.join("\n") + "\n");
