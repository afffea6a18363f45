"""2. Access-token validation cost, in process: ours, two peers, and the floor.

Five ways to accept the same Okta-shaped RS256 access tokens, each timed
over the same set of never-seen tokens (so no validator can answer from a
cache of verified tokens) after a warm-up:

* **floor**: a bare ``cryptography`` RSA-SHA256 (PKCS#1 v1.5) verify of the
  signing input plus the base64url and JSON decode of the payload, with the
  public key already loaded: what any validator must at least do;
* **joserfc**: a bare ``joserfc.jws.deserialize_compact`` with the key already
  imported, plus the JSON decode of the payload: the library ours verifies
  with, without any of our checks (a reference row, not a goal);
* **ours**: ``resource_server.validation.JWTValidator.validate`` (header
  checks, key lookup by ``kid`` in :class:`common.jwks.KeySet`, signature by
  joserfc, ``iss``/``aud``/``exp``/``iat``, token-type and ID-token refusal, scopes);
* **PyJWT**: ``PyJWKClient.get_signing_key_from_jwt`` + ``jwt.decode`` with
  audience, issuer and required claims;
* **okta-jwt-verifier**: ``AccessTokenVerifier.verify_sync``
  (``verify`` is the same code behind ``asyncio``).

The keys are served by a real HTTPS server on ``127.0.0.1`` (discovery and
JWKS, with a throw-away certificate the three clients are told to trust),
so each validator fetches them its normal way; okta-jwt-verifier insists on
an ``https://`` issuer.  Tokens come in chunks that each validator checks
in turn (rotating order), so that load from elsewhere on the machine hits
all five alike, and timed by this thread's CPU time (``time.thread_time``),
so that time the scheduler gives to other processes is not counted; the
figure per validator is the median over chunks of the mean time per token.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import ssl
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from .support import Result, Scale, median

GOAL_VS_FLOOR = 1.6
AUDIENCE = "api://default"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int_b64(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class KeyServer:
    """A loopback HTTPS issuer stand-in that publishes discovery and one RSA key (JWKS).

    Also the test issuer of :mod:`.peers_compare`, whose servers fetch its keys over real HTTPS.
    """

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = "bench-" + uuid.uuid4().hex[:8]
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-tls-"))
        self.server: ThreadingHTTPServer | None = None
        self.requests = 0

    @property
    def issuer(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}/oauth2/default"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/v1/keys"

    @property
    def ca_file(self) -> str:
        return str(self.tmp / "cert.pem")

    def _certificate(self) -> None:
        """A self-signed certificate for 127.0.0.1, valid for a day."""
        tls_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(tls_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(tls_key, hashes.SHA256())
        )
        (self.tmp / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (self.tmp / "key.pem").write_bytes(
            tls_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )

    def jwks(self) -> dict:
        numbers = self.key.public_key().public_numbers()
        return {
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.kid,
                    "n": _int_b64(numbers.n),
                    "e": _int_b64(numbers.e),
                }
            ]
        }

    def start(self) -> "KeyServer":
        self._certificate()
        keys = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                keys.requests += 1
                if self.path.endswith("/.well-known/openid-configuration"):
                    body = {
                        "issuer": keys.issuer,
                        "jwks_uri": keys.jwks_uri,
                        "authorization_endpoint": keys.issuer + "/v1/authorize",
                        "token_endpoint": keys.issuer + "/v1/token",
                        "response_types_supported": ["code"],
                        "subject_types_supported": ["public"],
                        "id_token_signing_alg_values_supported": ["RS256"],
                    }
                elif self.path.endswith(("/v1/keys", "/.well-known/jwks.json")):
                    # Okta's jwks_uri, and Auth0's (benchmarks/peers/auth0_authlib.py).
                    body = keys.jwks()
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.tmp / "cert.pem", self.tmp / "key.pem")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, name="bench-keys", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()

    def mint(self, lifetime: int = 3600) -> str:
        """An Okta-shaped access token (RS256, ``kid``; Okta's claims), freshly signed."""
        now = int(time.time())
        header = {"kid": self.kid, "alg": "RS256"}
        claims = {
            "ver": 1,
            "jti": "AT." + uuid.uuid4().hex,
            "iss": self.issuer,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + lifetime,
            "cid": "0oa-bench-client",
            "uid": "00u-bench-user",
            "scp": ["openid", "profile", "email"],
            "sub": "bench.user@example.test",
        }
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self.key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return signing_input + "." + b64url(signature)


# -- the five validators: each ``make_*`` returns a fresh "validate one token" function -----------


def make_floor(keys: KeyServer):
    public_key = keys.key.public_key()
    pkcs1, sha256 = padding.PKCS1v15(), hashes.SHA256()

    def validate(token: str) -> dict:
        signing_input, _, signature = token.rpartition(".")
        public_key.verify(b64url_decode(signature), signing_input.encode("ascii"), pkcs1, sha256)
        return json.loads(b64url_decode(signing_input.partition(".")[2]))

    return validate


def make_joserfc(keys: KeyServer):
    from joserfc import jws
    from joserfc.jwk import import_key

    key = import_key(keys.jwks()["keys"][0], "RSA")

    def validate(token: str) -> dict:
        return json.loads(jws.deserialize_compact(token, key, algorithms=["RS256"]).payload)

    return validate


def make_ours(keys: KeyServer):
    from common.config import load_settings
    from resource_server.validation import JWTValidator

    validator = JWTValidator(load_settings({"ISSUER": keys.issuer, "API_AUDIENCE": AUDIENCE}))
    return validator.validate


def make_pyjwt(keys: KeyServer):
    import jwt

    context = ssl.create_default_context(cafile=keys.ca_file)
    client = jwt.PyJWKClient(keys.jwks_uri, ssl_context=context, timeout=5)

    def validate(token: str) -> dict:
        key = client.get_signing_key_from_jwt(token)
        return jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=AUDIENCE,
            issuer=keys.issuer,
            options={"require": ["iss", "aud", "exp", "iat"]},
        )

    return validate


def make_okta(keys: KeyServer):
    # A bench-only dependency (benchmarks/requirements.txt, installed by
    # `make bench`); `make test`'s smoke run may not have it.
    from okta_jwt_verifier import AccessTokenVerifier

    verifier = AccessTokenVerifier(issuer=keys.issuer, audience=AUDIENCE)
    return verifier.verify_sync


VALIDATORS = {
    "floor": make_floor,
    "joserfc": make_joserfc,
    "ours": make_ours,
    "PyJWT": make_pyjwt,
    "okta-jwt-verifier": make_okta,
}


def _time_validators(keys: KeyServer, scale: Scale) -> tuple[dict[str, list[float]], list[str]]:
    """Microseconds per token of each installed validator, per chunk; and the validators not installed."""
    chunks = scale.pick(60, 6)
    chunk_size = 20
    warmup = scale.pick(30, 5)
    validators, missing = {}, []
    for name, make in VALIDATORS.items():
        try:
            validators[name] = make(keys)
        except ImportError:
            missing.append(name)
    names = list(validators)
    for token in [keys.mint() for _ in range(warmup)]:  # key fetch, imports, caches: untimed
        for validate in validators.values():
            validate(token)
    # Our validator also remembers the tokens it verified (by hash, oldest
    # forgotten first when full; a token sent once by its hash alone, its
    # claims only from its second request on).  A resource server that has
    # run for a while has a full cache, where a new entry reuses the memory
    # of the one it evicts; a fresh one's is still growing into new pages.
    # So "ours" is measured in the steady state: its cache is filled first,
    # untimed, with other tokens.
    from resource_server.validation import JWTValidator

    for _ in range(scale.pick(JWTValidator.CACHE_SIZE, 0)):
        validators["ours"](keys.mint())
    timings: dict[str, list[float]] = {name: [] for name in names}
    for number in range(chunks):
        tokens = [keys.mint() for _ in range(chunk_size)]
        # Every validator gets the same never-seen chunk, one after the
        # other in a rotating order, so that a burst of load from
        # elsewhere on the machine hits all five alike.
        order = names[number % len(names) :] + names[: number % len(names)]
        for name in order:
            validate = validators[name]
            started = time.thread_time()
            for token in tokens:
                validate(token)
            timings[name].append((time.thread_time() - started) / chunk_size * 1e6)
    return timings, missing


def run(scale: Scale) -> Result:
    chunks = scale.pick(60, 6)
    chunk_size = 20
    keys = KeyServer().start()
    # Our validator and okta-jwt-verifier fetch with requests, which trusts
    # the CA bundle named here; PyJWT is handed an ssl context instead.
    saved = os.environ.get("REQUESTS_CA_BUNDLE")
    os.environ["REQUESTS_CA_BUNDLE"] = keys.ca_file
    try:
        timings, missing = _time_validators(keys, scale)
    finally:
        if saved is None:
            os.environ.pop("REQUESTS_CA_BUNDLE", None)
        else:
            os.environ["REQUESTS_CA_BUNDLE"] = saved
        keys.stop()
    micros = {name: median(values) for name, values in timings.items()}
    floor = micros["floor"]
    ours = micros["ours"]
    peers = [micros[name] for name in ("PyJWT", "okta-jwt-verifier") if name in micros]
    # Without both peers the comparison is incomplete: reported, not judged.
    met = None if missing else ours <= GOAL_VS_FLOOR * floor and all(ours < peer for peer in peers)
    return Result(
        key="validation",
        title="Token validation: microseconds per new token (ours)",
        figure=f"{ours:.0f} us = {ours / floor:.2f}x floor",
        goal=f"<= {GOAL_VS_FLOOR}x floor, faster than both peers",
        met=met,
        details=[
            f"{name:<18} {value:8.1f} us/token  {value / floor:5.2f}x floor" for name, value in micros.items()
        ]
        + [f"{name:<18} not installed: pip install -r benchmarks/requirements.txt" for name in missing],
        how=(
            f"in process, {chunks} chunks x {chunk_size} never-seen RS256 tokens, each chunk through all "
            "five validators in rotating order after an untimed warm-up; keys fetched over real loopback "
            "HTTPS (discovery + JWKS, each library its own way; floor and joserfc are handed the key); this "
            "thread's CPU time, median over chunks of mean us/token. Floor = bare cryptography RSA-SHA256 "
            "verify + base64url/JSON decode of the payload; joserfc = bare jws.deserialize_compact + JSON."
        ),
    )
