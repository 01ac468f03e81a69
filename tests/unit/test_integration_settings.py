"""Settings of the Dask and object-storage integrations, resolved from the environment."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from gitops_mlops.errors import MlopsError
from gitops_mlops.integrations import dask, storage


def test_the_spec_s_scheduler_wins_over_the_environment() -> None:
    env = {"MLOPS_DASK_SCHEDULER": "tcp://env:8786"}
    assert dask.settings("tcp://spec:8786", env).address == "tcp://spec:8786"
    assert dask.settings(None, env) == dask.DaskSettings("tcp://env:8786", dask.DEFAULT_TIMEOUT)


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({}, "no scheduler is given: set MLOPS_DASK_SCHEDULER"),
        ({"MLOPS_DASK_SCHEDULER": "tcp://s:1", "MLOPS_DASK_TIMEOUT": "soon"}, "not a number"),
        ({"MLOPS_DASK_SCHEDULER": "tcp://s:1", "MLOPS_DASK_TIMEOUT": "0"}, "between 0 and 3600"),
    ],
)
def test_dask_settings_errors(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(dask.DaskError, match=fragment):
        dask.settings(None, env)


# Every timeout setting of the integrations, and how to read it: they all go through
# integrations.waits, so they take the same values and refuse the same ones alike.
TIMEOUT_SETTINGS = {
    "MLOPS_DASK_TIMEOUT": lambda env: dask.settings("tcp://s:1", env).timeout,
    "MLOPS_STORAGE_READ_TIMEOUT": lambda env: storage.StorageSettings.from_env(env).read_timeout,
}


@pytest.mark.parametrize("name", sorted(TIMEOUT_SETTINGS))
@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("soon", "is not a number of seconds"),
        ("0", "must be between 0 and 3600 seconds"),
        ("-5", "must be between 0 and 3600 seconds"),
        ("3601", "must be between 0 and 3600 seconds"),
        ("nan", "must be between 0 and 3600 seconds"),
        ("inf", "must be between 0 and 3600 seconds"),
    ],
)
def test_every_timeout_setting_refuses_the_same_values(name: str, raw: str, fragment: str) -> None:
    with pytest.raises(MlopsError, match=f"^{name}='{raw}' {fragment}$"):
        TIMEOUT_SETTINGS[name]({name: raw})


@pytest.mark.parametrize("name", sorted(TIMEOUT_SETTINGS))
def test_every_timeout_setting_takes_fractions_and_an_hour(name: str) -> None:
    assert TIMEOUT_SETTINGS[name]({name: " 2.5 "}) == 2.5
    assert TIMEOUT_SETTINGS[name]({name: "3600"}) == 3600


@pytest.mark.parametrize(
    "address",
    ["ucx://127.0.0.1:8786", "inproc://x", "ws://h:8786", "tcp://h", "h", "tcp://h:port"],
)
def test_only_tcp_and_tls_addresses_are_accepted(address: str) -> None:
    env = {"MLOPS_DASK_SCHEDULER": address}
    with pytest.raises(dask.DaskError) as raised:
        dask.settings(None, env)
    said = str(raised.value)
    assert f"{address!r} is not a Dask scheduler address we can connect to" in said
    assert "expected tcp://HOST:PORT" in said
    assert "(the address is from MLOPS_DASK_SCHEDULER)" in said


@pytest.mark.parametrize("address", ["tcp://h:8786", "TCP://h:8786", "tls://h:1", "h:8786"])
def test_tcp_and_tls_addresses_and_bare_host_port(address: str) -> None:
    assert dask.settings(address, {}).address == address


@pytest.mark.parametrize(
    "address", ["tcp://user:s3cretpw@h:8786", "user:s3cretpw@h:8786", "tcp://:s3cretpw@h:1"]
)
def test_a_password_in_the_address_is_never_shown(address: str) -> None:
    with pytest.raises(dask.DaskError) as raised:
        dask.settings(None, {"MLOPS_DASK_SCHEDULER": address})
    assert "s3cretpw" not in str(raised.value)
    assert "has user info" in str(raised.value)


def test_errors_about_the_spec_s_address_are_located_there() -> None:
    with pytest.raises(dask.DaskError, match=r"^m/mlops.yaml:9:16: 'ucx://h:1' is not a Dask"):
        dask.settings("ucx://h:1", {}, located="m/mlops.yaml:9:16")
    # An address from the environment is not located at the spec.
    from_env = dask.settings(None, {"MLOPS_DASK_SCHEDULER": "tcp://h:1"}, "m/mlops.yaml:9:16")
    assert from_env.located == ""


def test_credentials_never_reach_a_message() -> None:
    env = {"AWS_SECRET_ACCESS_KEY": "s3cr3t-value", "AWS_SESSION_TOKEN": "tok-en-value"}
    store = storage.Store.for_url("s3://bucket/key.csv", storage.StorageSettings.from_env(env))
    said = store.say("signature s3cr3t-value did not match for tok-en-value")
    assert "s3cr3t-value" not in said and "tok-en-value" not in said


def test_s3_options_come_from_the_environment_mapping() -> None:
    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
        "AWS_ACCESS_KEY_ID": "id",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_REGION": "eu-west-1",
    }
    options = storage.Store.for_url("s3://b/k.csv", storage.StorageSettings.from_env(env)).options
    assert options["client_kwargs"] == {
        "endpoint_url": "http://127.0.0.1:9000",
        "region_name": "eu-west-1",
    }
    assert (options["key"], options["secret"]) == ("id", "secret")
    assert options["config_kwargs"]["connect_timeout"] == storage.CONNECT_TIMEOUT


@pytest.mark.skipif(importlib.util.find_spec("gcsfs") is not None, reason="gcsfs is installed")
def test_a_missing_extra_says_what_to_install() -> None:
    store = storage.Store.for_url("gs://bucket/train.csv", storage.StorageSettings({}))
    with (
        pytest.raises(storage.StorageError, match=r"pip install 'gitops-mlops\[gs\]'"),
        storage.from_start(store),
    ):
        pass


def test_storage_settings_hold_only_the_stores_variables() -> None:
    env = {"AWS_REGION": "eu-west-1", "AZURE_STORAGE_KEY": "k", "GITHUB_TOKEN": "t", "HOME": "/h"}
    settings = storage.StorageSettings.from_env(env)
    assert dict(settings.variables) == {"AWS_REGION": "eu-west-1", "AZURE_STORAGE_KEY": "k"}


def test_the_read_timeout_setting_and_the_bound_the_readme_gives() -> None:
    """Each S3 request: 3 attempts of 10 s to connect and 60 s without a byte, and
    botocore's backoff between them; README's "Data in object storage" says 213 s."""
    default = storage.StorageSettings.from_env({})
    assert default.read_timeout == storage.READ_TIMEOUT == 60
    assert default.worst_wait == 213
    options = storage.Store.for_url("s3://bucket/k.csv", default).options
    assert options["config_kwargs"]["read_timeout"] == 60
    assert options["config_kwargs"]["retries"] == {"max_attempts": 3, "mode": "standard"}
    short = storage.StorageSettings.from_env({"MLOPS_STORAGE_READ_TIMEOUT": "2.5"})
    assert short.read_timeout == 2.5
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "213 s" in readme and "MLOPS_STORAGE_READ_TIMEOUT" in readme


@pytest.mark.parametrize(("raw", "fragment"), [("soon", "not a number"), ("0", "between 0")])
def test_a_bad_read_timeout_is_refused(raw: str, fragment: str) -> None:
    with pytest.raises(storage.StorageError, match=fragment):
        storage.StorageSettings.from_env({"MLOPS_STORAGE_READ_TIMEOUT": raw})
