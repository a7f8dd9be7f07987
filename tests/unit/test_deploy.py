"""The deployment files in deploy/ are consistent with the code they deploy.

Every YAML file parses; every `taskstore ...` / `taskstore-worker ...` command that the
Dockerfile, compose file, systemd unit and Kubernetes manifests run is parsed by the real
click commands (so a renamed subcommand or option fails here); every supervisor gives a
stopping worker longer than its `--shutdown-timeout`; secrets and users are sane.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import click
import pytest

from taskstore.cli import main as taskstore_main
from worker.cli import main as worker_main

yaml = pytest.importorskip("yaml", reason="deploy/*.yaml checks need PyYAML (pyyaml>=6)")

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROGRAMS = {"taskstore", "taskstore-worker"}
# After --shutdown-timeout the worker still marks cut-off tasks not_finished, runs its
# shutdown hooks and closes its pool: a supervisor's grace period needs this much more.
MARGIN_SECONDS = 10
SAMPLE_INSTANCE = "myapp.tasks"
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600}
_SHELL_OPERATORS = {";", "&&", "||", "|", "&"}


# --- readers -------------------------------------------------------------------------


def load_yaml(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def compose_services() -> dict[str, dict[str, Any]]:
    return load_yaml(DEPLOY / "compose.yaml")[0]["services"]


def k8s_documents() -> list[dict[str, Any]]:
    return [
        doc for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")) for doc in load_yaml(path)
    ]


def k8s_objects(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in k8s_documents() if doc.get("kind") == kind]


def pod_specs() -> list[dict[str, Any]]:
    workloads = k8s_objects("Deployment") + k8s_objects("Job")
    return [w["spec"]["template"]["spec"] for w in workloads]


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    joined = text.replace("\\\n", " ").splitlines()
    pairs = (line.strip().partition(" ") for line in joined if line.strip())
    return [(keyword.upper(), rest.strip()) for keyword, _, rest in pairs]


def final_stage() -> list[tuple[str, str]]:
    instructions = dockerfile()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def systemd_unit() -> dict[str, dict[str, list[str]]]:
    """Sections of the template unit; a key may repeat, so each maps to all its values."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    text = (DEPLOY / "systemd" / "taskstore-worker@.service").read_text()
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    pairs = (line.partition("=") for line in lines if not line.lstrip().startswith("#"))
    return {key.strip(): value.strip().strip("\"'") for key, _, value in pairs}


def seconds(duration: str | int | float) -> float:
    """Compose (``1m30s``), systemd (``45``, ``1min 30s``) or plain-number durations."""
    text = str(duration).strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(ms|min|h|m|s)", text)
    assert parts, f"unreadable duration {duration!r}"
    return sum(float(value) * _UNITS[unit] for value, unit in parts)


# --- commands the deployment files run ---------------------------------------------------


def invocations(argv: list[str]) -> list[list[str]]:
    """The taskstore commands in argv, looking inside ``sh -c`` scripts and past ``exec``."""
    if len(argv) >= 3 and Path(argv[0]).name in {"sh", "bash"} and argv[1] == "-c":
        lexer = shlex.shlex(argv[2], posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens, segments = list(lexer), [[]]
        for token in tokens:
            segments.append([]) if token in _SHELL_OPERATORS else segments[-1].append(token)
        return [seg for segment in segments for seg in invocations(segment)]
    if argv and argv[0] == "exec":
        return invocations(argv[1:])
    return [argv] if argv and Path(argv[0]).name in PROGRAMS else []


def expand_systemd(value: str, env: dict[str, str]) -> list[str]:
    """ExecStart as systemd runs it: %i is the instance, $VAR splits into words."""
    value = value.lstrip("-@:+!").replace("%i", SAMPLE_INSTANCE)
    value = re.sub(r"\$\{?(\w+)\}?", lambda m: env.get(m.group(1), ""), value)
    return shlex.split(value)


def systemd_environment() -> dict[str, str]:
    unit = systemd_unit()["Service"]
    env = env_file(DEPLOY / "systemd" / "taskstore.env.example")
    for assignment in unit.get("Environment", []):
        for pair in shlex.split(assignment):
            key, _, value = pair.partition("=")
            env[key] = value
    return env


def dockerfile_commands() -> list[tuple[str, list[str]]]:
    found = []
    for keyword, rest in final_stage():
        if keyword == "CMD":
            found.append(("Dockerfile:CMD", json.loads(rest)))
        if keyword == "HEALTHCHECK":
            found.append(("Dockerfile:HEALTHCHECK", json.loads(rest.split(" CMD ", 1)[1])))
    return found


def compose_commands() -> list[tuple[str, list[str]]]:
    found = []
    for name, service in compose_services().items():
        command = service.get("command") or []
        argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        found.append((f"compose.yaml:{name}", argv))
    return found


def k8s_container_commands(container: dict[str, Any]) -> list[tuple[str, list[str]]]:
    name = container["name"]
    argv = [str(a) for a in container.get("command", []) + container.get("args", [])]
    found = [(f"kubernetes:{name}", argv)]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        if probe in container:
            found.append((f"kubernetes:{name}:{probe}", container[probe]["exec"]["command"]))
    return found


def deploy_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every taskstore / taskstore-worker command in deploy/."""
    env = systemd_environment()
    raw = dockerfile_commands() + compose_commands()
    raw += [
        ("systemd:ExecStart", expand_systemd(v, env))
        for v in systemd_unit()["Service"]["ExecStart"]
    ]
    for spec in pod_specs():
        for container in spec["containers"]:
            raw += k8s_container_commands(container)
    return [(where, argv) for where, argv in raw for argv in invocations(argv)]


def parse_cli(argv: list[str]) -> click.Context:
    """Parse argv with the real click commands: unknown names or bad values raise."""
    program, args = Path(argv[0]).name, list(argv[1:])
    if program == "taskstore-worker":
        return worker_main.make_context(program, args)
    name, rest = subcommand(args)
    if name not in taskstore_main.commands:
        raise click.UsageError(f"taskstore has no subcommand {name!r}")
    return taskstore_main.commands[name].make_context(name, rest)


def subcommand(args: list[str]) -> tuple[str, list[str]]:
    """Skip the group's own options (``--database-url URL``) to reach the subcommand."""
    group_options = {opt for param in taskstore_main.params for opt in param.opts}
    i = 0
    while i < len(args) and args[i].startswith("-"):
        option = args[i].split("=", 1)[0]
        if option not in group_options:
            raise click.NoSuchOption(option)
        i += 1 if "=" in args[i] else 2
    assert i < len(args), "taskstore without a subcommand"
    return args[i], args[i + 1 :]


def describe(argv: list[str]) -> str:
    """``taskstore-worker`` or ``taskstore SUBCOMMAND`` (bad commands fail their own test)."""
    try:
        ctx = parse_cli(argv)
    except click.UsageError:
        return f"unparseable: {shlex.join(argv)}"
    return ctx.info_name if ctx.info_name == "taskstore-worker" else f"taskstore {ctx.info_name}"


def shutdown_timeout(argv: list[str]) -> float:
    """The worker's --shutdown-timeout as click resolves it (the default when absent)."""
    return parse_cli(argv).params["shutdown_timeout"]


def is_worker(argv: list[str]) -> bool:
    return bool(argv) and Path(argv[0]).name == "taskstore-worker"


COMMANDS = deploy_commands()


# --- every file parses; every command is real --------------------------------------------


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.yaml")), ids=lambda p: p.name)
def test_every_yaml_file_parses_into_mappings(path: Path) -> None:
    documents = load_yaml(path)
    assert documents
    assert all(isinstance(doc, dict) for doc in documents)


@pytest.mark.parametrize(("where", "argv"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_deploy_command_is_accepted_by_the_real_cli(where: str, argv: list[str]) -> None:
    try:
        parse_cli(argv)
    except click.UsageError as exc:
        pytest.fail(f"{where}: {shlex.join(argv)}: {exc.format_message()}")


def test_each_deployment_method_runs_the_expected_commands() -> None:
    expected = {
        "Dockerfile": {"taskstore-worker", "taskstore status"},
        "compose.yaml": {"taskstore migrate", "taskstore-worker"},
        "systemd": {"taskstore-worker"},
        "kubernetes": {"taskstore migrate", "taskstore-worker", "taskstore status"},
    }
    for source, commands in expected.items():
        found = {describe(argv) for where, argv in COMMANDS if where.startswith(source)}
        assert commands <= found, f"{source} runs {sorted(found)}"


# --- graceful stop: every grace period exceeds the worker's shutdown timeout -------------


def assert_grace_covers(grace: float, worker_argv: list[str], where: str) -> None:
    timeout = shutdown_timeout(worker_argv)
    assert grace >= timeout + MARGIN_SECONDS, (
        f"{where}: grace {grace}s is not longer than --shutdown-timeout {timeout}s "
        f"+ {MARGIN_SECONDS}s"
    )


def test_compose_stop_grace_period_exceeds_worker_shutdown_timeout() -> None:
    workers = [(n, argv) for n, argv in compose_commands() if is_worker(argv)]
    assert workers
    for where, argv in workers:
        service = compose_services()[where.split(":", 1)[1]]
        assert_grace_covers(seconds(service.get("stop_grace_period", "10s")), argv, where)


def test_kubernetes_termination_grace_period_exceeds_worker_shutdown_timeout() -> None:
    checked = 0
    for spec in pod_specs():
        for container in spec["containers"]:
            argv = [str(a) for a in container.get("command", []) + container.get("args", [])]
            if is_worker(argv):
                grace = spec.get("terminationGracePeriodSeconds", 30)
                assert_grace_covers(grace, argv, f"kubernetes:{container['name']}")
                checked += 1
    assert checked


def test_systemd_timeout_stop_exceeds_worker_shutdown_timeout() -> None:
    service = systemd_unit()["Service"]
    (argv,) = [argv for where, argv in COMMANDS if where == "systemd:ExecStart"]
    assert_grace_covers(seconds(service["TimeoutStopSec"][-1]), argv, "systemd")


# --- Dockerfile ------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_from_slim_python_311() -> None:
    froms = [rest for keyword, rest in dockerfile() if keyword == "FROM"]
    args = " ".join(rest for keyword, rest in dockerfile() if keyword == "ARG")
    assert len(froms) >= 2
    assert "python:3.11-slim" in args + " ".join(froms)


def test_dockerfile_final_stage_runs_as_a_non_root_user() -> None:
    users = [rest for keyword, rest in final_stage() if keyword == "USER"]
    assert users, "the final stage never sets USER"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerfile_has_a_healthcheck_and_stops_with_sigterm() -> None:
    keywords = dict(final_stage())
    assert "HEALTHCHECK" in keywords
    assert keywords["STOPSIGNAL"] == "SIGTERM"


def test_dockerfile_leaves_the_database_url_to_the_environment() -> None:
    settings = " ".join(rest for keyword, rest in dockerfile() if keyword in {"ENV", "ARG"})
    assert "TASKSTORE_DATABASE_URL" not in settings


def test_dockerfile_copies_only_existing_paths_the_dockerignore_keeps() -> None:
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for keyword, rest in dockerfile():
        if keyword == "COPY" and "--from=" not in rest:
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert source.rstrip("/") in kept, f"{source} is excluded from the context"


# --- compose ----------------------------------------------------------------------------


def test_compose_migrates_once_after_postgres_is_healthy() -> None:
    migrate = compose_services()["migrate"]
    assert describe([str(a) for a in migrate["command"]]) == "taskstore migrate"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate["restart"] == "no"


def test_compose_workers_start_only_after_migrate_succeeded() -> None:
    for where, argv in compose_commands():
        if is_worker(argv):
            service = compose_services()[where.split(":", 1)[1]]
            condition = service["depends_on"]["migrate"]["condition"]
            assert condition == "service_completed_successfully", where


def test_compose_postgres_is_checked_with_pg_isready_and_keeps_data_in_a_volume() -> None:
    postgres = compose_services()["postgres"]
    assert postgres["image"].startswith("postgres:15")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])


def test_compose_passwords_are_interpolated_placeholders() -> None:
    services = compose_services()
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith("${")
    for name in ("migrate", "worker"):
        url = services[name]["environment"]["TASKSTORE_DATABASE_URL"]
        assert ":${POSTGRES_PASSWORD" in url, name


def test_compose_builds_from_the_deploy_dockerfile() -> None:
    for name in ("migrate", "worker"):
        build = compose_services()[name]["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve().is_file(), name


# --- systemd ----------------------------------------------------------------------------


def test_systemd_unit_stops_with_sigterm_and_restarts_on_failure() -> None:
    service = systemd_unit()["Service"]
    assert service["KillSignal"] == ["SIGTERM"]
    assert service["Restart"] == ["on-failure"]


def test_systemd_instance_name_is_the_app_module() -> None:
    (argv,) = [argv for where, argv in COMMANDS if where == "systemd:ExecStart"]
    assert parse_cli(argv).params["apps"] == (SAMPLE_INSTANCE,)


def test_systemd_unit_runs_as_a_dedicated_user_with_hardening() -> None:
    service = systemd_unit()["Service"]
    assert service["User"][-1] not in {"root", "0"}
    assert service["EnvironmentFile"]
    assert service["NoNewPrivileges"] == ["yes"]
    assert service["ProtectSystem"] == ["strict"]
    assert service["PrivateTmp"] == ["yes"]


# --- Kubernetes -------------------------------------------------------------------------


def test_kubernetes_pods_read_the_database_url_from_the_example_secret() -> None:
    (secret,) = k8s_objects("Secret")
    for spec in pod_specs():
        for container in spec["containers"]:
            env = {item["name"]: item for item in container["env"]}
            ref = env["TASKSTORE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]
            assert ref["name"] == secret["metadata"]["name"]
            assert ref["key"] in secret["stringData"]


def test_kubernetes_secret_example_holds_a_placeholder_only() -> None:
    (secret,) = k8s_objects("Secret")
    assert all("change-me" in value for value in secret["stringData"].values())


def test_kubernetes_worker_probes_check_the_database_with_taskstore_status() -> None:
    probes = [where for where, argv in COMMANDS if describe(argv) == "taskstore status"]
    assert {"kubernetes:worker:readinessProbe", "kubernetes:worker:livenessProbe"} <= set(probes)


def test_kubernetes_containers_declare_resources_and_run_as_non_root() -> None:
    for spec in pod_specs():
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in spec["containers"]:
            assert container["resources"]["requests"], container["name"]


def test_kustomization_lists_existing_manifests_but_no_secret() -> None:
    (kustomization,) = load_yaml(DEPLOY / "kubernetes" / "kustomization.yaml")
    for resource in kustomization["resources"]:
        assert (DEPLOY / "kubernetes" / resource).is_file(), resource
        assert "secret" not in resource
