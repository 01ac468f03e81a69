"""The one way image and registry tests skip (tests/image_setup.py): naming what is missing
and how to get it, or failing under MLOPS_REQUIRE_DOCKER=1, where CI must not leave a test
out. Checked against a port where nothing listens and a PATH without docker-registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import image_setup
from tests.integration.registry_helpers import private_registry
from tests.integration.server_helpers import free_port


def test_nothing_lacking_is_no_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_REQUIRE_DOCKER", "1")  # a wrong skip would be a failure
    image_setup.needs([])


@pytest.mark.parametrize("required", ["", "1"])
def test_what_is_lacking_is_a_skip_or_under_require_docker_a_failure(
    required: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_REQUIRE_DOCKER", required)
    stop = pytest.fail.Exception if required else pytest.skip.Exception
    with pytest.raises(stop, match=r"^needs a thing \(how\); another$"):
        image_setup.needs(["a thing (how)", "another"])


def test_with_everything_there_require_gives_the_engine() -> None:
    client = image_setup.require(base_image=True, registry=True)
    assert client.ping() is True
    assert client.images.get(image_setup.BASE_IMAGE).id.startswith("sha256:")


def test_the_shared_registry_answers_or_the_test_says_where_none_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = image_setup.shared_registry()  # the one .ci/run starts: here, it answers
    assert registry.unreachable() is None
    nowhere = f"127.0.0.1:{free_port()}"
    monkeypatch.setattr(image_setup, "REGISTRY", nowhere)
    monkeypatch.delenv("MLOPS_REQUIRE_DOCKER", raising=False)
    with pytest.raises(pytest.skip.Exception) as caught:
        image_setup.shared_registry()
    assert str(caught.value).startswith(f"needs a registry on {nowhere} (.ci/run starts one): ")


def test_a_private_registry_needs_the_docker_registry_binary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker-registry on it
    monkeypatch.setenv("MLOPS_REQUIRE_DOCKER", "1")
    with (
        pytest.raises(pytest.fail.Exception, match=r"needs docker-registry \(.ci/run installs"),
        private_registry(tmp_path),
    ):
        pass
