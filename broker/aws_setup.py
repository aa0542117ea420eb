"""What AWS needs for this broker: the IAM OIDC provider, the roles' trust and permissions.

Two roles: the agents role (trust: `agent.*` subs) and, when the org policy lets people use
models themselves, the people role (trust: `user.*` subs). Each has the permissions for the
models its kind may get and the same permissions boundary; the broker's own policy lets it
write the revocation Deny on both.

`plan` computes the documents (pure); `apply` creates or updates them through boto3 and is
idempotent, so `vouch-broker aws-setup --apply` can be re-run after a policy change.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from broker.settings import Settings
from policies import Catalog, OrgPolicy, role_permissions_policy, trust_policy
from policies.invocation_log import STREAM as INVOCATION_STREAM
from policies.session_policy import AGENT_SUBJECTS, PEOPLE_SUBJECTS

PERMISSIONS_POLICY_NAME = "vouch-bedrock-models"
BOUNDARY_POLICY_NAME = "vouch-agents-boundary"
BROKER_POLICY_NAME = "vouch-broker-revocations"
BOUNDED_ACTIONS = ("bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream")


def _compact(document: dict[str, object]) -> str:
    return json.dumps(document, separators=(",", ":"), sort_keys=True)


def boundary_policy() -> str:
    """The agents role's permissions boundary: whatever any inline policy says (a broker
    writing revocations included), the role can never do more than invoke Bedrock models."""
    return _compact(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": list(BOUNDED_ACTIONS), "Resource": "*"}],
        }
    )


def broker_policy(role_arn: str, people_role_arn: str | None = None) -> str:
    """The broker's own least privilege: read, write and delete inline policies of the
    agents role and the people role only (the revocation policy), nothing else in IAM."""
    sid = "VouchRevocationsOnTheAgentsRole"
    resource: str | list[str] = role_arn
    if people_role_arn:
        sid = "VouchRevocationsOnTheAgentsAndPeopleRoles"
        resource = [role_arn, people_role_arn]
    return _compact(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": sid,
                    "Effect": "Allow",
                    "Action": ["iam:DeleteRolePolicy", "iam:GetRolePolicy", "iam:PutRolePolicy"],
                    "Resource": resource,
                }
            ],
        }
    )


@dataclass(frozen=True)
class RolePlan:
    """One role: its name, ARN, longest session, trust and permissions."""

    name: str
    arn: str
    max_session_s: int
    trust_policy: str
    permissions_policy: str
    description: str

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arn": self.arn,
            "max_session_duration": self.max_session_s,
            "trust_policy": json.loads(self.trust_policy),
            "permissions_policy": {
                "name": PERMISSIONS_POLICY_NAME,
                "document": json.loads(self.permissions_policy),
            },
            "permissions_boundary": {
                "name": BOUNDARY_POLICY_NAME,
                "document": json.loads(boundary_policy()),
            },
        }


@dataclass(frozen=True)
class AwsPlan:
    provider_url: str
    client_ids: tuple[str, ...]
    role_name: str
    role_arn: str
    max_session_s: int
    trust_policy: str
    permissions_policy: str
    account_id: str
    people: RolePlan | None = None
    """The people role, when the org policy lets anyone use models themselves."""

    @property
    def boundary_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:policy/{BOUNDARY_POLICY_NAME}"

    @property
    def agents(self) -> RolePlan:
        return RolePlan(
            name=self.role_name,
            arn=self.role_arn,
            max_session_s=self.max_session_s,
            trust_policy=self.trust_policy,
            permissions_policy=self.permissions_policy,
            description="Vouch: agents' scoped Bedrock access",
        )

    @property
    def roles(self) -> tuple[RolePlan, ...]:
        return (self.agents, self.people) if self.people else (self.agents,)

    def describe(self) -> dict[str, Any]:
        people_arn = self.people.arn if self.people else None
        return {
            "oidc_provider": {"url": self.provider_url, "client_ids": list(self.client_ids)},
            "role": self.agents.describe(),
            "people_role": self.people.describe() if self.people else None,
            "broker_policy": {
                "name": BROKER_POLICY_NAME,
                "attach_to": "the broker's own AWS principal (its instance, task or user role)",
                "document": json.loads(broker_policy(self.role_arn, people_arn)),
            },
        }


def plan(settings: Settings, org: OrgPolicy, catalog: Catalog) -> AwsPlan:
    """The provider, trust policy and permissions this configuration needs.

    Raises:
        SessionPolicyError: the issuer cannot be an IAM OIDC provider (https, no port), unless
            a local STS emulator is configured, where http://localhost is accepted.
    """
    aws = org.aws

    def trust(subjects: str) -> str:
        return trust_policy(
            issuer=settings.issuer,
            account_id=aws.account_id,
            audience=aws.sts_audience,
            allow_local_http=settings.aws.endpoint_url is not None,
            subjects=subjects,
        )

    def permissions(models: Iterable[str]) -> str:
        return role_permissions_policy(
            models, catalog, region=aws.region, account_id=aws.account_id
        )

    people = None
    if aws.people_role_name and org.use_models:
        people = RolePlan(
            name=aws.people_role_name,
            arn=aws.people_role_arn,
            max_session_s=aws.people_role_max_session_s,
            trust_policy=trust(PEOPLE_SUBJECTS),
            permissions_policy=permissions(org.use_models),
            description="Vouch: people's own Bedrock access, signed in with a security key",
        )
    return AwsPlan(
        provider_url=settings.issuer.rstrip("/"),
        client_ids=(aws.sts_audience,),
        role_name=aws.role_name,
        role_arn=aws.role_arn,
        max_session_s=aws.role_max_session_s,
        trust_policy=trust(AGENT_SUBJECTS),
        permissions_policy=permissions(org.allowed_models),
        account_id=aws.account_id,
        people=people,
    )


def apply(aws_plan: AwsPlan, iam: Any) -> list[str]:
    """Create or update the provider and roles; returns what was done, one line each."""
    done = [_ensure_provider(aws_plan, iam)]
    boundary = _ensure_managed(iam, BOUNDARY_POLICY_NAME, boundary_policy(), aws_plan.account_id)
    for role in aws_plan.roles:
        done += _ensure_role(role, iam, boundary)
    people_arn = aws_plan.people.arn if aws_plan.people else None
    broker = _ensure_managed(
        iam, BROKER_POLICY_NAME, broker_policy(aws_plan.role_arn, people_arn), aws_plan.account_id
    )
    done.append(f"managed policy {broker} ready: attach it to the broker's own AWS principal")
    return done


def _ensure_role(role: RolePlan, iam: Any, boundary: str) -> list[str]:
    """Create or update one role: trust, max session, permissions, boundary."""
    done = []
    try:
        iam.get_role(RoleName=role.name)
    except iam.exceptions.NoSuchEntityException:
        iam.create_role(
            RoleName=role.name,
            AssumeRolePolicyDocument=role.trust_policy,
            MaxSessionDuration=role.max_session_s,
            Description=role.description,
        )
        done.append(f"created role {role.name}")
    else:
        iam.update_assume_role_policy(RoleName=role.name, PolicyDocument=role.trust_policy)
        iam.update_role(RoleName=role.name, MaxSessionDuration=role.max_session_s)
        done.append(f"updated role {role.name} trust policy and max session")
    iam.put_role_policy(
        RoleName=role.name,
        PolicyName=PERMISSIONS_POLICY_NAME,
        PolicyDocument=role.permissions_policy,
    )
    done.append(f"put inline policy {PERMISSIONS_POLICY_NAME} on {role.name}")
    iam.put_role_permissions_boundary(RoleName=role.name, PermissionsBoundary=boundary)
    done.append(f"set permissions boundary {BOUNDARY_POLICY_NAME} on {role.name}")
    return done


def _ensure_managed(iam: Any, name: str, document: str, account_id: str) -> str:
    """Create the managed policy, or make `document` its default version; returns its ARN."""
    arn = f"arn:aws:iam::{account_id}:policy/{name}"
    try:
        iam.get_policy(PolicyArn=arn)
    except iam.exceptions.NoSuchEntityException:
        iam.create_policy(PolicyName=name, PolicyDocument=document)
        return arn
    versions = iam.list_policy_versions(PolicyArn=arn)["Versions"]
    old = sorted((v for v in versions if not v["IsDefaultVersion"]), key=lambda v: v["CreateDate"])
    if len(versions) >= 5:  # IAM keeps five versions of a managed policy
        iam.delete_policy_version(PolicyArn=arn, VersionId=old[0]["VersionId"])
    iam.create_policy_version(PolicyArn=arn, PolicyDocument=document, SetAsDefault=True)
    return arn


def _ensure_provider(aws_plan: AwsPlan, iam: Any) -> str:
    host_path = urlsplit(aws_plan.provider_url)
    wanted = f"{host_path.netloc}{host_path.path}"
    for entry in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        arn = entry["Arn"]
        if arn.endswith(f":oidc-provider/{wanted}"):
            current = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
            for client_id in set(aws_plan.client_ids) - set(current.get("ClientIDList", [])):
                iam.add_client_id_to_open_id_connect_provider(
                    OpenIDConnectProviderArn=arn, ClientID=client_id
                )
            return f"OIDC provider {wanted} present"
    iam.create_open_id_connect_provider(
        Url=aws_plan.provider_url, ClientIDList=list(aws_plan.client_ids)
    )
    return f"created OIDC provider {wanted}"


def ensure_invocation_log_group(logs: Any, group: str) -> list[str]:
    """The CloudWatch Logs group and stream Bedrock's invocation logging writes to, in the
    local AWS emulator (`vouch-broker dev`): there nothing else creates them, and the demo
    and tests write records into them as Bedrock would. On a real account Bedrock creates
    the stream once logging is configured (docs/usage.md)."""
    done = []
    try:
        logs.create_log_group(logGroupName=group)
        done.append(f"created log group {group}")
    except logs.exceptions.ResourceAlreadyExistsException:
        done.append(f"log group {group} present")
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=group, logStreamName=INVOCATION_STREAM)
    return done
