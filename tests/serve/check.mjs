// node check.mjs CHECKS_DIR: evaluates the checks lib.sh recorded, in order, one directory each:
//   name, want (expected HTTP status), status (the one received; 000 = no answer), js (a JavaScript
//   expression), body (the response body), curl_err (when curl failed).
// The expression sees `b` (the body parsed as JSON, or null), `text` (the raw body) and every helper
// of helpers.mjs; a falsy value or a throw fails the check. Prints one TAP-like line per check and
// exits 1 when any failed.
import fs from "node:fs";
import path from "node:path";
import * as h from "./helpers.mjs";

const dir = process.argv[2];
const read = (d, f) => (fs.existsSync(path.join(d, f)) ? fs.readFileSync(path.join(d, f), "utf8") : "");
let failures = 0, n = 0;
for (const entry of fs.readdirSync(dir).sort()) {
  const d = path.join(dir, entry);
  const name = read(d, "name"), want = read(d, "want"), status = read(d, "status"), expr = read(d, "js");
  const text = read(d, "body");
  ++n;
  let problem = null;
  if (status !== want) {
    problem = want === "0" ? "failed" : `HTTP ${status}, expected ${want}; body: ${text.slice(0, 300)} ${read(d, "curl_err")}`;
  } else {
    let b = null;
    try {
      b = JSON.parse(text);
    } catch {
      b = null;
    }
    try {
      const fn = new Function("b", "text", "h", ...Object.keys(h), `return (${expr});`);
      if (!fn(b, text, h, ...Object.values(h))) problem = `false: ${expr}\n    body: ${text.slice(0, 300)}`;
    } catch (e) {
      problem = `${e.message}\n    check: ${expr.slice(0, 300)}\n    body: ${text.slice(0, 300)}`;
    }
  }
  if (problem) {
    ++failures;
    console.log(`not ok - ${name}: ${problem}`);
  } else {
    console.log(`ok - ${name}`);
  }
}
console.log(`# ${n - failures}/${n} checks passed`);
process.exit(failures ? 1 : 0);
