// In-process throughput of jose on this core: verify the broker's agent token, issue new ones.
// Usage: node micro.mjs KEY.pem KID ISSUER TOKEN_FILE TEMPLATE_CLAIMS.json SECONDS
// Prints one JSON line: ops/s and CPU microseconds per op (process CPU, all threads).
import { readFileSync } from "node:fs";
import { issueAgent, loadKeys, verifyAgent } from "./common.mjs";

const [pemPath, kid, issuer, tokenPath, templatePath, seconds] = process.argv.slice(2);
const keys = loadKeys(pemPath, kid);
const token = readFileSync(tokenPath, "utf8").trim();
const template = JSON.parse(readFileSync(templatePath, "utf8"));

async function rate(fn) {
  for (let i = 0; i < 500; i++) await fn(); // warm up the JIT
  const started = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  const deadline = started + BigInt(Math.round(Number(seconds) * 1e9));
  let done = 0;
  while (process.hrtime.bigint() < deadline) {
    for (let i = 0; i < 100; i++) await fn();
    done += 100;
  }
  const wall = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  return { per_s: done / wall, cpu_us_per_op: (used.user + used.system) / done };
}

const verify = await rate(() => verifyAgent(token, keys, issuer));
const issue = await rate(() => issueAgent(template, keys));
console.log(JSON.stringify({ node: process.version, verify, issue }));
