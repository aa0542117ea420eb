"""Who the broker talks about: one spelling for people's emails, agent names and agent subs.

Every door (HTTP routes, the delegation and exchange flows, the org policy file, the admin
revocation handles) checks identities here, so a look-alike spelling can never name a second
person or agent. An email becomes an STS source identity and a session-tag value, so its
normal form also fits both of those (at most 64 characters of a narrow ASCII alphabet).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from policies.errors import InvalidGrant

AGENT_NAME: Final = r"[a-z0-9][a-z0-9-]{0,31}"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
DOMAIN: Final = rf"{_LABEL}(?:\.{_LABEL})*"
# What looks like an address at all (RFC 5322 atext, lower case), and what the broker accepts:
# ASCII letters, digits and . _ + = - before the @, so it fits STS source identity and tags.
_ADDRESS = re.compile(rf"[a-z0-9!#$%&'*+/=?^_`{{|}}~.-]{{1,64}}@{DOMAIN}")
_USABLE = re.compile(rf"[a-z0-9][a-z0-9._+=-]{{0,63}}@{DOMAIN}")
_AGENT = re.compile(AGENT_NAME)
MAX_EMAIL: Final = 64
AGENT_PREFIX: Final = "agent."
PERSON_PREFIX: Final = "user."
"""A person's own web identity subject starts with it: never `agent.`, so no role trust
pattern (`agent.*`, `user.*`) can admit one kind of subject for the other."""


def normalize_email(value: str) -> str:
    """The one form emails are stored and compared in: NFKC, lower case, plain ASCII.

    NFKC folds compatibility forms (fullwidth U+FF41 becomes `a`), so both spellings are one
    person; letters NFKC keeps non-ASCII (Cyrillic U+0430 beside Latin `a`) are refused rather
    than compared, so a look-alike address can never match an admin or a rule.

    Raises:
        InvalidGrant: not a plain ASCII address of at most 64 characters after folding.
    """
    if not isinstance(value, str):
        raise InvalidGrant("email", f"{value!r} is not an email address")
    folded = unicodedata.normalize("NFKC", value.strip()).lower()
    if not folded.isascii():
        raise InvalidGrant("email", f"{value!r} has non-ASCII characters after NFKC; refused")
    if len(folded) > 254 or _ADDRESS.fullmatch(folded) is None:
        raise InvalidGrant("email", f"{value!r} is not an email address")
    if len(folded) > MAX_EMAIL or _USABLE.fullmatch(folded) is None:
        raise InvalidGrant(
            "email",
            f"{value!r} must be a plain address of at most {MAX_EMAIL} characters"
            " (letters, digits and . _ + = - before the @)",
        )
    return folded


def check_agent_name(agent: str) -> str:
    """The agent name, if it matches `[a-z0-9][a-z0-9-]{0,31}`.

    Raises:
        InvalidGrant: it does not.
    """
    if not isinstance(agent, str) or _AGENT.fullmatch(agent) is None:
        raise InvalidGrant(
            "agent", f"{agent!r} is not an agent name: 1-32 of a-z, 0-9 and -, not starting with -"
        )
    return agent


def agent_sub(agent: str, email: str) -> str:
    """The agent-specific subject `agent.<agent-name>.<email>` (both already in normal form)."""
    return f"{AGENT_PREFIX}{agent}.{email}"


def person_sub(email: str) -> str:
    """The subject of a person's own STS sessions, `user.<email>` (the email in normal form).

    It is also the RoleSessionName of the person's sessions when the email has at most 59
    characters (the email's alphabet is a subset of STS's); longer ones are shortened
    (`policies.attribution.person_session_name`).
    """
    return f"{PERSON_PREFIX}{email}"


def parse_agent_sub(sub: str) -> tuple[str, str]:
    """(agent name, normalized email) of any spelling of an agent sub.

    The name cannot contain a dot, so the first dot after the prefix ends it.

    Raises:
        InvalidGrant: not `agent.<agent-name>.<email>`.
    """
    prefix, _, rest = sub.strip().partition(".")
    name, _, email = rest.partition(".")
    if prefix != AGENT_PREFIX[:-1] or _AGENT.fullmatch(name) is None:
        raise InvalidGrant("agent", "an agent sub is agent.<agent-name>.<email>")
    return name, normalize_email(email)
