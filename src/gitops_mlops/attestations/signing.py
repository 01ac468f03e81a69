"""Keys and DSSE envelopes: securesystemslib's Envelope and signers on pyca/cryptography.

A signing key is a PEM private key, ECDSA P-256 or Ed25519, from `--signing-key FILE` or the
`MLOPS_SIGNING_KEY` variable (the PEM text itself, so a CI secret needs no file). A key's
fingerprint is the sha256 of its public key's DER SubjectPublicKeyInfo, the same bytes
`openssl pkey -pubout -outform DER | sha256sum` hashes; it is also the signature's keyid.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gitops_mlops.errors import MlopsError, VerificationFailed

PAYLOAD_TYPE = "application/vnd.in-toto+json"
KEY_LIMIT = 64 * 1024
ENV_KEY = "MLOPS_SIGNING_KEY"


class KeyUnusable(MlopsError):
    """A key that cannot be used: unreadable, encrypted, or of a kind we do not sign with."""


class SignatureInvalid(VerificationFailed):
    """An envelope whose signature does not check out against the key."""


@dataclass(frozen=True)
class PublicKey:
    """A public key to check signatures with, and its fingerprint."""

    fingerprint: str  # sha256:<hex> of the DER SubjectPublicKeyInfo
    kind: str  # ecdsa-p256 | ed25519
    key: Any  # securesystemslib SSlibKey

    def verify(self, envelope: Mapping[str, Any]) -> bytes:
        """The envelope's payload when one of its signatures is this key's; else KeyUnusable."""
        from securesystemslib.dsse import Envelope
        from securesystemslib.exceptions import VerificationError

        try:
            parsed = Envelope.from_dict(json.loads(json.dumps(envelope)))
        except (KeyError, ValueError, TypeError) as err:
            raise SignatureInvalid(f"not a DSSE envelope ({err})") from None
        if parsed.payload_type != PAYLOAD_TYPE:
            raise SignatureInvalid(f"payload type {parsed.payload_type!r}, not {PAYLOAD_TYPE}")
        if not parsed.signatures:
            raise SignatureInvalid("the envelope is not signed")
        if self.key.keyid not in parsed.signatures:
            others = ", ".join(sorted(parsed.signatures))
            raise SignatureInvalid(f"signed by another key ({others}), not {self.fingerprint}")
        try:
            parsed.verify([self.key], 1)
        except (VerificationError, ValueError) as err:
            raise SignatureInvalid(f"the signature does not match the content ({err})") from None
        return bytes(parsed.payload)


@dataclass(frozen=True)
class SigningKey:
    public: PublicKey
    signer: Any  # securesystemslib CryptoSigner

    def sign(self, statement: Mapping[str, Any]) -> dict[str, Any]:
        return envelope(statement, self)


def _fingerprint(public: Any) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    der = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _kind(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) and isinstance(
        key.curve, ec.SECP256R1
    ):
        return "ecdsa-p256"
    raise KeyUnusable(
        f"a {type(key).__name__.lstrip('_')} key cannot sign here; use ECDSA P-256 or Ed25519 "
        "(`openssl genpkey -algorithm ed25519`)"
    )


def _public(crypto_public: Any) -> PublicKey:
    from securesystemslib.signer import SSlibKey

    fingerprint = _fingerprint(crypto_public)
    kind = _kind(crypto_public)
    return PublicKey(fingerprint, kind, SSlibKey.from_crypto(crypto_public, keyid=fingerprint))


def load_private(pem: bytes, where: str) -> SigningKey:
    """A signing key from PEM text; KeyUnusable says why it cannot be used (never the key)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    from securesystemslib.signer import CryptoSigner

    try:
        private = load_pem_private_key(pem, password=None)
    except TypeError:
        raise KeyUnusable(f"{where}: the private key is encrypted; give it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KeyUnusable(
            f"{where}: not a PEM private key (-----BEGIN PRIVATE KEY-----); "
            "see `mlops verify --help` for how to make one"
        ) from None
    _kind(private)
    public = _public(private.public_key())
    return SigningKey(public, CryptoSigner(private, public.key))


def load_public(path: Path) -> PublicKey:
    """A public key (PEM SubjectPublicKeyInfo) from a file."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    data = _read(path, "public key")
    try:
        public = load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise KeyUnusable(
            f"{path}: not a PEM public key (-----BEGIN PUBLIC KEY-----); "
            "make one with `openssl pkey -in signing.pem -pubout -out signing.pub.pem`"
        ) from None
    return _public(public)


def signing_key(path: Path | None, env: Mapping[str, str]) -> SigningKey | None:
    """`--signing-key FILE`, else MLOPS_SIGNING_KEY's PEM text, else None (unsigned)."""
    if path is not None:
        return load_private(_read(path, "signing key"), str(path))
    text = env.get(ENV_KEY, "").strip()
    if not text:
        return None
    return load_private(text.encode(), ENV_KEY)


def _read(path: Path, what: str) -> bytes:
    try:
        if path.is_symlink():
            raise KeyUnusable(f"{path}: the {what} is a symlink; give the file itself")
        with path.open("rb") as handle:
            data = handle.read(KEY_LIMIT + 1)
    except OSError as err:
        raise KeyUnusable(f"{path}: cannot read the {what} ({err.strerror})") from None
    if len(data) > KEY_LIMIT:
        raise KeyUnusable(f"{path}: over {KEY_LIMIT} bytes, not a {what}")
    return data


def envelope(statement: Mapping[str, Any], key: SigningKey | None) -> dict[str, Any]:
    """The statement as a DSSE envelope: signed with `key`, or with no signature."""
    from securesystemslib.dsse import Envelope

    payload = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    wrapped = Envelope(payload, PAYLOAD_TYPE, {})
    if key is not None:
        wrapped.sign(key.signer)
    data: dict[str, Any] = wrapped.to_dict()
    return data


def payload(envelope_data: Mapping[str, Any]) -> bytes:
    """An envelope's payload, signature unchecked (for reports of unsigned attestations)."""
    from securesystemslib.dsse import Envelope

    try:
        parsed = Envelope.from_dict(json.loads(json.dumps(envelope_data)))
    except (KeyError, ValueError, TypeError) as err:
        raise SignatureInvalid(f"not a DSSE envelope ({err})") from None
    if parsed.payload_type != PAYLOAD_TYPE:
        raise SignatureInvalid(f"payload type {parsed.payload_type!r}, not {PAYLOAD_TYPE}")
    return bytes(parsed.payload)


def signers(envelope_data: Mapping[str, Any]) -> list[str]:
    """The keyids that signed an envelope (their fingerprints, for our keys)."""
    return [
        str(s.get("keyid")) for s in envelope_data.get("signatures") or [] if isinstance(s, Mapping)
    ]
