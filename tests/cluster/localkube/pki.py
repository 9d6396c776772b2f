"""The cluster's certificates and keys, made with ``cryptography``.

One self-signed CA signs the API server's serving certificate and the client
certificates of the admin (``system:masters``), the controller-manager and the
scheduler. A separate key pair signs service-account tokens. Everything is ECDSA
P-256: quick to generate and accepted by every component.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)


@dataclasses.dataclass(frozen=True)
class Identity:
    """A client identity: certificate common name and groups."""

    name: str
    """File stem under ``pki/`` and kubeconfig user name."""
    user: str
    """The certificate's CN, the Kubernetes user name."""
    groups: tuple[str, ...] = ()
    """The certificate's O entries, the Kubernetes groups."""


ADMIN = Identity("admin", "kubernetes-admin", ("system:masters",))
CONTROLLER_MANAGER = Identity("controller-manager", "system:kube-controller-manager")
SCHEDULER = Identity("scheduler", "system:kube-scheduler")
APISERVER_KUBELET = Identity(
    "apiserver-kubelet-client", "kube-apiserver-kubelet-client", ("system:masters",)
)
CLIENTS = (ADMIN, CONTROLLER_MANAGER, SCHEDULER, APISERVER_KUBELET)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _builder(
    subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


@dataclasses.dataclass(frozen=True)
class Pki:
    """The files of the cluster's PKI in one directory."""

    directory: Path

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.directory / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.directory / "apiserver.key"

    @property
    def kubelet_cert(self) -> Path:
        """The node agent's serving certificate (its kubelet API, for ``kubectl logs``)."""
        return self.directory / "kubelet.crt"

    @property
    def kubelet_key(self) -> Path:
        return self.directory / "kubelet.key"

    @property
    def sa_key(self) -> Path:
        """Service-account token signing key (private)."""
        return self.directory / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.directory / "sa.pub"

    def client_cert(self, identity: Identity) -> Path:
        return self.directory / f"{identity.name}.crt"

    def client_key(self, identity: Identity) -> Path:
        return self.directory / f"{identity.name}.key"

    def create(self, hosts: list[str], addresses: list[str]) -> None:
        """Make a fresh CA, serving cert (for ``hosts`` and ``addresses``), clients, SA keys."""
        self.directory.mkdir(parents=True, exist_ok=True)
        ca_key = _key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localkube-ca")])
        ca = (
            _builder(ca_name, ca_name, ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(ca_key, self.ca_key)
        _write_cert(ca, self.ca_cert)

        for name, cert_path, key_path in (
            ("kube-apiserver", self.serving_cert, self.serving_key),
            ("localkube-kubelet", self.kubelet_cert, self.kubelet_key),
        ):
            serving_key = _key()
            sans: list[x509.GeneralName] = [x509.DNSName(h) for h in hosts]
            sans += [x509.IPAddress(ipaddress.ip_address(a)) for a in addresses]
            serving = (
                _builder(
                    x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]),
                    ca_name,
                    serving_key.public_key(),
                )
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
                .sign(ca_key, hashes.SHA256())
            )
            _write_key(serving_key, key_path)
            _write_cert(serving, cert_path)

        for identity in CLIENTS:
            key = _key()
            attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in identity.groups]
            attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, identity.user))
            cert = (
                _builder(x509.Name(attributes), ca_name, key.public_key())
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
                .sign(ca_key, hashes.SHA256())
            )
            _write_key(key, self.client_key(identity))
            _write_cert(cert, self.client_cert(identity))

        sa_key = _key()
        _write_key(sa_key, self.sa_key)
        self.sa_pub.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def write_kubeconfig(self, path: Path, server: str, identity: Identity) -> None:
        """Write a kubeconfig for ``identity`` with the certificates inlined by path.

        JSON is valid YAML, so the file is written with :mod:`json`, not a template.
        """
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "localkube",
                    "cluster": {"server": server, "certificate-authority": str(self.ca_cert)},
                }
            ],
            "users": [
                {
                    "name": identity.user,
                    "user": {
                        "client-certificate": str(self.client_cert(identity)),
                        "client-key": str(self.client_key(identity)),
                    },
                }
            ],
            "contexts": [
                {
                    "name": "localkube",
                    "context": {
                        "cluster": "localkube",
                        "user": identity.user,
                        "namespace": "default",
                    },
                }
            ],
            "current-context": "localkube",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(config, indent=2) + "\n")
        path.chmod(0o600)
