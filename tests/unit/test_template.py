"""Least privilege and hardening, asserted on the template that `sam deploy` submits: template.yaml
expanded by the SAM translator (tools/expand_template.py), so the roles SAM generates from
`Policies`, event sources and dead-letter settings are checked too, not only what we wrote.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tools.expand_template import expand, load_template

TASK_ROLES = {"WorkerTaskRole", "WorkerExecutionRole"}
BUCKET = "<bucket>"
# AWS managed policies SAM attaches (basic logging for functions, X-Ray for traced resources).
ALLOWED_MANAGED_POLICIES = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    "arn:aws:iam::aws:policy/AWSXrayWriteOnlyAccess",
}


@pytest.fixture(scope="module")
def source() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="module")
def expanded() -> dict[str, Any]:
    return expand()


@pytest.fixture(scope="module")
def resources(expanded: dict[str, Any]) -> dict[str, Any]:
    return expanded["Resources"]


# ------------------------------------------------------------------------------------- helpers
def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def branches(statement: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A statement, or each statement an `Fn::If` may give (both branches: every one may be deployed)."""
    if set(statement) == {"Fn::If"}:
        _, when_true, when_false = statement["Fn::If"]
        for branch in (when_true, when_false):
            if branch != {"Ref": "AWS::NoValue"}:
                yield from branches(branch)
    else:
        yield statement


def role_statements(resources: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (role logical id, statement) of the identity policies in the expanded template."""
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::IAM::Role":
            for policy in props.get("Policies", []):
                for statement in as_list(policy["PolicyDocument"]["Statement"]):
                    for branch in branches(statement):
                        yield logical_id, branch
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            for role in props.get("Roles", []):
                for statement in as_list(props["PolicyDocument"]["Statement"]):
                    for branch in branches(statement):
                        yield role["Ref"], branch


def statements_of(resources: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [statement for owner, statement in role_statements(resources) if owner == role]


def s3_resource(value: Any) -> str:
    """`${JobBucket.Arn}/input/*` → `input/*`; the bucket ARN itself → `<bucket>`."""
    if value == {"Fn::GetAtt": ["JobBucket", "Arn"]}:
        return BUCKET
    if isinstance(value, dict) and "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        match = re.fullmatch(r"\$\{JobBucket\.Arn\}/(.*)", value["Fn::Sub"])
        if match:
            return match.group(1)
    return repr(value)


def s3_grants(resources: dict[str, Any], role: str) -> dict[str, set[str]]:
    """{s3 action: {resource}} granted to `role`; ListBucket resources carry their s3:prefix."""
    grants: dict[str, set[str]] = {}
    for statement in statements_of(resources, role):
        if statement["Effect"] != "Allow":
            continue
        for action in as_list(statement["Action"]):
            if not action.startswith("s3:"):
                continue
            for resource in as_list(statement["Resource"]):
                scope = s3_resource(resource)
                if action == "s3:ListBucket":
                    prefixes = statement.get("Condition", {}).get("StringLike", {}).get("s3:prefix", [])
                    scope = f"{scope} prefix={sorted(as_list(prefixes))}"
                grants.setdefault(action, set()).add(scope)
    return grants


def function_role(resources: dict[str, Any], function: str) -> str:
    role_arn = resources[function]["Properties"]["Role"]
    assert role_arn["Fn::GetAtt"][1] == "Arn"
    return str(role_arn["Fn::GetAtt"][0])


# ------------------------------------------------------------------------------------- IAM actions
def test_no_identity_policy_grants_a_wildcard_action(resources: dict[str, Any]) -> None:
    # GIVEN every statement of every role in the expanded template
    offending = [
        (role, action)
        for role, statement in role_statements(resources)
        for action in as_list(statement.get("Action", []))
        # WHEN an action is "*" or a service wildcard such as "s3:*" or "ecs:Describe*"
        if "*" in action
    ]
    # THEN there is none, and no statement uses NotAction to grant "everything but"
    assert offending == []
    assert [role for role, statement in role_statements(resources) if "NotAction" in statement] == []


def test_only_the_tls_deny_of_the_bucket_policy_uses_a_wildcard_action(resources: dict[str, Any]) -> None:
    # GIVEN every resource-based policy (bucket, queue) of the expanded template
    wildcards = []
    for logical_id, resource in resources.items():
        document = resource.get("Properties", {}).get("PolicyDocument")
        if resource["Type"] not in ("AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy") or not document:
            continue
        for statement in as_list(document["Statement"]):
            for action in as_list(statement["Action"]):
                if "*" in action:
                    wildcards.append((logical_id, statement.get("Sid"), statement["Effect"], action))
    # THEN the only wildcard is the bucket policy's Deny of plain-HTTP requests
    assert wildcards == [("JobBucketPolicy", "DenyInsecureTransport", "Deny", "s3:*")]


def test_roles_attach_only_the_expected_aws_managed_policies(resources: dict[str, Any]) -> None:
    # GIVEN the managed policies attached to every role
    attached = {
        arn
        for resource in resources.values()
        if resource["Type"] == "AWS::IAM::Role"
        for arn in resource["Properties"].get("ManagedPolicyArns", [])
    }
    # THEN they are only basic Lambda logging and X-Ray writes, never e.g. AmazonS3FullAccess
    assert attached <= ALLOWED_MANAGED_POLICIES


# ------------------------------------------------------------------------------------- PassRole
def test_pass_role_is_only_for_the_two_task_roles_and_only_to_ecs_tasks(resources: dict[str, Any]) -> None:
    # GIVEN every statement that allows iam:PassRole
    passing = [
        (role, statement)
        for role, statement in role_statements(resources)
        if "iam:PassRole" in as_list(statement["Action"]) and statement["Effect"] == "Allow"
    ]
    # THEN only LaunchTask may pass a role ...
    assert [role for role, _ in passing] == [function_role(resources, "LaunchTaskFunction")]
    statement = passing[0][1]
    # ... the statement grants nothing else ...
    assert as_list(statement["Action"]) == ["iam:PassRole"]
    # ... its resources are exactly the worker's task role and execution role ...
    passed = {resource["Fn::GetAtt"][0] for resource in as_list(statement["Resource"])}
    assert passed == TASK_ROLES
    assert all(resource["Fn::GetAtt"][1] == "Arn" for resource in as_list(statement["Resource"]))
    # ... and only to ECS tasks
    assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}


def test_task_definition_uses_exactly_the_roles_that_may_be_passed(resources: dict[str, Any]) -> None:
    # GIVEN the worker task definition
    props = resources["WorkerTaskDefinition"]["Properties"]
    # THEN its roles are the two PassRole resources
    assert props["TaskRoleArn"] == {"Fn::GetAtt": ["WorkerTaskRole", "Arn"]}
    assert props["ExecutionRoleArn"] == {"Fn::GetAtt": ["WorkerExecutionRole", "Arn"]}


# ------------------------------------------------------------------------------------- ECS
def test_run_task_is_scoped_to_the_worker_family_and_the_cluster(resources: dict[str, Any]) -> None:
    # GIVEN the statements that allow ecs:RunTask and the worker task definition's family
    family = resources["WorkerTaskDefinition"]["Properties"]["Family"]
    assert family == {"Fn::Sub": "${AWS::StackName}-worker"}
    running = [
        (role, statement)
        for role, statement in role_statements(resources)
        if "ecs:RunTask" in as_list(statement["Action"])
    ]
    # THEN only LaunchTask runs tasks, only revisions of the worker family, only in the cluster
    assert [role for role, _ in running] == [function_role(resources, "LaunchTaskFunction")]
    statement = running[0][1]
    assert as_list(statement["Resource"]) == [
        {
            "Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:"
            "task-definition/${AWS::StackName}-worker:*"
        }
    ]
    assert statement["Condition"] == {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": ["WorkerCluster", "Arn"]}}}


def test_task_level_ecs_actions_are_scoped_to_tasks_of_the_cluster(resources: dict[str, Any]) -> None:
    # GIVEN every statement allowing StopTask, DescribeTasks, TagResource or ListTasks
    cluster_tasks = {
        "Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task/${WorkerCluster}/*"
    }
    found = 0
    for role, statement in role_statements(resources):
        actions = set(as_list(statement["Action"]))
        if actions & {"ecs:StopTask", "ecs:DescribeTasks", "ecs:TagResource"}:
            found += 1
            # THEN task actions name tasks of the worker cluster only
            assert as_list(statement["Resource"]) == [cluster_tasks], role
        if "ecs:ListTasks" in actions:
            found += 1
            # THEN ListTasks (no resource-level scoping in IAM) is limited to the cluster by condition
            assert statement["Condition"] == {
                "ArnEquals": {"ecs:cluster": {"Fn::GetAtt": ["WorkerCluster", "Arn"]}}
            }, role
    assert found >= 3


# ------------------------------------------------------------------------------------- S3 prefixes
def test_start_job_reads_input_and_writes_jobs_only(resources: dict[str, Any]) -> None:
    # GIVEN the role of StartJob
    grants = s3_grants(resources, function_role(resources, "StartJobFunction"))
    # THEN it reads uploads under input/ (and the read-only data/ objects a job manifest names) and
    # its own job descriptor (a repeated event finds the job built), an earlier job's summary and item
    # list (a rerun manifest reruns its failed items), and writes the job's files under jobs/, nothing else
    assert grants == {
        "s3:GetObject": {"input/*", "data/*", "jobs/*/job.json", "summaries/*", "jobs/*/items.json"},
        "s3:GetObjectVersion": {"input/*", "data/*"},
        "s3:ListBucket": {f"{BUCKET} prefix=['data/*', 'input/*']"},
        "s3:PutObject": {"jobs/*"},
    }


def test_launch_task_reads_outcomes_and_the_job_descriptor_only(resources: dict[str, Any]) -> None:
    # GIVEN the role of LaunchTask
    grants = s3_grants(resources, function_role(resources, "LaunchTaskFunction"))
    # THEN it reads the item's outcomes, the job descriptor it hands the worker in JOB and the tally of
    # what RunTask refused on this launch's earlier tries (nothing else of jobs/), and writes only the
    # record of each launch (what an aborted job's summary counts), that tally, and the launched item
    # state a task event or the backstop poll resumes from
    assert grants == {
        "s3:GetObject": {
            "jobs/*/outcomes/*",
            "jobs/*/job.json",
            "jobs/*/launch-retries/*",
        },
        "s3:ListBucket": {f"{BUCKET} prefix=['jobs/*']"},
        "s3:PutObject": {"jobs/*/attempts/*", "jobs/*/launched/*", "jobs/*/launch-retries/*"},
    }


def test_record_failure_reads_only_the_tally_of_the_launch_that_failed(resources: dict[str, Any]) -> None:
    # GIVEN the role of RecordFailure
    grants = s3_grants(resources, function_role(resources, "RecordFailureFunction"))
    # THEN what it reads of jobs/ is the launch tally (a missing one is a 404 with ListBucket) and the
    # result records a failed batch's items left (jobcore.batching)
    assert grants["s3:GetObject"] == {"jobs/*/launch-retries/*", "jobs/*/results/*"}
    assert grants["s3:ListBucket"] == {f"{BUCKET} prefix=['jobs/*']"}


def test_task_stopped_reads_jobs_writes_outcomes_and_claims_and_resumes_items(
    resources: dict[str, Any],
) -> None:
    # GIVEN the role of TaskStopped
    role = function_role(resources, "TaskStoppedFunction")
    grants = s3_grants(resources, role)
    # THEN it reads the job's files (launch record, result record, error message), writes outcomes and
    # the one-delivery claim, and nothing else
    assert grants == {
        "s3:GetObject": {"jobs/*"},
        "s3:ListBucket": {f"{BUCKET} prefix=['jobs/*']"},
        "s3:PutObject": {"jobs/*/outcomes/*", "jobs/*/launched/*"},
    }
    # AND of Step Functions only the callback actions it uses (no resource types exist for them: "*")
    statements = [
        statement
        for policy in resources[role]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if any(str(action).startswith("states:") for action in _actions(statement))
    ]
    assert [(sorted(_actions(s)), s["Resource"]) for s in statements] == [
        (["states:SendTaskHeartbeat", "states:SendTaskSuccess"], "*")
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def test_worker_task_reads_input_and_jobs_and_writes_output_and_results(resources: dict[str, Any]) -> None:
    # GIVEN the worker's task role
    grants = s3_grants(resources, "WorkerTaskRole")
    # THEN it reads its input (input/ or data/) and job files, and writes its outputs, its result
    # record and its item's checkpoint only; it deletes nothing but checkpoints and lists nothing but
    # their prefix (so that a missing checkpoint is a 404)
    assert grants == {
        "s3:GetObject": {"input/*", "data/*", "jobs/*"},
        "s3:GetObjectVersion": {"input/*", "data/*", "jobs/*"},
        "s3:PutObject": {"output/*", "jobs/*/results/*", "jobs/*/errors/*", "jobs/*/checkpoints/*"},
        "s3:DeleteObject": {"jobs/*/checkpoints/*"},
        "s3:ListBucket": {f"{BUCKET} prefix=['jobs/*/checkpoints/*']"},
    }


def test_summarize_reads_jobs_and_writes_summaries(resources: dict[str, Any]) -> None:
    # GIVEN the role of Summarize
    grants = s3_grants(resources, function_role(resources, "SummarizeFunction"))
    # THEN it reads the job's files and writes the summary only
    assert grants == {
        "s3:GetObject": {"jobs/*"},
        "s3:ListBucket": {f"{BUCKET} prefix=['jobs/*']"},
        "s3:PutObject": {"summaries/*"},
    }


def test_state_machine_reads_jobs_and_writes_only_map_results(resources: dict[str, Any]) -> None:
    # GIVEN the state machine's role
    role = resources["JobStateMachine"]["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    grants = s3_grants(resources, role)
    # THEN it reads the item lists (ItemReader) and writes the Map's result files (ResultWriter, with
    # the permissions AWS documents for it) under jobs/<job_id>/map-results/, nothing else
    assert grants == {
        "s3:GetObject": {"jobs/*", "jobs/*/map-results/*"},
        "s3:PutObject": {"jobs/*/map-results/*"},
        "s3:ListMultipartUploadParts": {"jobs/*/map-results/*"},
        "s3:AbortMultipartUpload": {"jobs/*/map-results/*"},
    }


@pytest.mark.parametrize("function", ["PollTaskFunction", "RecordFailureFunction"])
def test_item_bookkeeping_functions_write_only_outcomes(resources: dict[str, Any], function: str) -> None:
    # GIVEN the role of a function that records an item's final outcome
    grants = s3_grants(resources, function_role(resources, function))
    # THEN the only thing it writes is the outcome record
    assert grants["s3:PutObject"] == {"jobs/*/outcomes/*"}


def test_every_s3_grant_is_prefix_scoped_and_nothing_writes_input(resources: dict[str, Any]) -> None:
    # GIVEN the S3 grants of every role in the stack
    roles = {role for role, _ in role_statements(resources)}
    for role in sorted(roles):
        for action, scopes in s3_grants(resources, role).items():
            for scope in scopes:
                if action == "s3:ListBucket":
                    # THEN listing is always limited by an s3:prefix condition
                    assert scope.startswith(BUCKET) and "prefix=[]" not in scope, (role, scope)
                    continue
                # THEN object access always names a prefix, never the whole bucket or another bucket
                assert re.fullmatch(r"(input|data|jobs|output|summaries)/\S*", scope), (role, action, scope)
                # THEN nothing writes under input/ (a write there would start another job: a loop)
                # nor under data/ (the user's read-only inputs)
                if action in ("s3:PutObject", "s3:DeleteObject"):
                    assert not scope.startswith(("input/", "data/")), (role, action, scope)


# ------------------------------------------------------------------------------------- hardening
def test_every_function_runs_python313_and_logs_to_a_log_group_with_retention(
    source: dict[str, Any], resources: dict[str, Any]
) -> None:
    # GIVEN every Lambda function of the expanded template: one for each function of the source template
    functions = {k: v for k, v in resources.items() if v["Type"] == "AWS::Lambda::Function"}
    declared = {k for k, v in source["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    assert set(functions) == declared and len(declared) >= 8
    for logical_id, function in functions.items():
        props = function["Properties"]
        # THEN it runs a supported runtime, traced, logging JSON ...
        assert props["Runtime"] == "python3.13", logical_id
        assert props["TracingConfig"] == {"Mode": "Active"}, logical_id
        logging = props["LoggingConfig"]
        assert logging["LogFormat"] == "JSON", logical_id
        # ... into a log group of the stack that has a retention (not the implicit, never-expiring one)
        group = logging["LogGroup"]["Ref"]
        assert resources[group]["Type"] == "AWS::Logs::LogGroup", logical_id
        assert resources[group]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_every_log_group_has_a_retention(resources: dict[str, Any]) -> None:
    # GIVEN every log group
    groups = {k: v for k, v in resources.items() if v["Type"] == "AWS::Logs::LogGroup"}
    # THEN each one expires its events
    assert groups
    assert {k for k, v in groups.items() if "RetentionInDays" not in v["Properties"]} == set()


def test_asynchronously_invoked_functions_keep_their_failed_events(resources: dict[str, Any]) -> None:
    # GIVEN the functions that EventBridge and EventBridge Scheduler invoke (asynchronously)
    targets: dict[str, list[dict[str, Any]]] = {}
    for resource in resources.values():
        if resource["Type"] == "AWS::Events::Rule":
            for target in resource["Properties"]["Targets"]:
                targets.setdefault(target["Arn"]["Fn::GetAtt"][0], []).append(target)
        if resource["Type"] == "AWS::Scheduler::Schedule":
            target = resource["Properties"]["Target"]
            targets.setdefault(target["Arn"]["Fn::GetAtt"][0], []).append(target)
    assert set(targets) == {
        "StartJobFunction",
        "SummarizeFunction",
        "StopJobTasksFunction",
        "ReconcileFunction",
        "TaskStoppedFunction",
    }
    queue = {"Fn::GetAtt": ["FailedEventsQueue", "Arn"]}
    for function, its_targets in targets.items():
        # THEN undeliverable events go to the dead-letter queue ...
        assert all(target["DeadLetterConfig"] == {"Arn": queue} for target in its_targets), function
        # ... and so do invocations that still fail after Lambda's retries
        assert resources[function]["Properties"]["DeadLetterConfig"] == {"TargetArn": queue}, function


def test_dead_letter_queue_accepts_only_the_stacks_rules(resources: dict[str, Any]) -> None:
    # GIVEN the queue policy of the dead-letter queue
    statements = resources["FailedEventsQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (allow,) = [s for s in statements if s["Effect"] == "Allow"]
    rules = {k for k, v in resources.items() if v["Type"] == "AWS::Events::Rule"}
    # THEN only EventBridge may send, and only for the rules of this stack (they exist after expansion)
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert allow["Action"] == "sqs:SendMessage"
    sources = allow["Condition"]["ArnEquals"]["aws:SourceArn"]
    assert {source["Fn::GetAtt"][0] for source in sources} == rules


def test_bucket_blocks_public_access_and_plain_http_and_encrypts(resources: dict[str, Any]) -> None:
    # GIVEN the job bucket and its policy
    props = resources["JobBucket"]["Properties"]
    # THEN public access is blocked, ACLs disabled, objects encrypted and versioned
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    # THEN every request without TLS is denied
    (deny,) = resources["JobBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Resource"] == [{"Fn::GetAtt": ["JobBucket", "Arn"]}, {"Fn::Sub": "${JobBucket.Arn}/*"}]


def test_worker_task_definition_is_hardened(resources: dict[str, Any]) -> None:
    # GIVEN the worker's container definition
    props = resources["WorkerTaskDefinition"]["Properties"]
    (container,) = props["ContainerDefinitions"]
    # THEN it runs as a non-root user, unprivileged, without Linux capabilities ...
    assert container["User"] not in ("", "0", "root") and not str(container["User"]).startswith("0:")
    assert container["Privileged"] is False
    assert container["LinuxParameters"]["Capabilities"]["Drop"] == ["ALL"]
    # ... on a read-only root file system with one writable scratch volume ...
    assert container["ReadonlyRootFilesystem"] is True
    assert [v["Name"] for v in props["Volumes"]] == ["scratch"]
    assert [m["SourceVolume"] for m in container["MountPoints"]] == ["scratch"]
    # ... gets the longest stop timeout Fargate allows to finish after SIGTERM ...
    assert container["StopTimeout"] == 120
    # ... and logs to the stack's worker log group
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert container["LogConfiguration"]["Options"]["awslogs-group"] == {"Ref": "WorkerLogGroup"}


def test_state_machine_logs_and_traces(resources: dict[str, Any]) -> None:
    # GIVEN the state machine
    props = resources["JobStateMachine"]["Properties"]
    # THEN X-Ray tracing is on and errors are logged to the stack's log group, without execution data
    assert props["TracingConfiguration"] == {"Enabled": True}
    logging = props["LoggingConfiguration"]
    assert logging["Level"] in ("ERROR", "ALL")
    assert logging["IncludeExecutionData"] is False
    assert logging["Destinations"] == [
        {"CloudWatchLogsLogGroup": {"LogGroupArn": {"Fn::GetAtt": ["StateMachineLogGroup", "Arn"]}}}
    ]


def test_worker_security_group_admits_no_inbound_traffic(resources: dict[str, Any]) -> None:
    # GIVEN the security group the template creates for the tasks
    props = resources["WorkerSecurityGroup"]["Properties"]
    # THEN nothing may connect to a task; tasks reach AWS APIs over HTTPS only
    assert "SecurityGroupIngress" not in props
    assert [(r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in props["SecurityGroupEgress"]] == [
        ("tcp", 443, 443)
    ]
    ingress = [v for v in resources.values() if v["Type"] == "AWS::EC2::SecurityGroupIngress"]
    assert ingress == []


def test_source_template_globals_pin_the_runtime(source: dict[str, Any]) -> None:
    # GIVEN the source template
    functions = {k: v for k, v in source["Resources"].items() if v["Type"] == "AWS::Serverless::Function"}
    runtimes = {
        v["Properties"].get("Runtime", source["Globals"]["Function"]["Runtime"]) for v in functions.values()
    }
    # THEN every function runs python3.13 (3.11 is deprecated in Lambda) and builds without Docker
    assert runtimes == {"python3.13"}
    assert {v["Metadata"]["BuildMethod"] for v in functions.values()} == {"makefile"}


def test_checkov_skips_carry_a_reason(source: dict[str, Any]) -> None:
    # GIVEN every inline checkov skip of the template
    skips = [
        (logical_id, skip)
        for logical_id, resource in source["Resources"].items()
        for skip in (resource.get("Metadata") or {}).get("checkov", {}).get("skip", [])
    ]
    # THEN each names a check and says why it does not apply, in a sentence
    assert skips
    for logical_id, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), logical_id
        assert len(skip.get("comment", "")) >= 40, (logical_id, skip["id"])


# ------------------------------------------------------------------------------------- image pull
ECR_PULL = {"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"}
STACK_REPOSITORY_ARN = "arn:aws:ecr:us-east-1:123456789012:repository/spotmap-WorkerRepository"


def execution_role_grants(expanded: dict[str, Any], image_uri: str) -> dict[str, set[str]]:
    """{action: {resource}} of the worker's execution role once CloudFormation has resolved the
    expanded template's conditions and intrinsics for WorkerImageUri=image_uri (with the local cloud's
    resolver: account 123456789012, us-east-1)."""
    from spotmap.template import _Resolver

    parameters = {name: str(spec.get("Default", "")) for name, spec in expanded["Parameters"].items()}
    parameters["WorkerImageUri"] = image_uri
    resolver = _Resolver(expanded, "spotmap", parameters)
    grants: dict[str, set[str]] = {}
    for policy in expanded["Resources"]["WorkerExecutionRole"]["Properties"]["Policies"]:
        for statement in resolver.resolve(policy["PolicyDocument"]["Statement"]):
            if statement is None:  # an Fn::If that chose AWS::NoValue
                continue
            assert statement["Effect"] == "Allow"
            for action in as_list(statement["Action"]):
                grants.setdefault(action, set()).update(as_list(statement["Resource"]))
    return grants


@pytest.mark.parametrize(
    ("image_uri", "repository_arn"),
    [
        ("", STACK_REPOSITORY_ARN),  # the default: the stack's own repository, tag latest
        (
            "210987654321.dkr.ecr.eu-west-1.amazonaws.com/team/worker:1.2",
            "arn:aws:ecr:eu-west-1:210987654321:repository/team/worker",
        ),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/spotmap-workerrepository@sha256:" + "ab" * 32,
            "arn:aws:ecr:us-east-1:123456789012:repository/spotmap-workerrepository",
        ),
        (
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/tools/worker:v1@sha256:" + "cd" * 32,
            "arn:aws:ecr:us-east-1:123456789012:repository/tools/worker",
        ),
        (
            "210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn/worker",
            "arn:aws:ecr:cn-north-1:210987654321:repository/worker",
        ),
    ],
)
def test_execution_role_may_pull_exactly_the_repository_of_the_image(
    expanded: dict[str, Any], image_uri: str, repository_arn: str
) -> None:
    # GIVEN the worker image named by WorkerImageUri (empty: the stack's repository)
    # WHEN CloudFormation resolves the execution role for it
    grants = execution_role_grants(expanded, image_uri)
    # THEN it may pull from that image's repository and no other, and get a registry token
    assert {action: grants[action] for action in ECR_PULL} == dict.fromkeys(ECR_PULL, {repository_arn})
    assert grants["ecr:GetAuthorizationToken"] == {"*"}  # the action has no resource-level scoping
    # AND nothing else of ECR
    ecr_actions = {action for action in grants if action.startswith("ecr:")}
    assert ecr_actions == ECR_PULL | {"ecr:GetAuthorizationToken"}


@pytest.mark.parametrize("image_uri", ["public.ecr.aws/docker/library/python:3.13", "ghcr.io/acme/worker:1"])
def test_an_image_outside_private_ecr_gets_no_ecr_rights(expanded: dict[str, Any], image_uri: str) -> None:
    # GIVEN an image of a public registry
    # WHEN CloudFormation resolves the execution role for it
    grants = execution_role_grants(expanded, image_uri)
    # THEN the role has no ECR rights at all, only its logs
    assert set(grants) == {"logs:CreateLogStream", "logs:PutLogEvents"}


def test_reconcile_may_list_and_stop_the_clusters_tasks_and_nothing_more_of_ecs(
    resources: dict[str, Any],
) -> None:
    # GIVEN the ECS statements of Reconcile's role
    statements = [
        statement
        for statement in statements_of(resources, function_role(resources, "ReconcileFunction"))
        if any(action.startswith("ecs:") for action in as_list(statement["Action"]))
    ]
    cluster_tasks = {
        "Fn::Sub": "arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task/${WorkerCluster}/*"
    }
    # THEN it may list tasks in the worker cluster only and stop tasks of that cluster only
    assert sorted((as_list(s["Action"]), as_list(s["Resource"]), s.get("Condition")) for s in statements) == [
        (
            ["ecs:ListTasks"],
            ["*"],
            {"ArnEquals": {"ecs:cluster": {"Fn::GetAtt": ["WorkerCluster", "Arn"]}}},
        ),
        (["ecs:StopTask"], [cluster_tasks], None),
    ]


def summarize_grants(expanded: dict[str, Any], parameters: dict[str, str]) -> dict[str, set[str]]:
    """{action: {resource}} of Summarize's role once CloudFormation has resolved the expanded template
    for `parameters` (the local cloud's resolver: account 123456789012, us-east-1)."""
    from spotmap.template import _Resolver

    values = {name: str(spec.get("Default", "")) for name, spec in expanded["Parameters"].items()}
    resolver = _Resolver(expanded, "spotmap", {**values, **parameters})
    role = function_role(expanded["Resources"], "SummarizeFunction")
    grants: dict[str, set[str]] = {}
    for policy in expanded["Resources"][role]["Properties"]["Policies"]:
        for statement in as_list(resolver.resolve(policy["PolicyDocument"]["Statement"])):
            if statement is None:  # an Fn::If that chose AWS::NoValue
                continue
            for action in as_list(statement["Action"]):
                grants.setdefault(action, set()).update(as_list(statement["Resource"]))
    return grants


EXISTING_TOPIC = "arn:aws:sns:eu-west-1:210987654321:team-alerts"


@pytest.mark.parametrize(
    ("parameters", "topic", "created"),
    [
        ({}, None, False),  # the default: no notifications, nothing created
        (
            {"NotificationEmail": "ops@example.com"},
            "arn:aws:sns:us-east-1:123456789012:spotmap-NotificationTopic",
            True,
        ),
        ({"NotificationTopicArn": EXISTING_TOPIC}, EXISTING_TOPIC, False),
        (
            {"NotificationEmail": "ops@example.com", "NotificationTopicArn": EXISTING_TOPIC},
            EXISTING_TOPIC,
            False,
        ),
    ],
)
def test_summarize_may_publish_to_the_notification_topic_only(
    expanded: dict[str, Any], parameters: dict[str, str], topic: str | None, created: bool
) -> None:
    # GIVEN the notification parameters (an e-mail address, an existing topic, both or neither)
    from spotmap.template import _Resolver

    values = {name: str(spec.get("Default", "")) for name, spec in expanded["Parameters"].items()}
    resolver = _Resolver(expanded, "spotmap", {**values, **parameters})
    # WHEN CloudFormation resolves the stack for them
    grants = summarize_grants(expanded, parameters)
    # THEN Summarize may publish to that one topic, or to none, and nothing else of SNS
    sns_grants = {action: resources for action, resources in grants.items() if action.startswith("sns:")}
    assert sns_grants == ({"sns:Publish": {topic}} if topic else {})
    # AND a topic and its e-mail subscription exist only for an address without an existing topic
    for logical_id in ("NotificationTopic", "NotificationSubscription"):
        assert resolver.conditions[expanded["Resources"][logical_id]["Condition"]] is created
    # AND Summarize is told which topic (empty: none)
    environment = expanded["Resources"]["SummarizeFunction"]["Properties"]["Environment"]["Variables"]
    assert (resolver.resolve(environment["NOTIFICATION_TOPIC_ARN"]) or None) == topic
