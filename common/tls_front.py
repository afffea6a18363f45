"""``make run-https``: the suite behind nginx, on https, on loopback (README, "Deploying").

What a deployment behind a TLS-terminating proxy looks like, on one
machine: nginx (Debian's ``nginx-light``) owns the public https URLs
(``https://localhost:8443`` the issuer, ``:8441`` the web app, ...) and
passes each to its server on the ``*_BIND`` address; the servers trust one
proxy hop (``TRUSTED_PROXIES=1``).  The certificate comes from a local CA
this module generates into ``instance/tls/`` (never committed):

- ``ca.pem``: the CA, to import into a browser if you want the padlock;
- ``localhost.pem`` / ``localhost.key``: the leaf for ``localhost`` and
  ``127.0.0.1``, signed by the CA;
- ``trust.pem``: the public CAs this process trusts (``REQUESTS_CA_BUNDLE``
  or ``SSL_CERT_FILE`` when set, else certifi's) plus ours.  The launcher points its
  children's ``REQUESTS_CA_BUNDLE`` and ``SSL_CERT_FILE`` at it, so the
  apps' calls to the issuer and the API (through nginx) verify the
  certificate as they would in production, and public issuers still work.

The nginx configuration is rendered from ``deploy/nginx/suite.conf.template``.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import shutil
import string
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import certifi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .config import PROJECT_ROOT

#: The template of the nginx configuration (one ``server`` block per component is added).
NGINX_TEMPLATE = PROJECT_ROOT / "deploy" / "nginx" / "suite.conf.template"

#: The ``server`` block of one component (``$public_port``, ``$upstream``, ``$name``).
NGINX_SERVER_TEMPLATE = PROJECT_ROOT / "deploy" / "nginx" / "server.conf.template"

#: The public https URLs of ``make run-https`` (where the browser goes), by variable.
HTTPS_URLS = {
    "ISSUER": "https://localhost:8443/oauth2/default",
    "WEB_BASE_URL": "https://localhost:8441",
    "SPA_BASE_URL": "https://localhost:8442",
    "SERVICE_BASE_URL": "https://localhost:8444",
    "API_URL": "https://localhost:8445",
}

#: The public URL variable -> the variable of that server's listen address.
BIND_VARIABLES = {
    "ISSUER": "ISSUER_BIND",
    "WEB_BASE_URL": "WEB_BIND",
    "SPA_BASE_URL": "SPA_BIND",
    "SERVICE_BASE_URL": "SERVICE_BIND",
    "API_URL": "API_BIND",
}

#: Days the generated CA and leaf are valid; renewed when less than a tenth is left.
CA_DAYS = 3650
LEAF_DAYS = 397  # at most 398, what browsers accept from public CAs

#: The names the leaf certificate is for (subjectAltName, RFC 5280 §4.2.1.6).
LEAF_DNS = ("localhost",)
LEAF_IPS = ("127.0.0.1", "::1")


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by this user only (a private key)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "oauth-flask-samples (development only)"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _still_good(path: Path, days: int) -> bool:
    """Whether the certificate at ``path`` exists and has more than a tenth of ``days`` left."""
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return False
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    return left > datetime.timedelta(days=days / 10)


def _make_ca(directory: Path) -> None:
    """A self-signed CA that may sign server certificates only (RFC 5280 §4.2.1.9 and §4.2.1.3)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = _name("oauth-flask-samples local CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        directory / "ca.key",
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    (directory / "ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_leaf(directory: Path) -> None:
    """The server certificate for ``localhost`` and the loopback addresses, signed by the CA."""
    ca_key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.DNSName(name) for name in LEAF_DNS] + [
        x509.IPAddress(ipaddress.ip_address(ip)) for ip in LEAF_IPS
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(
        directory / "localhost.key",
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    # The leaf first, then the CA: nginx sends the chain as written.
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    (directory / "localhost.pem").write_bytes(chain)


def ensure_certificates(directory: Path) -> Path:
    """The local CA, the leaf and ``trust.pem`` in ``directory``, made (or renewed) when needed.

    :return: the trust bundle (:func:`public_bundle` and our CA) for ``REQUESTS_CA_BUNDLE``.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not _still_good(directory / "ca.pem", CA_DAYS):
        _make_ca(directory)
        (directory / "localhost.pem").unlink(missing_ok=True)
    if not _still_good(directory / "localhost.pem", LEAF_DAYS):
        _make_leaf(directory)
    trust = directory / "trust.pem"
    trust.write_bytes(public_bundle().read_bytes() + b"\n" + (directory / "ca.pem").read_bytes())
    return trust


def public_bundle() -> Path:
    """The CA bundle outbound calls use today: ``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``, else certifi's.

    Extended rather than replaced, so that a machine's own CAs (a company
    proxy's, say) keep working for the issuer and a public issuer still does.
    """
    for variable in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        candidate = Path(os.environ.get(variable) or "/nonexistent")
        if candidate.is_file() and candidate.name != "trust.pem":
            return candidate
    return Path(certifi.where())


def leaf_spki_sha256(directory: Path) -> str:
    """Base64 of the SHA-256 of the leaf's SubjectPublicKeyInfo.

    The value Chromium's ``--ignore-certificate-errors-spki-list`` takes: it
    trusts this one key, not every certificate (the browser test's way to
    trust our CA without installing it).
    """
    cert = x509.load_pem_x509_certificate((directory / "localhost.pem").read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def https_environment(environ: dict[str, str], defaults: dict[str, str]) -> dict[str, str]:
    """The variables ``make run-https`` sets on top of ``environ`` (the settings as read).

    A public URL still at its ``make run`` default becomes its https URL of
    :data:`HTTPS_URLS`; a ``*_BIND`` left empty becomes ``127.0.0.1`` and the
    port of that default (the server stays where ``make run`` has it, nginx
    takes the public port); ``TRUSTED_PROXIES`` ``0`` becomes ``1`` (nginx is
    one hop).  Values you set yourself are kept.
    """
    binds = BIND_VARIABLES
    changes: dict[str, str] = {}
    for variable, https_url in HTTPS_URLS.items():
        if environ.get(variable, defaults[variable]) == defaults[variable]:
            changes[variable] = https_url
        if not environ.get(binds[variable]):
            changes[binds[variable]] = f"127.0.0.1:{urlsplit(defaults[variable]).port}"
    if str(environ.get("TRUSTED_PROXIES", "0")) == "0":
        changes["TRUSTED_PROXIES"] = "1"
    return changes


def render_nginx(directory: Path, fronts: dict[str, tuple[str, str]]) -> Path:
    """Write ``directory/nginx.conf`` from the templates; return its path.

    :param fronts: component name -> (public https URL, ``host:port`` it binds).
    """
    servers = []
    server_template = string.Template(NGINX_SERVER_TEMPLATE.read_text())
    for name, (public_url, bind) in fronts.items():
        parts = urlsplit(public_url)
        if parts.scheme != "https":
            raise ValueError(f"{name}: {public_url} is not https (make run-https serves https only)")
        servers.append(
            server_template.substitute(
                name=name, public_port=parts.port or 443, server_name=parts.hostname, upstream=bind
            )
        )
    tls = directory.parent / "tls"
    text = string.Template(NGINX_TEMPLATE.read_text()).substitute(
        prefix=directory,
        certificate=tls / "localhost.pem",
        certificate_key=tls / "localhost.key",
        servers="\n".join(servers),
    )
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "nginx.conf"
    config.write_text(text)
    return config


def nginx_binary() -> str:
    """Debian's nginx (``/usr/sbin`` is not on every user's ``PATH``)."""
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if not found:
        raise FileNotFoundError("nginx is not installed: `make run-https` installs Debian's nginx-light")
    return found


def start_nginx(config: Path) -> subprocess.Popen:
    """Check ``config`` (``nginx -t``), then run nginx in the foreground as a child of ours."""
    prefix = str(config.parent)
    base = [nginx_binary(), "-p", prefix, "-c", str(config), "-e", "stderr"]
    subprocess.run([*base, "-t", "-q"], check=True)
    return subprocess.Popen([*base, "-g", "daemon off;"])
