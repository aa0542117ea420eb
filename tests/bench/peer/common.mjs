// Shared by the peer's server and micro benchmark: the broker's own signing key (PKCS#8 PEM)
// and the checks the broker makes on an agent token, expressed with jose.
import { createHash, createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { EmbeddedJWK, SignJWT, calculateJwkThumbprint, jwtVerify } from "jose";

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

// Like the broker's exchange of a bound token (DPoP, RFC 9449), without Redis: the agent
// token verified as above, then its proof: typ dpop+jwt, an asymmetric alg, signed by the
// jwk in its header, that key's thumbprint = the token's cnf.jkt, htm, htu, iat within 60 s
// (30 s leeway ahead) and ath = the token's hash.
export async function verifyBound(token, proof, keys, issuer, htu) {
  const claims = await verifyAgent(token, keys, issuer);
  const { payload, protectedHeader } = await jwtVerify(proof, EmbeddedJWK, {
    algorithms: ["ES256", "ES384", "ES512", "EdDSA"],
    typ: "dpop+jwt",
    requiredClaims: ["jti", "htm", "htu", "iat", "ath"],
    maxTokenAge: 60,
    clockTolerance: 30,
  });
  const jkt = await calculateJwkThumbprint(protectedHeader.jwk, "sha256");
  if (!claims.cnf || claims.cnf.jkt !== jkt) throw new Error("proof of another key");
  if (payload.htm !== "POST" || payload.htu !== htu) throw new Error("proof for another request");
  if (payload.ath !== createHash("sha256").update(token).digest("base64url")) {
    throw new Error("proof for another token");
  }
  return claims;
}
