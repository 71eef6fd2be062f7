"""Scheduling of the end-to-end suite under pytest-xdist (tox's e2e env runs it with -n).

Tests share one Docker engine. Most of them only use their own apps and free ports and run side by
side; four kinds may not:
- everything that turns the engine into a swarm and back (swarm platform, its store, the benchmark's
  swarm baseline) runs in one worker, one test at a time (``xdist_group("swarm")``);
- the tests on the test hosts of scripts/test-cluster.sh (marker ``cluster``) run in one worker,
  which starts them once and removes them at the end (``xdist_group("cluster")``);
- the tests that bind the examples' fixed ports 8080/8081 run in one worker (``fixed-ports``);
- the tests that build the examples' Dockerfiles on the engine run in one worker
  (``example-images``): they share its layer cache, and one removing its image while another
  rebuilds the same layers made that rebuild a new image;
- a test that restarts the Docker engine runs alone, after everything else (marker ``serial``).

pytest-xdist groups by a suffix it adds to each grouped node ID (``…::test@swarm``); a pytest on
which that suffix does not take would spread a group over workers with no word, so a grouped test
fails then, before its fixtures are set up (``pytest_runtest_setup`` below).
"""

from __future__ import annotations

import pytest

SERIAL_FILES = ("test_faults_engine.py",)
SWARM_FILES = ("test_swarm_platform.py", "test_swarm_store.py", "test_bench_quick.py")
FIXED_PORT_TESTS = ("test_the_quickstart_runs_whole_and_leaves_nothing_running",)
EXAMPLE_IMAGE_TESTS = ("test_example_builds_and_deploys_on_docker",
                       "test_the_docker_variant_migrates_once_in_a_one_off_on_the_shared_volume",
                       "test_init_writes_a_config_with_which_deploy_succeeds_unchanged")


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's, which reads the groups into node IDs
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        filename = item.path.name
        if filename in SERIAL_FILES:
            item.add_marker(pytest.mark.serial)
        elif filename in SWARM_FILES or "swarm" in item.keywords:
            item.add_marker(pytest.mark.xdist_group("swarm"))
        elif "cluster" in item.keywords:
            item.add_marker(pytest.mark.xdist_group("cluster"))
        elif item.originalname in FIXED_PORT_TESTS:
            item.add_marker(pytest.mark.xdist_group("fixed-ports"))
        elif item.originalname in EXAMPLE_IMAGE_TESTS and "docker" in item.name:
            item.add_marker(pytest.mark.xdist_group("example-images"))


@pytest.hookimpl(tryfirst=True)  # before any fixture of the test is set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    config = item.config
    # a worker's --dist is "no"; pytest-xdist tells it of loadgroup in option.loadgroup
    if (hasattr(config, "workerinput") and getattr(config.option, "loadgroup", False)
            and item.get_closest_marker("xdist_group") and "@" not in item.nodeid):
        pytest.fail(f"--dist loadgroup does not group with pytest {pytest.__version__} and this "
                    "pytest-xdist: this test's node ID has no @group, so its group is spread over "
                    "workers (install the test extra's pytest)", pytrace=False)
