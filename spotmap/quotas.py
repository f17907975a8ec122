"""The local cloud's Service Quotas: GetServiceQuota for the two Fargate vCPU quotas, with the values
`CloudOptions` (`--fargate-spot-vcpu-quota`, `--fargate-on-demand-vcpu-quota`) configures, so that
`spotmap plan --endpoint-url` reads them exactly as it reads an account's in AWS, and a test can make
one bind.

Shapes from the Service Quotas API reference (GetServiceQuota: `{"Quota": {ServiceCode, ServiceName,
QuotaArn, QuotaCode, QuotaName, Value, Unit, Adjustable, GlobalQuota}}`; an unknown code is
`NoSuchResourceException`): https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_GetServiceQuota.html
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from werkzeug.wrappers import Request, Response

SERVICE_QUOTAS_TARGET = "ServiceQuotasV20190624."
FARGATE = "fargate"
SPOT_VCPU = "L-36FBB829"  # "Fargate Spot vCPU resource count"
ON_DEMAND_VCPU = "L-3032A538"  # "Fargate On-Demand vCPU resource count"
DEFAULT_VCPU_QUOTA = 4000.0  # Service Quotas' default value of both
NAMES = {
    SPOT_VCPU: "Fargate Spot vCPU resource count",
    ON_DEMAND_VCPU: "Fargate On-Demand vCPU resource count",
}


def _json(status: int, document: dict[str, Any], error_type: str | None = None) -> Response:
    headers = {"x-amzn-RequestId": str(uuid.uuid4())}
    if error_type:
        headers["x-amzn-ErrorType"] = error_type
    return Response(
        json.dumps(document), status=status, content_type="application/x-amz-json-1.1", headers=headers
    )


def answer(request: Request, action: str, values: dict[str, float], region: str, account: str) -> Response:
    """The local answer to a Service Quotas call (GetServiceQuota only)."""
    if action != "GetServiceQuota":
        return _json(
            400,
            {"__type": "InvalidParameterException", "Message": f"{action} is not served locally"},
            "InvalidParameterException",
        )
    body = json.loads(request.get_data() or b"{}")
    service, code = body.get("ServiceCode"), body.get("QuotaCode")
    if service != FARGATE or code not in values:
        return _json(
            400,
            {
                "__type": "NoSuchResourceException",
                "Message": f"The request failed because the specified quota {service}/{code} does not exist.",
            },
            "NoSuchResourceException",
        )
    return _json(
        200,
        {
            "Quota": {
                "ServiceCode": FARGATE,
                "ServiceName": "AWS Fargate",
                "QuotaArn": f"arn:aws:servicequotas:{region}:{account}:{FARGATE}/{code}",
                "QuotaCode": code,
                "QuotaName": NAMES[code],
                "Value": float(values[code]),
                "Unit": "None",
                "Adjustable": True,
                "GlobalQuota": False,
            }
        },
    )
