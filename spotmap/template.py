"""Reads template.yaml (and samconfig.toml) into the local stack: the wiring is never written twice.

Intrinsic functions are resolved to local physical values: a bucket's Ref is its local name, a
function's GetAtt Arn is a local Lambda ARN, and so on, following CloudFormation's Ref/GetAtt rules
for each resource type.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from spotmap.parameters import ParameterError, check_parameters

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
PARTITION = "aws"
DEFAULT_STACK_NAME = "spotmap"


class TemplateError(ValueError):
    """The template uses something the local cloud cannot resolve."""


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that understands CloudFormation short-form tags (!Ref, !Sub, ...)."""


def _tag_constructor(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    # Long forms: {"Ref": ...} and {"Condition": ...} (a condition used inside another), else Fn::<Name>.
    name = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if tag_suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag_constructor)


def load_yaml(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def samconfig_overrides(root: Path, environment: str = "local") -> dict[str, str]:
    """parameter_overrides of a samconfig.toml environment ("Name=Value Name2=Value2")."""
    path = root / "samconfig.toml"
    if not path.exists():
        return {}
    config = tomllib.loads(path.read_text(encoding="utf-8"))
    env = config.get(environment, {})
    raw: Any = None
    for section in ("deploy", "global"):
        raw = env.get(section, {}).get("parameters", {}).get("parameter_overrides") or raw
    if not raw:
        return {}
    pairs = raw if isinstance(raw, list) else shlex.split(raw)
    return dict(pair.split("=", 1) for pair in pairs)


@dataclass(frozen=True)
class Rule:
    """An EventBridge rule targeting a function: an event pattern or a schedule."""

    name: str
    function: str  # logical id of the target
    pattern: dict[str, Any] | None = None
    schedule: str | None = None


@dataclass
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    handler: str
    code_dir: Path
    environment: dict[str, str]
    timeout: int
    memory: int


@dataclass(frozen=True)
class MountPointSpec:
    source_volume: str
    container_path: str
    read_only: bool = False


@dataclass
class ContainerSpec:
    name: str
    environment: dict[str, str]
    stop_timeout: int
    log_group: str | None
    log_stream_prefix: str | None
    # the runtime settings a container runtime applies (the process runtime cannot)
    image: str = ""
    user: str | None = None
    readonly_root_filesystem: bool = False
    privileged: bool = False
    capabilities_add: list[str] = field(default_factory=list)
    capabilities_drop: list[str] = field(default_factory=list)
    mount_points: list[MountPointSpec] = field(default_factory=list)
    essential: bool = True


@dataclass
class TaskDefinitionSpec:
    family: str
    arn: str
    cpu: str
    memory: str
    containers: list[ContainerSpec]
    volumes: list[str] = field(default_factory=list)  # names of the task's (Fargate task storage) volumes
    task_role: str | None = None  # logical id of the IAM role in TaskRoleArn (a GetAtt), if any


@dataclass
class Stack:
    root: Path
    name: str
    region: str
    account_id: str
    parameters: dict[str, str]
    bucket: str
    versioned: bool
    functions: dict[str, FunctionSpec]
    state_machine_name: str
    state_machine_arn: str
    definition: str
    cluster_name: str
    cluster_arn: str
    task_definition: TaskDefinitionSpec
    rules: list[Rule] = field(default_factory=list)
    topics: list[str] = field(default_factory=list)  # ARNs of the SNS topics the stack creates
    subscriptions: list[tuple[str, str, str]] = field(default_factory=list)  # (topic ARN, protocol, endpoint)

    def function_by_name(self, name_or_arn: str) -> FunctionSpec | None:
        name = name_or_arn.split(":function:")[-1].split(":")[0]
        for spec in self.functions.values():
            if name in (spec.name, spec.logical_id):
                return spec
        return None


class _Resolver:
    def __init__(self, template: dict[str, Any], stack_name: str, parameters: dict[str, str]):
        self.template = template
        self.stack_name = stack_name
        self.resources: dict[str, Any] = template.get("Resources", {})
        self.parameters = parameters
        self.conditions: dict[str, bool] = {}
        for name, expr in template.get("Conditions", {}).items():
            self.conditions[name] = bool(self.resolve(expr))

    # -- physical names and attributes ------------------------------------------------------------
    def physical_name(self, logical_id: str) -> str:
        props = self.resources[logical_id].get("Properties", {}) or {}
        for key in (
            "Name",
            "FunctionName",
            "BucketName",
            "ClusterName",
            "LogGroupName",
            "Family",
            "StateMachineName",
            "TopicName",
        ):
            if key in props:
                return str(self.resolve(props[key]))
        if self.resources[logical_id]["Type"] == "AWS::S3::Bucket":
            return f"{self.stack_name}-{logical_id}".lower()
        return f"{self.stack_name}-{logical_id}"

    def ref(self, name: str) -> Any:
        pseudo = {
            "AWS::Region": REGION,
            "AWS::AccountId": ACCOUNT_ID,
            "AWS::Partition": PARTITION,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            value = self.parameters[name]
            declared = self.template.get("Parameters", {}).get(name, {})
            if declared.get("Type") == "CommaDelimitedList":
                return [part for part in value.split(",")] if value else [""]
            return value
        if name not in self.resources:
            raise TemplateError(f"Ref to unknown name {name!r}")
        kind = self.resources[name]["Type"]
        physical = self.physical_name(name)
        if kind in ("AWS::Serverless::StateMachine", "AWS::StepFunctions::StateMachine"):
            return f"arn:{PARTITION}:states:{REGION}:{ACCOUNT_ID}:stateMachine:{physical}"
        if kind == "AWS::ECS::TaskDefinition":
            return f"arn:{PARTITION}:ecs:{REGION}:{ACCOUNT_ID}:task-definition/{physical}:1"
        if kind == "AWS::SNS::Topic":
            return f"arn:{PARTITION}:sns:{REGION}:{ACCOUNT_ID}:{physical}"
        if kind.startswith("AWS::EC2::"):
            return f"{kind.split('::')[-1].lower()}-local-{name.lower()}"
        return physical

    def get_att(self, name: str, attribute: str) -> Any:
        if name not in self.resources:
            raise TemplateError(f"GetAtt of unknown resource {name!r}")
        kind = self.resources[name]["Type"]
        physical = self.physical_name(name)
        if attribute == "Arn":
            lambda_arn = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT_ID}:function:{physical}"
            arns = {
                "AWS::S3::Bucket": f"arn:{PARTITION}:s3:::{physical}",
                "AWS::Serverless::Function": lambda_arn,
                "AWS::Lambda::Function": lambda_arn,  # the expanded template's (spotmap/access.py)
                "AWS::ECS::Cluster": f"arn:{PARTITION}:ecs:{REGION}:{ACCOUNT_ID}:cluster/{physical}",
                "AWS::IAM::Role": f"arn:{PARTITION}:iam::{ACCOUNT_ID}:role/{physical}",
                "AWS::Logs::LogGroup": f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT_ID}:log-group:{physical}:*",
                "AWS::ECR::Repository": f"arn:{PARTITION}:ecr:{REGION}:{ACCOUNT_ID}:repository/{physical}",
                "AWS::SQS::Queue": f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT_ID}:{physical}",
            }
            if kind in arns:
                return arns[kind]
        if attribute == "RepositoryUri":
            return f"{ACCOUNT_ID}.dkr.ecr.{REGION}.amazonaws.com/{physical}"
        if attribute == "Name":
            return physical
        return f"{physical}.{attribute}"

    # -- intrinsics ------------------------------------------------------------------------------
    def resolve(self, value: Any) -> Any:  # noqa: C901 - one branch per intrinsic
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                parts = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.get_att(parts[0], parts[1])
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                sep, items = arg
                resolved = self.resolve(items)
                return sep.join(str(item) for item in resolved if item is not None)
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.resolve(when_true if self.conditions[name] else when_false)
            if key == "Fn::Equals":
                left, right = self.resolve(arg)
                return str(left) == str(right)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(item) for item in arg)
            if key == "Fn::Or":
                return any(self.resolve(item) for item in arg)
            if key == "Condition":
                return self.conditions[arg]
            if key == "Fn::Select":
                index, items = arg
                return self.resolve(items)[int(self.resolve(index))]
            if key == "Fn::Split":
                sep, text = arg
                return str(self.resolve(text)).split(sep)
            if key == "Fn::GetAZs":
                return [f"{REGION}a", f"{REGION}b", f"{REGION}c"]
            if key == "Fn::ToJsonString":
                return json.dumps(self.resolve(arg))
        return {key: self.resolve(item) for key, item in value.items()}

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
        resolved_vars = {name: self.resolve(item) for name, item in variables.items()}

        def replace(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in resolved_vars:
                return str(resolved_vars[expr])
            if "." in expr and expr.split(".", 1)[0] in self.resources:
                name, attribute = expr.split(".", 1)
                return str(self.get_att(name, attribute))
            return str(self.ref(expr))

        return re.sub(r"\$\{([^}]+)\}", replace, text)


def _env_strings(variables: dict[str, Any]) -> dict[str, str]:
    return {name: "" if value is None else str(value) for name, value in variables.items()}


def _true(value: Any) -> bool:
    """A CloudFormation boolean: true, "true" (any case)."""
    return value is True or str(value).lower() == "true"


def _role_logical_id(value: Any, resources: dict[str, Any]) -> str | None:
    """The logical id of the IAM role an ARN property names with `!GetAtt Role.Arn` (or `!Ref Role`)."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        name = (arg if isinstance(arg, list) else str(arg).split(".", 1))[0] if key == "Fn::GetAtt" else arg
        if key in ("Fn::GetAtt", "Ref") and resources.get(name, {}).get("Type") == "AWS::IAM::Role":
            return str(name)
    return None


def load_stack(
    root: Path,
    overrides: dict[str, str] | None = None,
    stack_name: str = DEFAULT_STACK_NAME,
    samconfig_env: str | None = "local",
) -> Stack:
    """Resolve template.yaml with its parameter defaults, the samconfig environment's overrides,
    and then `overrides` (e.g. from `--param`)."""
    template = load_yaml(root / "template.yaml")
    declared = template.get("Parameters", {})
    parameters = {name: str(spec.get("Default", "")) for name, spec in declared.items()}
    given = dict(samconfig_overrides(root, samconfig_env) if samconfig_env else {})
    given.update(overrides or {})
    for name, value in given.items():
        if name not in declared:
            known = ", ".join(sorted(declared))
            raise TemplateError(f"unknown template parameter {name!r}; the template declares: {known}")
        parameters[name] = str(value)
    try:  # CloudFormation refuses the stack operation with a ValidationError: so does the local cloud
        check_parameters(declared, parameters, template.get("Rules") or {})
    except ParameterError as error:
        raise TemplateError(str(error)) from None
    resolver = _Resolver(template, stack_name, parameters)
    resources = template["Resources"]
    globals_fn = template.get("Globals", {}).get("Function", {})

    functions: dict[str, FunctionSpec] = {}
    rules: list[Rule] = []
    for logical_id, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        env = dict(resolver.resolve(globals_fn.get("Environment", {}).get("Variables", {})))
        env.update(resolver.resolve(props.get("Environment", {}).get("Variables", {})))
        code_uri = props.get("CodeUri", globals_fn.get("CodeUri", "."))
        functions[logical_id] = FunctionSpec(
            logical_id=logical_id,
            name=resolver.physical_name(logical_id),
            arn=resolver.get_att(logical_id, "Arn"),
            handler=props.get("Handler", globals_fn.get("Handler")),
            code_dir=(root / code_uri).resolve(),
            environment=_env_strings(env),
            timeout=int(props.get("Timeout", globals_fn.get("Timeout", 3))),
            memory=int(props.get("MemorySize", globals_fn.get("MemorySize", 128))),
        )
        for event_name, event in (props.get("Events") or {}).items():
            event_props = resolver.resolve(event.get("Properties", {}))
            rule_name = f"{resolver.physical_name(logical_id)}-{event_name}"
            if event["Type"] in ("EventBridgeRule", "CloudWatchEvent"):
                if str(event_props.get("State", "ENABLED")).upper() == "DISABLED":
                    continue  # a disabled rule matches nothing (e.g. TaskStopped with TaskEvents Disabled)
                rules.append(Rule(rule_name, logical_id, pattern=event_props["Pattern"]))
            elif event["Type"] in ("Schedule", "ScheduleV2"):
                expression = event_props.get("Schedule") or event_props.get("ScheduleExpression")
                rules.append(Rule(rule_name, logical_id, schedule=expression))

    machine_id = next(
        name for name, res in resources.items() if res["Type"] == "AWS::Serverless::StateMachine"
    )
    machine_props = resources[machine_id]["Properties"]
    definition = (root / machine_props["DefinitionUri"]).read_text(encoding="utf-8")
    substitutions = resolver.resolve(machine_props.get("DefinitionSubstitutions", {}))
    for name, value in substitutions.items():
        definition = definition.replace("${" + name + "}", str(value))
    leftover = re.findall(r"\$\{([^}]+)\}", definition)
    if leftover:
        raise TemplateError(f"state machine placeholders without a substitution: {sorted(set(leftover))}")

    bucket_id = next(name for name, res in resources.items() if res["Type"] == "AWS::S3::Bucket")
    bucket_props = resources[bucket_id].get("Properties", {})
    cluster_id = next(name for name, res in resources.items() if res["Type"] == "AWS::ECS::Cluster")
    taskdef_id = next(name for name, res in resources.items() if res["Type"] == "AWS::ECS::TaskDefinition")
    taskdef_props = resolver.resolve(resources[taskdef_id]["Properties"])
    containers = []
    for container in taskdef_props["ContainerDefinitions"]:
        log_options = (container.get("LogConfiguration") or {}).get("Options", {})
        capabilities = (container.get("LinuxParameters") or {}).get("Capabilities") or {}
        containers.append(
            ContainerSpec(
                name=container["Name"],
                environment={e["Name"]: str(e["Value"]) for e in container.get("Environment", [])},
                stop_timeout=int(container.get("StopTimeout", 30)),
                log_group=log_options.get("awslogs-group"),
                log_stream_prefix=log_options.get("awslogs-stream-prefix"),
                image=str(container.get("Image", "")),
                user=str(container["User"]) if container.get("User") is not None else None,
                readonly_root_filesystem=_true(container.get("ReadonlyRootFilesystem")),
                privileged=_true(container.get("Privileged")),
                capabilities_add=[str(name) for name in capabilities.get("Add") or []],
                capabilities_drop=[str(name) for name in capabilities.get("Drop") or []],
                mount_points=[
                    MountPointSpec(
                        source_volume=str(mount["SourceVolume"]),
                        container_path=str(mount["ContainerPath"]),
                        read_only=_true(mount.get("ReadOnly")),
                    )
                    for mount in container.get("MountPoints") or []
                ],
                essential=container.get("Essential") is None or _true(container.get("Essential")),
            )
        )
    task_role = resources[taskdef_id]["Properties"].get("TaskRoleArn")

    def created(resource: dict[str, Any]) -> bool:
        return "Condition" not in resource or resolver.conditions[resource["Condition"]]

    topics = [
        resolver.ref(name)
        for name, res in resources.items()
        if res["Type"] == "AWS::SNS::Topic" and created(res)
    ]
    subscriptions = [
        (str(props["TopicArn"]), str(props["Protocol"]), str(props.get("Endpoint", "")))
        for props in (
            resolver.resolve(res.get("Properties", {}))
            for res in resources.values()
            if res["Type"] == "AWS::SNS::Subscription" and created(res)
        )
    ]

    return Stack(
        root=root,
        name=stack_name,
        region=REGION,
        account_id=ACCOUNT_ID,
        parameters=parameters,
        bucket=resolver.ref(bucket_id),
        versioned=(bucket_props.get("VersioningConfiguration") or {}).get("Status") == "Enabled",
        functions=functions,
        state_machine_name=resolver.physical_name(machine_id),
        state_machine_arn=resolver.ref(machine_id),
        definition=definition,
        cluster_name=resolver.ref(cluster_id),
        cluster_arn=resolver.get_att(cluster_id, "Arn"),
        task_definition=TaskDefinitionSpec(
            family=resolver.physical_name(taskdef_id),
            arn=resolver.ref(taskdef_id),
            cpu=str(taskdef_props.get("Cpu", "1024")),
            memory=str(taskdef_props.get("Memory", "2048")),
            containers=containers,
            volumes=[str(volume["Name"]) for volume in taskdef_props.get("Volumes") or []],
            task_role=_role_logical_id(task_role, resources),
        ),
        rules=rules,
        topics=topics,
        subscriptions=subscriptions,
    )
