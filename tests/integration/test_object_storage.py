"""Data in object storage, against a real S3 endpoint on loopback (moto's server mode).

The CLI reads `s3://` objects with the credentials of the environment; the data digest is
the sha256 of the object's bytes, the same as for a local copy; failures are errors at the
spec line with the URL and never a credential; a large object streams with bounded memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.integration.helpers import write_spec
from tests.integration.server_helpers import free_port
from tests.integration.services import clean_env

pytest.importorskip("s3fs", reason="needs gitops-mlops[s3] (s3fs)")
moto_server = pytest.importorskip("moto.server", reason="needs moto[server]")

BUCKET = "acme-data"
SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
MODEL = "model:\n  estimator: sklearn.linear_model.LogisticRegression\n  params: {max_iter: 500}\n"


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, str]]:
    """A moto S3 endpoint; the environment a client needs to reach it."""
    import boto3

    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = clean_env(
        AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}",
        AWS_ACCESS_KEY_ID="AKIAIOSFODNN7EXAMPLE",
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION="us-east-1",
    )
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=SECRET,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    try:
        yield env
    finally:
        server.stop()


def put(env: dict[str, str], key: str, body: bytes) -> None:
    import boto3

    boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    ).put_object(Bucket=BUCKET, Key=key, Body=body)


def iris_csv() -> bytes:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    return bytes(frame.to_csv(index=False).encode())


def iris_parquet() -> bytes:
    from sklearn.datasets import load_iris

    buffer = io.BytesIO()
    load_iris(as_frame=True).frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def spec_with(folder: Path, train: str, test: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = f'data:\n  train: {{path: "{train}", target: target}}\n'
    if test is not None:
        data += f'  test: {{path: "{test}"}}\n'
    return write_spec(folder, "task: classification\n" + data + MODEL)


def manifest(run: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((run / "model" / "manifest.json").read_text())
    return loaded


def test_a_csv_object_trains_the_model_a_local_copy_trains(
    s3: dict[str, str], tmp_path: Path
) -> None:
    body = iris_csv()
    put(s3, "iris/train.csv", body)
    remote = spec_with(tmp_path / "remote", f"s3://{BUCKET}/iris/train.csv")
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "train.csv").write_bytes(body)
    local = spec_with(tmp_path / "local", "train.csv")

    result = run_cli("run", str(remote), "--until", "train", "--out", str(tmp_path / "r"), env=s3)
    assert result.code == 0, result.out + result.err
    copy = run_cli("run", str(local), "--until", "train", "--out", str(tmp_path / "l"), env=s3)
    assert copy.code == 0, copy.out + copy.err
    ours, theirs = manifest(tmp_path / "r"), manifest(tmp_path / "l")
    train_digest = hashlib.sha256(body).hexdigest()
    assert ours["data_digest"] == f"sha256:{hashlib.sha256(train_digest.encode()).hexdigest()}"
    assert ours["data_digest"] == theirs["data_digest"]
    assert ours["model_version"] == theirs["model_version"]


def test_mlops_evaluate_reads_the_object_with_the_command_s_settings(
    s3: dict[str, str], tmp_path: Path
) -> None:
    """`mlops evaluate RUN_DIR` reads the data again, with the store settings of the
    environment the command was given (this process's has none of them)."""
    assert not any(k.startswith("AWS_ENDPOINT") for k in os.environ)
    put(s3, "iris/evaluate.csv", iris_csv())
    spec = spec_with(tmp_path / "p", f"s3://{BUCKET}/iris/evaluate.csv")
    run = tmp_path / "r"
    trained = run_cli("run", str(spec), "--until", "train", "--out", str(run), env=s3)
    assert trained.code == 0, trained.out + trained.err
    result = run_cli("evaluate", str(run), env=s3)
    assert result.code == 0, result.out + result.err
    assert "accuracy" in json.loads((run / "metrics.json").read_text())["metrics"]


def test_the_image_s_onnx_check_reads_the_object_with_the_command_s_settings(
    s3: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`mlops build` and `mlops serve --runtime onnx` prove the ONNX model on the test rows,
    read again with the store settings of the command's environment; this process's point
    at a port where nothing answers, so reading with them would fail."""
    from gitops_mlops.rundir import RunDir
    from gitops_mlops.serving.runtimes import RUNTIME_FILE
    from gitops_mlops.stages.build import BuildContext, build
    from gitops_mlops.stages.validate import load

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    body = iris_csv()
    put(s3, "iris/image.csv", body)
    spec = spec_with(tmp_path / "p", f"s3://{BUCKET}/iris/image.csv")
    spec.write_text(spec.read_text() + "container: {image: localhost:5000/test/iris}\n")
    run = tmp_path / "r"
    trained = run_cli("run", str(spec), "--until", "train", "--out", str(run), env=s3)
    assert trained.code == 0, trained.out + trained.err

    # Changed since training: refused with the check's own words, which only a read of the
    # object (its digest) can lead to.
    put(s3, "iris/image.csv", body + body.splitlines(keepends=True)[1])
    for command in (["build"], ["serve", "--runtime", "onnx"]):
        result = run_cli(*command, str(run), env=s3)
        assert result.code == 1, result.out + result.err
        assert (
            "the data changed since the model was trained, so the ONNX model cannot be "
            "compared on its test set" in result.err
        ), (command, result.err)
        assert "Traceback" not in result.out + result.err

    # As trained: the build stage's check passes (it stops at the engine, which is away).
    put(s3, "iris/image.csv", body)
    env = {**s3, "DOCKER_HOST": f"tcp://127.0.0.1:{free_port()}"}
    context = BuildContext(load(spec), RunDir(run), "unused", False, env, False)
    assert not build(context).built
    proof = json.loads((RunDir(run).onnx_dir / RUNTIME_FILE).read_text())
    assert proof["comparison"]["passed"], proof
    assert proof["comparison"]["rows"] == 30  # iris' 150 rows, 20 % held out


def test_parquet_training_data_with_a_csv_test_set(s3: dict[str, str], tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame.sample(frac=1.0, random_state=0)
    buffer = io.BytesIO()
    frame.iloc[:120].to_parquet(buffer, index=False)
    put(s3, "iris/train.parquet", buffer.getvalue())
    put(s3, "iris/test.csv", frame.iloc[120:].to_csv(index=False).encode())
    spec = spec_with(tmp_path, f"s3://{BUCKET}/iris/train.parquet", f"s3://{BUCKET}/iris/test.csv")
    result = run_cli("run", str(spec), "--until", "evaluate", "--out", str(tmp_path / "r"), env=s3)
    assert result.code == 0, result.out + result.err
    assert manifest(tmp_path / "r")["n_train"] == 120
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["n_test"] == 30


def located_failure(spec: Path, out: Path, env: dict[str, str]) -> str:
    """Run the spec; it must fail with exit 1 at the data.train.path line (line 6)."""
    result = run_cli("run", str(spec), "--until", "train", "--out", str(out), env=env)
    assert result.code == 1, result.out + result.err
    assert f"{spec}:6:17: " in result.err, result.err
    assert "Traceback" not in result.err + result.out
    assert SECRET not in result.err + result.out
    assert env["AWS_ACCESS_KEY_ID"] not in result.err + result.out
    return result.err


def test_a_missing_bucket(s3: dict[str, str], tmp_path: Path) -> None:
    spec = spec_with(tmp_path, "s3://no-such-bucket/train.csv")
    message = located_failure(spec, tmp_path / "r", s3)
    assert "s3://no-such-bucket/train.csv: no such object (or its bucket does not exist)" in message


def test_a_missing_object(s3: dict[str, str], tmp_path: Path) -> None:
    spec = spec_with(tmp_path, f"s3://{BUCKET}/nothing/here.csv")
    message = located_failure(spec, tmp_path / "r", s3)
    assert f"s3://{BUCKET}/nothing/here.csv: no such object" in message


def test_wrong_credentials(s3: dict[str, str], tmp_path: Path) -> None:
    from moto.core.authorization import enable_iam_authentication

    put(s3, "iris/secured.csv", iris_csv())
    spec = spec_with(tmp_path, f"s3://{BUCKET}/iris/secured.csv")
    wrong = {**s3, "AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1", "AWS_SECRET_ACCESS_KEY": SECRET}
    with enable_iam_authentication():  # moto now checks keys against its IAM users
        message = located_failure(spec, tmp_path / "r", wrong)
    assert f"s3://{BUCKET}/iris/secured.csv: access denied" in message
    assert "check the credentials in the environment (AWS_ACCESS_KEY_ID" in message


def test_an_endpoint_that_does_not_answer(s3: dict[str, str], tmp_path: Path) -> None:
    spec = spec_with(tmp_path, f"s3://{BUCKET}/iris/train.csv")
    away = {**s3, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    message = located_failure(spec, tmp_path / "r", away)
    assert f"s3://{BUCKET}/iris/train.csv: cannot read it" in message


@pytest.fixture
def silent() -> Iterator[str]:
    """An endpoint that accepts connections and never answers (a hung proxy or store)."""
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:  # closed below
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()
        for connection in held:
            connection.close()


def test_an_endpoint_that_never_answers_fails_within_the_attempts(
    s3: dict[str, str], tmp_path: Path, silent: str
) -> None:
    """botocore's 3 attempts of one read timeout each, and no more: s3fs's own 5 retries
    around them are off (they made the README's 3-attempt bound 5 times longer, for the HEAD
    and again for the GET). MLOPS_STORAGE_READ_TIMEOUT=2 keeps the test short."""
    import time

    from gitops_mlops.integrations import storage

    spec = spec_with(tmp_path, f"s3://{BUCKET}/iris/train.csv")
    env = {**s3, "AWS_ENDPOINT_URL": silent, "MLOPS_STORAGE_READ_TIMEOUT": "2"}
    started = time.monotonic()
    message = located_failure(spec, tmp_path / "r", env)
    took = time.monotonic() - started
    assert f"s3://{BUCKET}/iris/train.csv: cannot read it" in message
    # One request's attempts (the connection is accepted at once), their backoff, and the
    # process's own work; with s3fs's retries it took 5 times the attempts at least.
    bound = storage.ATTEMPTS * 2 + storage.BACKOFF + 15
    assert took < bound, f"{took:.1f} s: {message}"


def test_a_key_with_a_space_is_named_percent_encoded(s3: dict[str, str], tmp_path: Path) -> None:
    put(s3, "weird key/a b.csv", iris_csv())
    spec = spec_with(tmp_path, f"s3://{BUCKET}/weird%20key/a%20b.csv")
    result = run_cli("run", str(spec), "--until", "train", "--out", str(tmp_path / "r"), env=s3)
    assert result.code == 0, result.out + result.err


def test_no_credentials_at_all_says_what_to_set(s3: dict[str, str], tmp_path: Path) -> None:
    spec = spec_with(tmp_path, f"s3://{BUCKET}/iris/train.csv")
    nothing = clean_env(
        AWS_ENDPOINT_URL=s3["AWS_ENDPOINT_URL"],
        AWS_DEFAULT_REGION="us-east-1",
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        AWS_CONFIG_FILE=str(tmp_path / "none"),
        AWS_EC2_METADATA_DISABLED="true",  # no instance role to look for on this machine
    )
    result = run_cli(
        "run", str(spec), "--until", "train", "--out", str(tmp_path / "r"), env=nothing
    )
    assert result.code == 1, result.out + result.err
    assert (
        f"{spec}:6:17: s3://{BUCKET}/iris/train.csv: no credentials found; set them in the "
        "environment (AWS_ACCESS_KEY_ID"
    ) in result.err, result.err


def test_a_parse_error_in_an_object_is_a_spec_error(s3: dict[str, str], tmp_path: Path) -> None:
    put(s3, "bad.parquet", b"this is not parquet")
    spec = spec_with(tmp_path, f"s3://{BUCKET}/bad.parquet")
    result = run_cli("run", str(spec), "--until", "train", "--out", str(tmp_path / "r"), env=s3)
    assert result.code == 2, result.out + result.err
    assert f"{spec}:6:17: cannot read s3://{BUCKET}/bad.parquet as parquet" in result.out


# Peak resident memory while a fresh process loads a spec's data, above where it started.
# Sampled from /proc (ru_maxrss would keep a peak from before the load).
MEASURE = textwrap.dedent(
    """
    import json, os, sys, threading
    from pathlib import Path
    import pandas, s3fs, sklearn.model_selection
    from gitops_mlops import datasets
    from gitops_mlops.stages.validate import load

    def resident():
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    spec = load(Path(sys.argv[1]))
    start, peak, done = resident(), [0], threading.Event()

    def sample():
        while not done.wait(0.005):
            peak[0] = max(peak[0], resident())

    sampler = threading.Thread(target=sample)
    sampler.start()
    data = datasets.load(spec)
    done.set()
    sampler.join()
    grew = (max(peak[0], resident()) - start) / 2**20
    print(json.dumps({"grew_mib": grew, "rows": len(data.x_train), "digest": data.digest}))
    """
)


def peak_growth(spec: Path, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    measured: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return measured


@pytest.mark.slow
def test_a_large_object_streams_with_bounded_memory(s3: dict[str, str], tmp_path: Path) -> None:
    """A 96 MiB CSV read from S3 peaks at most 48 MiB above reading the same file from disk:
    the object is never held whole in memory (that alone would be 96 MiB more)."""
    import numpy as np

    rng = np.random.default_rng(0)
    block = "\n".join(
        ",".join(f"{v:.6f}" for v in row) + f",{i % 3}"
        for i, row in enumerate(rng.random((4000, 12)))
    )
    header = ",".join(f"f{i}" for i in range(12)) + ",target\n"
    body = (header + "\n".join([block] * 250) + "\n").encode()
    size_mib = len(body) / 2**20
    assert size_mib > 90
    put(s3, "big/train.csv", body)
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "train.csv").write_bytes(body)
    del body
    remote = peak_growth(spec_with(tmp_path / "remote", f"s3://{BUCKET}/big/train.csv"), s3)
    local = peak_growth(spec_with(tmp_path / "local", "train.csv"), s3)
    assert remote["digest"] == local["digest"]
    extra = remote["grew_mib"] - local["grew_mib"]
    print(
        f"\n{size_mib:.0f} MiB CSV: peak memory +{remote['grew_mib']:.0f} MiB from S3, "
        f"+{local['grew_mib']:.0f} MiB from disk ({extra:+.0f} MiB for streaming)"
    )
    assert extra < 48, (remote, local)


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes of every ranged GET s3fs sends (the real requests go out; we only add them)."""
    import s3fs.core

    sizes: list[int] = []
    original = s3fs.core.S3File._fetch_range

    def counting(self: Any, start: int, end: int) -> bytes:
        data: bytes = original(self, start, end)
        sizes.append(len(data))
        return data

    monkeypatch.setattr(s3fs.core.S3File, "_fetch_range", counting)
    return sizes


def big_frame(rows: int) -> Any:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.random((rows, 8)), columns=[f"f{i}" for i in range(8)])
    frame["species"] = np.where(frame["f0"] > 0.5, "a", "b")
    return frame


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_mlops_columns_reads_only_the_header_or_the_schema(
    s3: dict[str, str],
    tmp_path: Path,
    fetched: list[int],
    kind: str,
) -> None:
    frame = big_frame(400_000)
    buffer = io.BytesIO()
    if kind == "csv":
        frame.to_csv(buffer, index=False)
    else:
        frame.to_parquet(buffer, index=False, compression=None)
    body = buffer.getvalue()
    assert len(body) > 20 * 2**20
    put(s3, f"wide/train.{kind}", body)
    spec = tmp_path / "mlops.yaml"
    spec.write_text(
        "apiVersion: mlops/v1\nkind: ModelPipeline\nmetadata: {name: wide}\n"
        "task: classification\n"
        f'data:\n  train: {{path: "s3://{BUCKET}/wide/train.{kind}", target: species}}\n'
        "model:\n  estimator: sklearn.linear_model.LogisticRegression\n"
    )
    # The store's settings come from the command's environment only (not this process's).
    result = run_cli("columns", str(spec), "--format", "json", env=s3)
    assert result.code == 0, result.out + result.err
    listed = json.loads(result.out)[0]
    assert [c["name"] for c in listed["columns"]] == [*(f"f{i}" for i in range(8)), "species"]
    assert fetched, "nothing was read from S3"
    # The header reader takes at most 1 MiB, and the dtypes a 1,000-row sample: bounded,
    # whatever the size of the object.
    assert sum(fetched) < 2 * 2**20, f"read {sum(fetched)} of {len(body)} bytes"


def test_mlops_columns_on_a_missing_object_says_so(s3: dict[str, str], tmp_path: Path) -> None:
    """Located at the spec line, as `mlops run` locates it: exit 1, the store is at fault."""
    spec = spec_with(tmp_path, f"s3://{BUCKET}/nothing.csv")
    result = run_cli("columns", str(spec), env=s3)
    assert result.code == 1, result.out + result.err
    assert f"{spec}:6:17: s3://{BUCKET}/nothing.csv: no such object" in result.err, result.err


def test_mlops_columns_on_a_missing_or_unparsable_file_is_located(
    s3: dict[str, str], tmp_path: Path
) -> None:
    """A missing local file and a file that is not what the spec says are spec errors at
    the path's line (exit 2), as `mlops run` reports them."""
    missing = spec_with(tmp_path / "missing", "nothing.csv")
    result = run_cli("columns", str(missing), env=s3)
    assert result.code == 2, result.out + result.err
    assert f"{missing}:6:17: data file 'nothing.csv' not found" in result.out + result.err

    put(s3, "columns/bad.parquet", b"this is not parquet")
    bad = spec_with(tmp_path / "bad", f"s3://{BUCKET}/columns/bad.parquet")
    result = run_cli("columns", str(bad), env=s3)
    assert result.code == 2, result.out + result.err
    assert f"{bad}:6:17: cannot read 's3://{BUCKET}/columns/bad.parquet' as Parquet" in (
        result.out + result.err
    )
    assert "Traceback" not in result.out + result.err


@pytest.fixture
def https_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A TLS file server on loopback with a self-signed certificate the client trusts
    (SSL_CERT_FILE); its base URL and the folder it serves."""
    import datetime
    import functools
    import http.server
    import ipaddress
    import ssl
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tls / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    served = tmp_path / "served"
    served.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        """A static file server (it ignores `Range`, as most do); `/forbidden*` answers 403,
        as S3 does for a pre-signed URL that has expired."""

        def send_head(self) -> Any:
            if self.path.startswith("/forbidden"):
                self.send_error(403)
                return None
            return super().send_head()

    handler = functools.partial(Handler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls / "cert.pem", tls / "key.pem")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("SSL_CERT_FILE", str(tls / "cert.pem"))  # OpenSSL reads it here
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()


def test_an_https_url_is_read_over_tls(https_folder: tuple[str, Path], tmp_path: Path) -> None:
    base, served = https_folder
    body = iris_csv()
    (served / "iris.csv").write_bytes(body)
    spec = spec_with(tmp_path / "project", f"{base}/iris.csv")
    # Its own process: OpenSSL reads SSL_CERT_FILE when the client's TLS context is made.
    env = clean_env()
    result = mlops("run", str(spec), "--until", "train", "--out", str(tmp_path / "r"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    train_digest = hashlib.sha256(body).hexdigest()
    expected = hashlib.sha256(train_digest.encode()).hexdigest()
    assert manifest(tmp_path / "r")["data_digest"] == f"sha256:{expected}"

    missing = spec_with(tmp_path / "missing", f"{base}/nothing.csv")
    result = mlops("run", str(missing), "--until", "train", "--out", str(tmp_path / "m"), env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{base}/nothing.csv: no such object (the server answers 404)" in result.stderr

    untrusted = {k: v for k, v in env.items() if k != "SSL_CERT_FILE"}
    result = mlops(
        "run", str(spec), "--until", "train", "--out", str(tmp_path / "u"), env=untrusted
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{base}/iris.csv: cannot read it:" in result.stderr
    assert "certificate verify failed" in result.stderr


SIGNED = "?X-Amz-Signature=SIGSECRET123abc&X-Amz-Credential=AKIAPRESIGNCRED"


def test_a_presigned_query_is_in_no_output_or_file(
    https_folder: tuple[str, Path], tmp_path: Path
) -> None:
    """The query of a pre-signed URL is its credential: not in an error (aiohttp's own
    message quotes the URL it requested), not in the model card (which goes to MLflow and
    into the SBOM), not anywhere in the run directory."""
    base, served = https_folder
    (served / "iris.csv").write_bytes(iris_csv())
    env = clean_env()

    denied = spec_with(tmp_path / "denied", f"{base}/forbidden.csv{SIGNED}")
    result = mlops("run", str(denied), "--until", "train", "--out", str(tmp_path / "d"), env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{denied}:6:17: {base}/forbidden.csv: access denied (403" in result.stderr
    assert "pre-signed URL may have expired" in result.stderr
    assert "SIGSECRET" not in result.stdout + result.stderr
    assert "AKIAPRESIGN" not in result.stdout + result.stderr

    spec = spec_with(tmp_path / "ok", f"{base}/iris.csv{SIGNED}")
    run = tmp_path / "r"
    result = mlops("run", str(spec), "--until", "evaluate", "--out", str(run), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    result = mlops("report", str(run), env=env)  # writes model-card.md
    assert result.returncode == 0, result.stdout + result.stderr
    card = next(run.rglob("model-card.md")).read_text()
    assert f"{base}/iris.csv" in card
    leaked = [
        str(path)
        for path in run.rglob("*")
        if path.is_file()
        and (b"SIGSECRET" in path.read_bytes() or b"AKIAPRESIGN" in path.read_bytes())
    ]
    assert not leaked
    assert "SIGSECRET" not in result.stdout + result.stderr


def test_a_server_that_ignores_range_is_read_as_a_stream(
    https_folder: tuple[str, Path], tmp_path: Path
) -> None:
    """The test server answers every GET with the whole file (no `Range`), as most static
    file servers do: a CSV larger than one 8 MiB request trains, with the digest of its bytes,
    and `mlops columns` reads its header."""
    base, served = https_folder
    body = big_frame(120_000).to_csv(index=False).encode()
    # Past the first 8 MiB request and its read-ahead: the ranged reads begin after 0.
    assert len(body) > 16 * 2**20
    (served / "big.csv").write_bytes(body)
    spec = tmp_path / "p" / "mlops.yaml"
    spec.parent.mkdir()
    spec.write_text(
        "apiVersion: mlops/v1\nkind: ModelPipeline\nmetadata: {name: big}\n"
        "task: classification\n"
        f'data:\n  train: {{path: "{base}/big.csv", target: species}}\n'
        "model:\n  estimator: sklearn.linear_model.LogisticRegression\n"
    )
    env = clean_env()
    result = mlops("columns", str(spec), "--format", "json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert [c["name"] for c in json.loads(result.stdout)[0]["columns"]][-1] == "species"
    result = mlops("run", str(spec), "--until", "train", "--out", str(tmp_path / "r"), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = hashlib.sha256(hashlib.sha256(body).hexdigest().encode()).hexdigest()
    assert manifest(tmp_path / "r")["data_digest"] == f"sha256:{expected}"


def mlops(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gitops_mlops", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
