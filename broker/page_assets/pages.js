// The broker's pages: the WebAuthn calls, and nothing else. No framework, no inline script.
"use strict";

const GRANT_DOMAIN = "vouch-grant-v1\0"; // broker/grant.py DOMAIN
const ACTION_DOMAIN = "vouch-action-v1\0"; // broker/actions.py DOMAIN
const NONCE_BYTES = 16;

function b64urlToBytes(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function bytesToB64url(buffer) {
  let text = "";
  for (const byte of new Uint8Array(buffer)) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function csrf() {
  return document.querySelector('meta[name="csrf-token"]').content;
}

function say(text, kind) {
  const status = document.getElementById("status");
  status.textContent = text; // text, never HTML
  status.className = "status" + (kind ? " " + kind : "");
}

async function post(path, body) {
  const answer = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body),
  });
  const data = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(data.detail || data.title || `the broker answered ${answer.status}`);
  return data;
}

function requestOptions(options) {
  const pk = options.publicKey || options;
  return {
    ...pk,
    challenge: b64urlToBytes(pk.challenge),
    allowCredentials: (pk.allowCredentials || []).map((c) => ({ ...c, id: b64urlToBytes(c.id) })),
  };
}

function creationOptions(options) {
  const pk = options.publicKey || options;
  return {
    ...pk,
    challenge: b64urlToBytes(pk.challenge),
    user: { ...pk.user, id: b64urlToBytes(pk.user.id) },
    excludeCredentials: (pk.excludeCredentials || []).map((c) => ({ ...c, id: b64urlToBytes(c.id) })),
  };
}

function assertionJson(credential) {
  const r = credential.response;
  return {
    id: credential.id,
    rawId: bytesToB64url(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: bytesToB64url(r.clientDataJSON),
      authenticatorData: bytesToB64url(r.authenticatorData),
      signature: bytesToB64url(r.signature),
      userHandle: r.userHandle ? bytesToB64url(r.userHandle) : null,
    },
    clientExtensionResults: credential.getClientExtensionResults(),
  };
}

function attestationJson(credential) {
  const r = credential.response;
  return {
    id: credential.id,
    rawId: bytesToB64url(credential.rawId),
    type: credential.type,
    response: {
      clientDataJSON: bytesToB64url(r.clientDataJSON),
      attestationObject: bytesToB64url(r.attestationObject),
    },
    clientExtensionResults: credential.getClientExtensionResults(),
  };
}

// Only a path on this origin: never "//elsewhere" or "https://elsewhere".
function localPath(next) {
  return next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/delegations";
}

async function signIn(button) {
  button.disabled = true;
  try {
    say("Touch your security key…");
    const ceremony = await post("/pages/signin/begin", {});
    const credential = await navigator.credentials.get({ publicKey: requestOptions(ceremony.options) });
    await post("/pages/signin/complete", { challenge_id: ceremony.challenge_id, credential: assertionJson(credential) });
    say("Signed in.", "ok");
    window.location.assign(localPath(button.dataset.next));
  } catch (error) {
    say(`Sign-in failed: ${error.message}`, "error");
    button.disabled = false;
  }
}

async function enroll(form) {
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    say("Touch your security key…");
    const email = form.elements.email.value;
    const ceremony = await post("/pages/enroll/begin", { email, code: form.elements.code.value });
    const credential = await navigator.credentials.create({ publicKey: creationOptions(ceremony.options) });
    await post("/pages/enroll/complete", { challenge_id: ceremony.challenge_id, credential: attestationJson(credential) });
    say("Your key is registered. Taking you to sign in…", "ok");
    window.location.assign("/signin");
  } catch (error) {
    say(`Registration failed: ${error.message}`, "error");
    button.disabled = false;
  }
}

// The challenge is nonce(16) || SHA-256(domain || canonical grant): check that the key is
// about to sign the grant this page shows, as `vouch delegate approve` does.
async function commitsTo(challenge, canonical, domain = GRANT_DOMAIN) {
  const message = new TextEncoder().encode(domain + canonical);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", message));
  const signed = challenge.slice(NONCE_BYTES);
  return signed.length === digest.length && signed.every((byte, i) => byte === digest[i]);
}

async function approve(button) {
  const grant = document.getElementById("grant");
  const shown = grant.dataset.grant;
  button.disabled = true;
  try {
    const proposal = await post(`/pages/approve/${encodeURIComponent(grant.dataset.code)}/begin`, {});
    const options = requestOptions(proposal.options);
    if (proposal.grant_canonical !== shown || !(await commitsTo(options.challenge, shown))) {
      throw new Error("the broker asked your key to sign a different grant than the one shown; nothing was signed");
    }
    say("Touch your security key and enter its PIN…");
    const credential = await navigator.credentials.get({ publicKey: options });
    const done = await post("/pages/approve/complete", {
      challenge_id: proposal.challenge_id, credential: assertionJson(credential), grant: shown,
    });
    say(`Approved: delegation ${done.delegation_id}. The agent receives its token now.`, "ok");
    document.getElementById("deny").disabled = true;
  } catch (error) {
    say(`Not approved: ${error.message}`, "error");
    button.disabled = false;
  }
}

// Adding a key without an invite: register the new key, then a key already registered
// approves exactly that registration (the add-key action names its challenge), as
// `vouch keys add` does. Two buttons, since the person swaps keys between the touches.
let pendingKey = null;

async function registerNewKey(button, next) {
  button.disabled = true;
  try {
    const ceremony = await post("/pages/keys/add/begin", {});
    const approval = ceremony.approval;
    const action = JSON.parse(approval.action_canonical);
    const approvalOptions = requestOptions(approval.options);
    const registration = ceremony.options.publicKey || ceremony.options;
    if (action.action !== "add-key" || action.enrollment !== registration.challenge
        || !(await commitsTo(approvalOptions.challenge, approval.action_canonical, ACTION_DOMAIN))) {
      throw new Error("the broker asked for an approval of something else; nothing was registered");
    }
    say("Touch the NEW key (and set or enter its PIN)…");
    const credential = await navigator.credentials.create({ publicKey: creationOptions(ceremony.options) });
    pendingKey = { challenge_id: ceremony.challenge_id, credential: attestationJson(credential), approvalOptions };
    say("New key registered on this page. Now touch a key you already have, to approve it.", "ok");
    next.disabled = false;
    next.focus();
  } catch (error) {
    say(`Not added: ${error.message}`, "error");
    button.disabled = false;
  }
}

async function approveNewKey(button, first) {
  button.disabled = true;
  try {
    say("Touch a key you already have (and enter its PIN)…");
    const approval = await navigator.credentials.get({ publicKey: pendingKey.approvalOptions });
    const done = await post("/pages/keys/add/complete", {
      challenge_id: pendingKey.challenge_id, credential: pendingKey.credential, approval: assertionJson(approval),
    });
    pendingKey = null;
    say(`Key ${done.cid} added.`, "ok");
    window.location.assign(`/keys?added=${encodeURIComponent(done.cid)}`);
  } catch (error) {
    say(`Not added: ${error.message}`, "error");
    pendingKey = null;
    first.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const signin = document.getElementById("signin");
  if (signin) signin.addEventListener("click", () => signIn(signin));
  const form = document.getElementById("enroll");
  if (form) form.addEventListener("submit", (event) => { event.preventDefault(); enroll(form); });
  const approveButton = document.getElementById("approve");
  if (approveButton) approveButton.addEventListener("click", () => approve(approveButton));
  const addNew = document.getElementById("add-new");
  const addApprove = document.getElementById("add-approve");
  if (addNew) {
    addNew.addEventListener("click", () => registerNewKey(addNew, addApprove));
    addApprove.addEventListener("click", () => approveNewKey(addApprove, addNew));
  }
});
