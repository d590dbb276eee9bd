// node check.mjs BODY_FILE JS: evaluates the JavaScript expression JS with `b` (the body parsed as
// JSON, or null), `text` (the raw body) and every helper of helpers.mjs in scope; exits 1 with a
// message when it is falsy or throws. Used by lib.sh's `expect`.
import fs from "node:fs";
import * as h from "./helpers.mjs";

const [file, expr] = process.argv.slice(2);
const text = fs.readFileSync(file, "utf8");
let b = null;
try {
  b = JSON.parse(text);
} catch {
  b = null;
}
try {
  const fn = new Function("b", "text", "h", ...Object.keys(h), `return (${expr});`);
  const ok = fn(b, text, h, ...Object.values(h));
  if (!ok) {
    console.error(`false: ${expr}\n  body: ${text.slice(0, 300)}`);
    process.exit(1);
  }
} catch (e) {
  console.error(`${e.message}\n  check: ${expr}\n  body: ${text.slice(0, 300)}`);
  process.exit(1);
}
