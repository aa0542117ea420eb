// Shared by the peer's server and micro benchmark: the broker's own signing key (PKCS#8 PEM)
// and the checks the broker makes on an agent token, expressed with jose.
import { createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { SignJWT, jwtVerify } from "jose";

export const AGENT_TYP = "vouch-agent+jwt";
const REQUIRED = ["iss", "aud", "sub", "iat", "exp", "jti", "dlg", "models", "act"];

export function loadKeys(pemPath, kid) {
  const pem = readFileSync(pemPath);
  const privateKey = createPrivateKey(pem);
  const publicKeys = new Map([[kid, createPublicKey(privateKey)]]);
  return { kid, privateKey, publicKeys };
}

// Like broker.tokens.verify: typ and alg allow-list, key by kid, iss, aud, required claims,
// times with 30 s leeway.
export async function verifyAgent(token, keys, issuer) {
  const { payload } = await jwtVerify(
    token,
    async (header) => {
      const key = keys.publicKeys.get(header.kid);
      if (!key) throw new Error("token signed by an unknown key");
      return key;
    },
    {
      algorithms: ["ES256"],
      typ: AGENT_TYP,
      issuer,
      audience: issuer,
      requiredClaims: REQUIRED,
      clockTolerance: 30,
    },
  );
  return payload;
}

// Like broker.tokens.mint for an agent token: header {alg, typ, kid}, fresh jti and times.
export async function issueAgent(claims, keys) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ ...claims, iat: now, nbf: now, exp: now + 7200, jti: randomBytes(16).toString("base64url") })
    .setProtectedHeader({ alg: "ES256", typ: AGENT_TYP, kid: keys.kid })
    .sign(keys.privateKey);
}
