// The admin pages' tap-bound actions (an invite, a reinstatement). Loaded after pages.js,
// whose helpers (post, say, requestOptions, assertionJson, commitsTo, ACTION_DOMAIN) it uses.
"use strict";

// The challenge is nonce(16) || SHA-256(domain || canonical action): check that the key is
// about to approve the action this page shows, as the `vouch admin` commands do.
function approvesAction(challenge, canonical) {
  return commitsTo(challenge, canonical, ACTION_DOMAIN);
}

// The canonical form the broker signs: compact JSON, keys sorted (action, by, email).
function canonicalAction(action, by, email) {
  return JSON.stringify({ action, by, email });
}

// An email as the broker spells it (policies/identity.py normalize_email, for what it accepts).
function normalEmail(text) {
  return text.trim().normalize("NFKC").toLowerCase();
}

// Begin at `path`, refuse unless the proposal is `shown` and its challenge commits to it,
// then tap and complete, sending the action shown so the broker checks it too.
async function tapAction(path, body, shown) {
  const proposal = await post(`${path}/begin`, body);
  const options = requestOptions(proposal.options);
  if (proposal.action_canonical !== shown || !(await approvesAction(options.challenge, shown))) {
    throw new Error("the broker asked your key to approve a different action than the one shown; nothing was signed");
  }
  say("Touch your security key and enter its PIN…");
  const credential = await navigator.credentials.get({ publicKey: options });
  return post(`${path}/complete`, {
    challenge_id: proposal.challenge_id, credential: assertionJson(credential), action: shown,
  });
}

async function reinstate(button) {
  const section = document.getElementById("reinstate");
  button.disabled = true;
  try {
    await tapAction("/pages/admin/reinstate", { email: section.dataset.email }, section.dataset.action);
    say("Reinstated.", "ok");
    window.location.assign(section.dataset.done);
  } catch (error) {
    say(`Not reinstated: ${error.message}`, "error");
    button.disabled = false;
  }
}

async function invite(form) {
  const button = form.querySelector("button");
  const result = document.getElementById("invite-result");
  const email = normalEmail(form.elements.email.value);
  button.disabled = true;
  result.hidden = true;
  try {
    const shown = canonicalAction("invite", form.dataset.by, email);
    const done = await tapAction("/pages/admin/invites", { email }, shown);
    // Into the page only: not the address bar, not storage. Reloading forgets it.
    document.getElementById("invited-email").textContent = done.email;
    document.getElementById("invite-expires").textContent = done.expires;
    document.getElementById("invite-code").value = done.code;
    document.getElementById("invite-link").value = done.link;
    result.hidden = false;
    form.reset();
    say(`Invited ${done.email}. Copy the code or the link now: it is not shown again.`, "ok");
  } catch (error) {
    say(`Not invited: ${error.message}`, "error");
  }
  button.disabled = false;
}

document.addEventListener("DOMContentLoaded", () => {
  const reinstateButton = document.getElementById("reinstate-button");
  if (reinstateButton) reinstateButton.addEventListener("click", () => reinstate(reinstateButton));
  const inviteForm = document.getElementById("invite");
  if (inviteForm) inviteForm.addEventListener("submit", (event) => { event.preventDefault(); invite(inviteForm); });
  for (const id of ["invite-code", "invite-link"]) {
    const field = document.getElementById(id);
    if (field) field.addEventListener("focus", () => field.select());
  }
});
