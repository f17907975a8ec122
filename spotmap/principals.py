"""Who is calling the local cloud: each principal of the stack (a function's role, the state machine's
role, the worker task's role) gets credentials of its own, from which the endpoint tells the role, as
AWS tells it from a signature. The user of the local cloud (CLI, tests, the AWS CLI) calls with the
admin credentials, which stand for the account's own administrator.

Local credentials are not secrets: they only name a role. moto checks no signature.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

ADMIN_ACCESS_KEY_ID = "testing"  # moto's conventional fake key: the account's administrator
SECRET_ACCESS_KEY = "testing"  # noqa: S105 - moto's fake key, never a real secret
ADMIN_SESSION_TOKEN = "testing"  # noqa: S105 - likewise
# the admin's credentials as environment variables: the CLI's and tests' one fake-credentials constant
ADMIN_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": ADMIN_ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    "AWS_SESSION_TOKEN": ADMIN_SESSION_TOKEN,
}
_PREFIX = "ASIASPOTMAP"  # "ASIA": temporary credentials, as an assumed role's are


@dataclass(frozen=True)
class RoleCredentials:
    """The temporary credentials of one role of the stack (what STS AssumeRole would hand out)."""

    role_logical_id: str
    access_key_id: str
    secret_access_key: str = SECRET_ACCESS_KEY

    @property
    def session_token(self) -> str:
        return f"spotmap-local-{self.role_logical_id}"

    def as_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_SESSION_TOKEN": self.session_token,
        }

    def as_container_credentials(self, expiration: str) -> dict[str, str]:
        """The JSON the ECS container credentials endpoint answers (what boto3 reads by itself)."""
        return {
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "Token": self.session_token,
            "Expiration": expiration,
            "RoleArn": "",
        }


def credentials_for(role_logical_id: str) -> RoleCredentials:
    """Deterministic credentials for a role's logical id (the same in every process)."""
    digest = hashlib.sha256(role_logical_id.encode()).hexdigest()[:9].upper()
    return RoleCredentials(role_logical_id, f"{_PREFIX}{digest}")


def role_of_access_key(access_key_id: str, role_logical_ids: list[str]) -> str | None:
    """The role whose credentials carry this access key id; None for the admin or an unknown key."""
    for logical_id in role_logical_ids:
        if credentials_for(logical_id).access_key_id == access_key_id:
            return logical_id
    return None
