"""The container runtime starts each task with the settings template.yaml's task definition gives: read
through spotmap.template (never written twice) and turned into `docker run` options."""

from __future__ import annotations

from typing import Any

import pytest

from spotmap.cloud import project_root
from spotmap.containers import docker_run_args
from spotmap.template import load_stack, load_yaml


@pytest.fixture(scope="module")
def source_container() -> dict[str, Any]:
    template = load_yaml(project_root() / "template.yaml")
    return template["Resources"]["WorkerTaskDefinition"]["Properties"]["ContainerDefinitions"][0]


def test_the_local_stack_reads_the_containers_runtime_settings(source_container: dict[str, Any]) -> None:
    # GIVEN template.yaml's worker task definition
    # WHEN the local stack is loaded from it
    definition = load_stack(project_root()).task_definition
    (container,) = definition.containers

    # THEN user, root file system, privileges, capabilities, volumes, mounts and role are the template's
    assert container.user == source_container["User"]
    assert container.readonly_root_filesystem is source_container["ReadonlyRootFilesystem"]
    assert container.privileged is source_container["Privileged"]
    assert container.capabilities_drop == source_container["LinuxParameters"]["Capabilities"]["Drop"]
    assert container.stop_timeout == source_container["StopTimeout"]
    assert [(m.source_volume, m.container_path) for m in container.mount_points] == [
        (m["SourceVolume"], m["ContainerPath"]) for m in source_container["MountPoints"]
    ]
    assert definition.volumes == ["scratch"]
    assert definition.task_role == "WorkerTaskRole"


def test_docker_run_options_apply_every_setting_of_the_task_definition() -> None:
    # GIVEN the local stack's task definition and the Docker volume made for one task's scratch volume
    definition = load_stack(project_root(), {"TaskCpu": "512", "TaskMemory": "1024"}).task_definition

    # WHEN the container runtime builds its docker run options
    args = docker_run_args(definition, "t1", "c1", {"scratch": "spotmap-t1-scratch"})

    # THEN they set the user, a read-only root, drop every capability, mount the task's volume, stop
    # with the task definition's timeout, size the container as the task, and label it for clean-up
    pairs = list(zip(args, args[1:], strict=False))
    assert ("--user", "10001") in pairs
    assert "--read-only" in args and "--privileged" not in args and "--cap-add" not in args
    assert ("--cap-drop", "ALL") in pairs
    assert ("--mount", "type=volume,source=spotmap-t1-scratch,target=/scratch") in pairs
    assert ("--stop-timeout", "120") in pairs
    assert ("--cpus", "0.5") in pairs and ("--memory", "1024m") in pairs
    assert ("--label", "spotmap.local-cloud=c1") in pairs and ("--label", "spotmap.task=t1") in pairs


@pytest.mark.parametrize(
    ("setting", "value", "refusal"),
    [("privileged", True, "privileged"), ("capabilities_add", ["NET_ADMIN"], "SYS_PTRACE")],
)
def test_settings_fargate_refuses_are_refused(setting: str, value: Any, refusal: str) -> None:
    # GIVEN a task definition asking for what Fargate does not allow
    definition = load_stack(project_root()).task_definition
    setattr(definition.containers[0], setting, value)

    # WHEN / THEN the container runtime refuses to start its task
    with pytest.raises(RuntimeError, match=refusal):
        docker_run_args(definition, "t1", "c1", {"scratch": "spotmap-t1-scratch"})


def test_a_mount_point_of_an_undeclared_volume_is_refused() -> None:
    # GIVEN a task whose volumes lack the one the container mounts
    definition = load_stack(project_root()).task_definition

    # WHEN / THEN the container runtime refuses to start it
    with pytest.raises(RuntimeError, match="scratch"):
        docker_run_args(definition, "t1", "c1", {})
