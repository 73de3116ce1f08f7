"""Self-signed certificates generated at test time (never committed).

Works with the cryptography release Odoo 18 pins (3.4.8) and with current ones.
"""

import datetime
import ipaddress
import os
import ssl
import tempfile
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.backends import default_backend
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class CertFiles:
    """PEM files of a self-signed certificate and its key, in a temp folder."""

    cert_path: str
    key_path: str

    def server_context(self):
        """An SSL context a server can use (STARTTLS or implicit TLS)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self):
        """A client context that trusts exactly this certificate."""
        context = ssl.create_default_context(cafile=self.cert_path)
        return context


def make_self_signed(common_name="127.0.0.1", directory=None, days=2):
    """Create a 2048-bit RSA key and a certificate valid for 127.0.0.1.

    The certificate carries ``common_name`` and the IP 127.0.0.1 as subject
    alternative names, so a verifying client connecting to 127.0.0.1 accepts
    it once it trusts the file.
    """
    backend = default_backend()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048, backend=backend)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.utcnow()
    alt_names = [x509.DNSName(common_name)]
    try:
        alt_names.append(x509.IPAddress(ipaddress.ip_address(common_name)))
    except ValueError:
        alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256(), backend)
    )
    directory = directory or tempfile.mkdtemp(prefix="smtp-routing-tls-")
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    os.chmod(key_path, 0o600)
    return CertFiles(cert_path=cert_path, key_path=key_path)
