"""The container tier's fixtures: the image (built once per session, before any test: see
``tests/conftest.py``) and containers of it that are always removed.

Without podman the tier skips with one line (CI, with GPROXY_REQUIRE_ALL_TIERS=1, turns that
into a failure). A build that fails is an error of every test here, with the script's output.

Concurrency: fixtures run on the test thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import pytest

from harness import container
from harness.container import Container


@pytest.fixture(scope="session")
def image() -> str:
    if container.find_podman() is None:
        pytest.skip("podman not found: the container tier builds and runs the image with it "
                    "(apt-get install podman runc mmdebstrap)")
    try:
        return container.build_image()
    except container.ContainerError as error:
        pytest.fail(f"the image did not build: {error}", pytrace=False)


@pytest.fixture
def containers(image: str) -> Iterator[Callable[[Sequence[str]], Container]]:
    """Factory: ``containers(args)`` starts the image with gproxy-mp options ``args``, as
    deploy/ runs it, on the host network; each is removed (by its name) at teardown."""
    started: list[Container] = []

    def start(args: Sequence[str]) -> Container:
        started.append(Container(image, args))
        return started[-1]

    try:
        yield start
    finally:
        for each in started:
            each.remove()
