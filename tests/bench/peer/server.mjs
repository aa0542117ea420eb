// The peer: a minimal Node HTTP server around jose.
//   POST /verify   Authorization: Bearer <agent token>  -> 200 {"sub", "dlg", "exp"} or 401
//   POST /verify-bound  Authorization: DPoP <bound agent token>, DPoP: <proof>  -> the same
//                  (token and proof verified, as the broker's bound exchange does, less Redis)
//   POST /issue    -> 200 {"token"}: a fresh agent token with the template's claims
//   GET  /healthz  -> 200 {"status": "ok"}
// Usage: node server.mjs PORT KEY.pem KID ISSUER TEMPLATE_CLAIMS.json
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
import { issueAgent, loadKeys, verifyAgent, verifyBound } from "./common.mjs";

const [port, pemPath, kid, issuer, templatePath] = process.argv.slice(2);
const keys = loadKeys(pemPath, kid);
const template = JSON.parse(readFileSync(templatePath, "utf8"));

function send(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(data) });
  res.end(data);
}

createServer((req, res) => {
  req.resume();
  req.on("end", async () => {
    try {
      if (req.url === "/verify") {
        const [scheme, token] = (req.headers.authorization || "").split(" ");
        if (scheme !== "Bearer" || !token) return send(res, 401, { error: "missing bearer token" });
        const claims = await verifyAgent(token, keys, issuer);
        return send(res, 200, { sub: claims.sub, dlg: claims.dlg, exp: claims.exp });
      }
      if (req.url === "/verify-bound") {
        const [scheme, token] = (req.headers.authorization || "").split(" ");
        const proof = req.headers.dpop;
        if (scheme !== "DPoP" || !token || !proof) return send(res, 401, { error: "missing proof" });
        const htu = `http://127.0.0.1:${port}/verify-bound`;
        const claims = await verifyBound(token, proof, keys, issuer, htu);
        return send(res, 200, { sub: claims.sub, dlg: claims.dlg, exp: claims.exp });
      }
      if (req.url === "/issue") return send(res, 200, { token: await issueAgent(template, keys) });
      if (req.url === "/healthz") return send(res, 200, { status: "ok" });
      return send(res, 404, { error: "not found" });
    } catch (err) {
      return send(res, 401, { error: String(err && err.code ? err.code : err) });
    }
  });
}).listen(Number(port), "127.0.0.1", () => console.log("listening"));
