"""Pure policy library: model catalog, org policy, session-policy compiler, IAM evaluator.

No network, no Redis, no AWS calls; the only I/O is reading a TOML file the caller names.
What the broker calls:

Catalog (catalog.py)
    Catalog.builtin() -> Catalog
    Catalog.load(path, base=None) -> Catalog              raises PolicyFileError
    Catalog.resolve(name) -> str                          canonical id; raises UnknownModel
    Catalog.entry(canonical_id) -> Entry                  kind, model_id, regions, ...
    Catalog.ids -> tuple[str, ...]

Org policy (org.py, org_file.py)
    load_org_policy(path, catalog) -> OrgPolicy           raises PolicyFileError
    OrgPolicy.authorize(email, agent, models, ttl_s) -> Authorized
        raises InvalidGrant, UnknownModel, ModelNotCallable, GrantDenied
    OrgPolicy.authorize_use(email, models=None) -> SelfUse     a person's own use
        raises InvalidGrant, UnknownModel, ModelNotCallable, GrantDenied
    OrgPolicy.is_admin(email) -> bool
    OrgPolicy.models_for(email) -> tuple[str, ...]
    OrgPolicy.delegation_limits(email), .use_limits(email) -> {canonical id: seconds}
    OrgPolicy.allowed_models, .use_models, .max_token_lifetime_s, .default_ttl_s,
        .require_user_verification
    OrgPolicy.aws -> AwsAccount                           .account_id, .role_arn, .region,
                                                          .sts_audience, .role_max_session_s,
                                                          .people_role_arn,
                                                          .people_role_max_session_s

Identities (identity.py)
    normalize_email(email) -> str                         raises InvalidGrant
    check_agent_name(name) -> str                         raises InvalidGrant
    agent_sub(name, email) -> str;  parse_agent_sub(sub) -> (name, email)  raises InvalidGrant
    person_sub(email) -> str                              `user.<email>`: a person's own sub

IAM documents (session_policy.py)
    compile_session_policy(model_ids, catalog, *, region, account_id, expires_at) -> str
        raises UnknownModel, ModelNotCallable, SessionPolicyTooLarge
    role_permissions_policy(model_ids, catalog, *, region, account_id) -> str
    trust_policy(*, issuer, account_id, audience="sts.amazonaws.com",
                 subjects=AGENT_SUBJECTS | PEOPLE_SUBJECTS) -> str

IAM evaluator (evaluator.py, conditions.py, resources.py)
    evaluate(Request(action, resource, context), identity_policies, session_policies=None)
        -> Decision(outcome, statements, reason); raises EvaluationError

Durations (duration.py)
    parse_duration("8h") -> 28800                         seconds; None if not a duration

Usage (attribution.py, invocation_log.py, prices.py, usage.py)
    agent_session_name(dlg_id, agent, email), person_session_name(email) -> str
    attribute(identity_arn, BrokerRoles) -> Attribution   agent | person | foreign
    parse_record(line) -> InvocationRecord                raises InvalidRecord
    PriceTable.builtin(), .load(path, base), .price_of(model_id, catalog); cost(price, tokens)
    Tally().add(record); summarize(records, by, attribute, price_of) -> [UsageRow]

Errors (errors.py): one tree under PoliciesError, each class with a stable `code`.
"""

from policies.catalog import Catalog, Entry
from policies.duration import parse_duration
from policies.errors import (
    CatalogError,
    EvaluationError,
    GrantDenied,
    InvalidGrant,
    ModelNotCallable,
    PoliciesError,
    PolicyFileError,
    Problem,
    SessionPolicyError,
    SessionPolicyTooLarge,
    UnknownModel,
)
from policies.evaluator import Decision, Outcome, Request, StatementRef, evaluate
from policies.identity import (
    agent_sub,
    check_agent_name,
    normalize_email,
    parse_agent_sub,
    person_sub,
)
from policies.org import Authorized, AwsAccount, Limits, OrgPolicy, SelfUse
from policies.org_file import load_org_policy
from policies.session_policy import compile_session_policy, role_permissions_policy, trust_policy

__all__ = [
    "Authorized",
    "AwsAccount",
    "Catalog",
    "CatalogError",
    "Decision",
    "Entry",
    "EvaluationError",
    "GrantDenied",
    "InvalidGrant",
    "Limits",
    "ModelNotCallable",
    "OrgPolicy",
    "Outcome",
    "PoliciesError",
    "PolicyFileError",
    "Problem",
    "Request",
    "SelfUse",
    "SessionPolicyError",
    "SessionPolicyTooLarge",
    "StatementRef",
    "UnknownModel",
    "agent_sub",
    "check_agent_name",
    "compile_session_policy",
    "evaluate",
    "load_org_policy",
    "normalize_email",
    "parse_agent_sub",
    "parse_duration",
    "person_sub",
    "role_permissions_policy",
    "trust_policy",
]
