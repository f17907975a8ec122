"""spotmap/iam.py against the examples of AWS's documentation:

- Policy evaluation logic:
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html
- Condition operators:
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html
- Multiple keys and values, set operators:
  https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-logic-multiple-context-keys-or-values.html
- S3 ListBucket with s3:prefix ("Example bucket policies using condition keys"):
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/amazon-s3-policy-keys.html
- Enforcing TLS with aws:SecureTransport:
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html
- iam:PassRole with iam:PassedToService:
  https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html
- ECS cluster condition key (ArnEquals ecs:cluster):
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/security_iam_id-based-policy-examples.html
"""

from __future__ import annotations

from typing import Any

import pytest

from spotmap.iam import Decision, Principal, Request, Undecidable, arn_like, evaluate

ACCOUNT = "111122223333"
ROLE = Principal(f"arn:aws:iam::{ACCOUNT}:role/reader", ACCOUNT)
BUCKET = "arn:aws:s3:::amzn-s3-demo-bucket"


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def tls() -> dict[str, list[str] | None]:
    return {"aws:SecureTransport": ["true"]}


# ------------------------------------------------------------------------------------ evaluation logic
def test_nothing_allows_is_an_implicit_deny() -> None:
    # GIVEN an identity policy for GetObject only
    identity = policy(allow("s3:GetObject", f"{BUCKET}/*"))
    # WHEN the role asks for PutObject
    decision = evaluate(Request("s3:PutObject", f"{BUCKET}/a", tls()), [identity], None, ROLE)
    # THEN nothing allows it: implicitly denied
    assert decision is Decision.IMPLICIT_DENY


def test_an_explicit_deny_in_the_resource_policy_overrides_an_identity_allow() -> None:
    # GIVEN an identity allow and the bucket policy's TLS deny (S3 security best practices)
    identity = policy(allow("s3:GetObject", f"{BUCKET}/*"))
    bucket = policy(
        {
            "Sid": "RestrictToTLSRequestsOnly",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [BUCKET, f"{BUCKET}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    )
    # WHEN the request came without TLS, then with it
    plain = evaluate(
        Request("s3:GetObject", f"{BUCKET}/a", {"aws:SecureTransport": ["false"]}), [identity], bucket, ROLE
    )
    secure = evaluate(Request("s3:GetObject", f"{BUCKET}/a", tls()), [identity], bucket, ROLE)
    # THEN the deny wins without TLS, and the identity allow stands with it
    assert plain is Decision.EXPLICIT_DENY
    assert secure is Decision.ALLOW


def test_same_account_resource_policy_naming_the_role_allows_by_itself() -> None:
    # GIVEN no identity policy, and a bucket policy that grants the role (same account: either suffices)
    bucket = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": ROLE.arn},
            "Action": "s3:GetObject",
            "Resource": f"{BUCKET}/*",
        }
    )
    # WHEN / THEN the role may read; another role of the account may not
    assert evaluate(Request("s3:GetObject", f"{BUCKET}/a", tls()), [], bucket, ROLE) is Decision.ALLOW
    other = Principal(f"arn:aws:iam::{ACCOUNT}:role/other", ACCOUNT)
    assert (
        evaluate(Request("s3:GetObject", f"{BUCKET}/a", tls()), [], bucket, other) is Decision.IMPLICIT_DENY
    )


def test_a_resource_policy_naming_the_account_delegates_to_identity_policies() -> None:
    # GIVEN a bucket policy granting the account (root) and no identity policy
    bucket = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "s3:GetObject",
            "Resource": f"{BUCKET}/*",
        }
    )
    # WHEN the role asks / THEN it is not allowed: the account's grant is up to its identity policies
    assert evaluate(Request("s3:GetObject", f"{BUCKET}/a", tls()), [], bucket, ROLE) is Decision.IMPLICIT_DENY


def test_actions_match_case_insensitively_with_wildcards_and_not_action() -> None:
    # GIVEN a statement on "S3:get*" and one allowing everything but s3 deletes
    wildcard = policy(allow("S3:get*", "*"))
    not_action = policy({"Effect": "Allow", "NotAction": "s3:Delete*", "Resource": "*"})
    # THEN
    assert evaluate(Request("s3:GetObject", f"{BUCKET}/a", tls()), [wildcard]) is Decision.ALLOW
    assert evaluate(Request("s3:PutObject", f"{BUCKET}/a", tls()), [wildcard]) is Decision.IMPLICIT_DENY
    assert evaluate(Request("s3:PutObject", f"{BUCKET}/a", tls()), [not_action]) is Decision.ALLOW
    assert evaluate(Request("s3:DeleteObject", f"{BUCKET}/a", tls()), [not_action]) is Decision.IMPLICIT_DENY


def test_resources_match_case_sensitively_with_star_and_question_mark() -> None:
    # GIVEN a grant on jobs/*/job.json and one on file-?.csv
    identity = policy(allow("s3:GetObject", [f"{BUCKET}/jobs/*/job.json", f"{BUCKET}/file-?.csv"]))

    def decide(key: str) -> Decision:
        return evaluate(Request("s3:GetObject", f"{BUCKET}/{key}", tls()), [identity])

    # THEN `*` spans any characters, `?` exactly one, and case matters
    assert decide("jobs/a-1/job.json") is Decision.ALLOW
    assert decide("jobs/a-1/items.json") is Decision.IMPLICIT_DENY
    assert decide("file-1.csv") is Decision.ALLOW
    assert decide("file-12.csv") is Decision.IMPLICIT_DENY
    assert decide("JOBS/a/job.json") is Decision.IMPLICIT_DENY


# ------------------------------------------------------------------------------------ conditions
def listing(prefix: str | None) -> Request:
    return Request(
        "s3:ListBucket",
        BUCKET,
        {**tls(), "s3:prefix": None if prefix is None else [prefix], "s3:delimiter": None},
    )


def test_list_bucket_is_limited_to_a_prefix_and_a_missing_prefix_is_denied() -> None:
    # GIVEN ListBucket allowed for prefixes "home/*" (S3's s3:prefix example)
    identity = policy(allow("s3:ListBucket", BUCKET, {"StringLike": {"s3:prefix": ["home/*", ""]}}))
    # THEN a listing under home/ or of the empty prefix is allowed; elsewhere, or without a prefix
    # (the key is absent: a positive operator is false), it is not
    assert evaluate(listing("home/user/"), [identity]) is Decision.ALLOW
    assert evaluate(listing(""), [identity]) is Decision.ALLOW
    assert evaluate(listing("work/"), [identity]) is Decision.IMPLICIT_DENY
    assert evaluate(listing(None), [identity]) is Decision.IMPLICIT_DENY


def test_negated_operators_are_true_for_a_missing_key_and_if_exists_too() -> None:
    # GIVEN a deny unless the prefix is home/*, and an allow when the delimiter, if any, is "/"
    deny = {
        "Effect": "Deny",
        "Action": "s3:ListBucket",
        "Resource": BUCKET,
        "Condition": {"StringNotLike": {"s3:prefix": "home/*"}},
    }
    allow_all = allow("s3:ListBucket", BUCKET, {"StringEqualsIfExists": {"s3:delimiter": "/"}})
    identity = policy(allow_all, deny)
    # THEN without a prefix the negated condition holds (key absent) and the deny applies
    assert evaluate(listing(None), [identity]) is Decision.EXPLICIT_DENY
    assert evaluate(listing("home/a"), [identity]) is Decision.ALLOW
    # AND ...IfExists is true when the key is missing, and compares when present
    with_delimiter = Request(
        "s3:ListBucket", BUCKET, {**tls(), "s3:prefix": ["home/"], "s3:delimiter": [","]}
    )
    assert evaluate(with_delimiter, [identity]) is Decision.IMPLICIT_DENY


def test_values_of_one_key_are_ored_and_keys_and_operators_are_anded() -> None:
    # GIVEN a PassRole grant for two services and one role path
    identity = policy(
        allow(
            "iam:PassRole",
            f"arn:aws:iam::{ACCOUNT}:role/*",
            {
                "StringEquals": {"iam:PassedToService": ["ecs-tasks.amazonaws.com", "ec2.amazonaws.com"]},
                "ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/read*"},
            },
        )
    )

    def passing(service: str, caller: str) -> Decision:
        context = {"iam:PassedToService": [service], "aws:PrincipalArn": [caller]}
        return evaluate(Request("iam:PassRole", f"arn:aws:iam::{ACCOUNT}:role/task", context), [identity])

    # THEN either service passes with the right caller; any key failing fails the statement
    assert passing("ecs-tasks.amazonaws.com", ROLE.arn) is Decision.ALLOW
    assert passing("ec2.amazonaws.com", ROLE.arn) is Decision.ALLOW
    assert passing("lambda.amazonaws.com", ROLE.arn) is Decision.IMPLICIT_DENY
    assert passing("ecs-tasks.amazonaws.com", f"arn:aws:iam::{ACCOUNT}:role/writer") is Decision.IMPLICIT_DENY


def test_arn_equals_compares_each_part_of_the_arn() -> None:
    # GIVEN RunTask limited to one cluster (ECS's ecs:cluster example)
    cluster = f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/default"
    identity = policy(allow("ecs:RunTask", "*", {"ArnEquals": {"ecs:cluster": cluster}}))

    def run(on: str) -> Decision:
        return evaluate(
            Request(
                "ecs:RunTask", f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/w:1", {"ecs:cluster": [on]}
            ),
            [identity],
        )

    # THEN only that cluster's ARN matches
    assert run(cluster) is Decision.ALLOW
    assert run(f"arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/other") is Decision.IMPLICIT_DENY
    assert run(f"arn:aws:ecs:us-west-2:{ACCOUNT}:cluster/default") is Decision.IMPLICIT_DENY
    assert arn_like("arn:aws:ecs:*:*:cluster/*", cluster)
    assert not arn_like("arn:aws:ecs:*:*:cluster/*", "not-an-arn")


def test_set_operators_on_multivalued_keys() -> None:
    # GIVEN tags allowed only from a set (ForAllValues) and a required tag key (ForAnyValue)
    only_known = policy(
        allow(
            "ecs:TagResource",
            "*",
            {"ForAllValues:StringEquals": {"aws:TagKeys": ["environment", "cost-center"]}},
        )
    )
    needs_one = policy(
        allow("ecs:TagResource", "*", {"ForAnyValue:StringEquals": {"aws:TagKeys": ["environment"]}})
    )

    def tagging(keys: list[str] | None, identity: dict[str, Any]) -> Decision:
        return evaluate(
            Request("ecs:TagResource", "arn:aws:ecs:us-east-1:1:task/c/t", {"aws:TagKeys": keys}), [identity]
        )

    # THEN ForAllValues: every request value must be in the set, vacuously true without the key
    assert tagging(["environment"], only_known) is Decision.ALLOW
    assert tagging(["environment", "owner"], only_known) is Decision.IMPLICIT_DENY
    assert tagging(None, only_known) is Decision.ALLOW
    # AND ForAnyValue: at least one value, false without the key
    assert tagging(["owner", "environment"], needs_one) is Decision.ALLOW
    assert tagging(["owner"], needs_one) is Decision.IMPLICIT_DENY
    assert tagging(None, needs_one) is Decision.IMPLICIT_DENY


def test_null_tests_whether_a_key_is_present() -> None:
    # GIVEN a deny of uploads that do not ask for server-side encryption
    identity = policy(
        allow("s3:PutObject", f"{BUCKET}/*"),
        {
            "Effect": "Deny",
            "Action": "s3:PutObject",
            "Resource": f"{BUCKET}/*",
            "Condition": {"Null": {"s3:x-amz-server-side-encryption": "true"}},
        },
    )

    def put(encryption: str | None) -> Decision:
        context = {"s3:x-amz-server-side-encryption": None if encryption is None else [encryption]}
        return evaluate(Request("s3:PutObject", f"{BUCKET}/a", context), [identity])

    assert put(None) is Decision.EXPLICIT_DENY
    assert put("AES256") is Decision.ALLOW


def test_numeric_and_ip_operators() -> None:
    identity = policy(
        allow(
            "s3:ListBucket",
            BUCKET,
            {"NumericLessThanEquals": {"s3:max-keys": "10"}, "IpAddress": {"aws:SourceIp": "192.0.2.0/24"}},
        )
    )

    def listing_of(max_keys: str, ip: str) -> Decision:
        return evaluate(
            Request("s3:ListBucket", BUCKET, {"s3:max-keys": [max_keys], "aws:SourceIp": [ip]}), [identity]
        )

    assert listing_of("10", "192.0.2.7") is Decision.ALLOW
    assert listing_of("11", "192.0.2.7") is Decision.IMPLICIT_DENY
    assert listing_of("5", "203.0.113.1") is Decision.IMPLICIT_DENY


# ------------------------------------------------------------------------------------ undecidable
@pytest.mark.parametrize(
    ("condition", "context"),
    [
        ({"StringSoundsLike": {"s3:prefix": "a"}}, {"s3:prefix": ["a"]}),  # unknown operator
        ({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}, {"aws:CurrentTime": ["x"]}),
        ({"StringEquals": {"s3:TlsVersion": "1.2"}}, {"s3:prefix": ["a"]}),  # a key the mapping does not know
        ({"ForSomeValues:StringEquals": {"s3:prefix": "a"}}, {"s3:prefix": ["a"]}),
    ],
)
def test_what_cannot_be_decided_is_an_error_never_an_allow(
    condition: dict[str, Any], context: dict[str, Any]
) -> None:
    identity = policy(allow("s3:ListBucket", BUCKET, condition))
    with pytest.raises(Undecidable):
        evaluate(Request("s3:ListBucket", BUCKET, context), [identity])


def test_policy_variables_are_undecidable() -> None:
    identity = policy(allow("s3:GetObject", f"{BUCKET}/home/${{aws:username}}/*"))
    with pytest.raises(Undecidable):
        evaluate(Request("s3:GetObject", f"{BUCKET}/home/a/b", {}), [identity])


def test_a_statement_that_does_not_apply_is_not_evaluated_further() -> None:
    # GIVEN a statement on another action with a condition the request cannot decide
    identity = policy(allow("s3:PutObject", "*", {"StringEquals": {"s3:unknown-key": "x"}}))
    # WHEN a GetObject is evaluated / THEN the statement is skipped before its condition
    assert evaluate(Request("s3:GetObject", f"{BUCKET}/a", {}), [identity]) is Decision.IMPLICIT_DENY
