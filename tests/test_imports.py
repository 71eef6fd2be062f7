"""What a stage's process imports: the docker SDK's ssh transport (paramiko, a good part of a
docker stage's start) only when an ``ssh://`` engine is reached."""

from __future__ import annotations

import subprocess
import sys

DOCKER_STAGE = ("import bgci.cli, bgci.app, bgci.deployment, bgci.docker_engine, "
                "bgci.platforms.docker, bgci.hosts.docker, bgci.state.docker, bgci.platforms.swarm, "
                "bgci.routers.haproxy, bgci.stages.switch")
LOADED = "import sys; print('paramiko.transport' in sys.modules)"


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)


def test_a_docker_stage_does_not_load_paramiko_for_a_local_or_tcp_engine() -> None:
    code = (f"{DOCKER_STAGE}\nimport docker\n"
            "docker.DockerClient(base_url='unix:///nonexistent/docker.sock', version='1.41').close()\n"
            "docker.DockerClient(base_url='tcp://127.0.0.1:1', version='1.41').close()\n" + LOADED)
    done = python(code)
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr


def test_an_ssh_engine_loads_it_and_speaks_ssh() -> None:
    # port 1 of loopback: refused at once; the refusal comes from paramiko's own connect
    code = (f"{DOCKER_STAGE}\nimport docker\n"
            "try:\n"
            "    docker.APIClient(base_url='ssh://nobody@127.0.0.1:1', timeout=5)\n"
            "except Exception as exc:\n"
            "    print(type(exc).__module__, type(exc).__name__)\n" + LOADED)
    done = python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["paramiko.ssh_exception", "NoValidConnectionsError", "True"]
