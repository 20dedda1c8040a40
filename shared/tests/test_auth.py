"""Bearer-JWT auth: signatures, algorithms, key files, claims, roles and jurisdiction."""

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Required, TypedDict

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI
from jwt.algorithms import RSAAlgorithm

from zhucun.shared.auth import (
    Jurisdiction,
    Principal,
    Role,
    Scope,
    TokenVerifier,
    authenticated,
    mint_token,
    require_roles,
)
from zhucun.shared.http import create_http_app
from zhucun.shared.settings import DEVELOPMENT_JWT_SECRET, AuthSettings, ServiceSettings

pytestmark = pytest.mark.unit

HS256 = AuthSettings()
PROBLEMS = "https://zhucun.dev/problems/"


def build_app(auth: AuthSettings) -> FastAPI:
    app = create_http_app(ServiceSettings(auth=auth), title="auth-test")

    @app.get("/me")
    async def me(principal: Annotated[Principal, Depends(authenticated)]) -> dict[str, Any]:
        return principal.model_dump(mode="json")

    @app.post("/assignments")
    async def assign(
        principal: Annotated[Principal, Depends(require_roles(Role.ORG_ADMIN, Role.TOWNSHIP))],
    ) -> dict[str, str]:
        return {"by": principal.subject}

    @app.get("/counties/{county}/townships/{township}")
    async def township(
        county: str, township: str, principal: Annotated[Principal, Depends(authenticated)]
    ) -> dict[str, str]:
        principal.ensure_covers(Scope(county, township))
        return {"township": township}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(HS256))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "u-1",
        "role": "org_admin",
        "county": "c-1",
        "iss": "zhucun",
        "aud": "zhucun",
        "iat": now,
        "exp": now + 600,
    }
    return {key: value for key, value in (base | overrides).items() if value is not None}


def assert_unauthorized(response: httpx.Response, slug: str = "invalid-token") -> None:
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["type"] == PROBLEMS + slug


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def write_jwks(path: Path, keys: dict[str, rsa.RSAPrivateKey]) -> None:
    entries = []
    for kid, key in keys.items():
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        entries.append(jwk | {"kid": kid, "use": "sig", "alg": "RS256"})
    path.write_text(json.dumps({"keys": entries}))


async def test_valid_hs256_token_yields_the_principal(client: httpx.AsyncClient) -> None:
    token = mint_token(HS256, subject="u-7", role="township", county="c-1", township="t-2")

    response = await client.get("/me", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {
        "subject": "u-7",
        "role": "township",
        "jurisdiction": {"county": "c-1", "township": "t-2", "cadre": None},
    }


async def test_expired_token_is_401(client: httpx.AsyncClient) -> None:
    past = int(time.time()) - 3600
    token = jwt.encode(claims(iat=past - 60, exp=past), DEVELOPMENT_JWT_SECRET, "HS256")

    response = await client.get("/me", headers=bearer(token))

    assert_unauthorized(response)
    assert "expired" in response.json()["detail"]


async def test_expiry_within_leeway_is_accepted(client: httpx.AsyncClient) -> None:
    now = int(time.time())
    token = jwt.encode(claims(iat=now - 60, exp=now - 5), DEVELOPMENT_JWT_SECRET, "HS256")

    assert (await client.get("/me", headers=bearer(token))).status_code == 200


async def test_bad_signature_is_401(client: httpx.AsyncClient) -> None:
    token = jwt.encode(claims(), "another-secret-of-a-sufficient-length-32b", "HS256")

    assert_unauthorized(await client.get("/me", headers=bearer(token)))


async def test_missing_header_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")

    assert_unauthorized(response, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_non_bearer_scheme_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers={"Authorization": "Basic dTpw"})

    assert_unauthorized(response, "unauthenticated")


async def test_alg_none_is_401(client: httpx.AsyncClient) -> None:
    token = jwt.encode(claims(), "", algorithm="none")  # PyJWT takes "" as the absent key

    assert_unauthorized(await client.get("/me", headers=bearer(token)))


async def test_garbage_token_is_401(client: httpx.AsyncClient) -> None:
    assert_unauthorized(await client.get("/me", headers=bearer("not.a.jwt")))


@pytest.mark.parametrize(
    ("field", "value"), [("aud", "someone-else"), ("iss", "someone-else"), ("exp", None)]
)
async def test_wrong_audience_issuer_or_missing_expiry_is_401(
    client: httpx.AsyncClient, field: str, value: str | None
) -> None:
    token = jwt.encode(claims(**{field: value}), DEVELOPMENT_JWT_SECRET, "HS256")

    assert_unauthorized(await client.get("/me", headers=bearer(token)))


@pytest.mark.parametrize(
    "overrides",
    [
        {"role": "org_admin", "county": None},
        {"role": "township", "county": "c-1", "township": None},
        {"role": "township", "county": None, "township": "t-1"},
        {"role": "cadre", "county": "c-1", "cadre": None},
        {"role": "org_admin", "county": ""},
        {"role": "superuser"},
        {"role": None},
        {"role": "org_admin", "county": ["c-1"]},
    ],
)
async def test_inconsistent_claims_are_401(
    client: httpx.AsyncClient, overrides: dict[str, Any]
) -> None:
    token = jwt.encode(claims(**overrides), DEVELOPMENT_JWT_SECRET, "HS256")

    response = await client.get("/me", headers=bearer(token))

    assert_unauthorized(response)


@pytest.mark.parametrize(
    "overrides",
    [
        {"role": "auditor", "county": None},
        {"role": "service", "county": None},
        {"role": "cadre", "county": None, "cadre": "k-1"},
    ],
)
async def test_roles_with_optional_jurisdiction_are_accepted(
    client: httpx.AsyncClient, overrides: dict[str, Any]
) -> None:
    token = jwt.encode(claims(**overrides), DEVELOPMENT_JWT_SECRET, "HS256")

    assert (await client.get("/me", headers=bearer(token))).status_code == 200


async def rs256_client(auth: AuthSettings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(auth)), base_url="http://t"
    )


async def test_rs256_with_pem_public_key_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(public_pem(rsa_key))
    auth = AuthSettings(algorithm="RS256", public_key_file=key_file)
    token = mint_token(
        auth, subject="u-1", role="org_admin", county="c-1", private_key_pem=private_pem(rsa_key)
    )

    async with await rs256_client(auth) as client:
        response = await client.get("/me", headers=bearer(token))

    assert response.status_code == 200
    assert response.json()["subject"] == "u-1"


async def test_rs256_with_jwks_file_picks_the_key_by_kid(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks_file = tmp_path / "jwks.json"
    write_jwks(jwks_file, {"old": other_key, "current": rsa_key})
    auth = AuthSettings(algorithm="RS256", jwks_file=jwks_file)

    def token(kid: str | None, key: rsa.RSAPrivateKey = rsa_key) -> str:
        return mint_token(
            auth,
            subject="s-1",
            role="service",
            private_key_pem=private_pem(key),
            key_id=kid,
        )

    async with await rs256_client(auth) as client:
        assert (await client.get("/me", headers=bearer(token("current")))).status_code == 200
        assert (await client.get("/me", headers=bearer(token("old", other_key)))).status_code == 200
        # Signed by one key but naming the other: the signature must not verify.
        assert_unauthorized(await client.get("/me", headers=bearer(token("old"))))
        assert_unauthorized(await client.get("/me", headers=bearer(token("unknown"))))
        assert_unauthorized(await client.get("/me", headers=bearer(token(None))))


async def test_jwks_file_is_reread_for_an_unknown_kid(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_file = tmp_path / "jwks.json"
    old_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_jwks(jwks_file, {"old": old_key})
    auth = AuthSettings(algorithm="RS256", jwks_file=jwks_file)
    verifier = TokenVerifier(auth)
    rotated = mint_token(
        auth, subject="s-1", role="service", private_key_pem=private_pem(rsa_key), key_id="new"
    )

    write_jwks(jwks_file, {"old": old_key, "new": rsa_key})
    stat = jwks_file.stat()
    os.utime(jwks_file, (stat.st_atime, stat.st_mtime + 10))  # a visible change on any fs

    assert verifier.verify(rotated).subject == "s-1"


async def test_hs256_token_against_rs256_verifier_is_401(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(public_pem(rsa_key))
    auth = AuthSettings(algorithm="RS256", public_key_file=key_file)
    hs_token = mint_token(HS256, subject="u-1", role="service")
    # The classic key-confusion attack: an HMAC keyed with the verifier's public key.
    confused = hmac_token(claims(role="service"), public_pem(rsa_key))

    async with await rs256_client(auth) as client:
        assert_unauthorized(await client.get("/me", headers=bearer(hs_token)))
        assert_unauthorized(await client.get("/me", headers=bearer(confused)))


def hmac_token(payload: dict[str, Any], key: bytes) -> str:
    """Signed by hand: PyJWT itself refuses to use a PEM key as an HMAC secret."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing_input = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        + "."
        + b64(json.dumps(payload).encode())
    )
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_mint_token_refuses_rs256_without_private_key(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(public_pem(rsa_key))
    auth = AuthSettings(algorithm="RS256", public_key_file=key_file)

    with pytest.raises(ValueError, match="RS256"):
        mint_token(auth, subject="u-1", role="service")


def test_mint_token_refuses_inconsistent_claims() -> None:
    with pytest.raises(ValueError, match="county"):
        mint_token(HS256, subject="u-1", role="org_admin")


def test_verifier_refuses_a_private_key_as_public_key_file(
    tmp_path: Path, rsa_key: rsa.RSAPrivateKey
) -> None:
    key_file = tmp_path / "private.pem"
    key_file.write_text(private_pem(rsa_key))

    with pytest.raises(ValueError):  # noqa: PT011 - cryptography's message is not ours
        TokenVerifier(AuthSettings(algorithm="RS256", public_key_file=key_file))


async def test_wrong_role_is_403(client: httpx.AsyncClient) -> None:
    token = mint_token(HS256, subject="k-1", role="cadre", cadre="k-1")

    response = await client.post("/assignments", headers=bearer(token))

    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == PROBLEMS + "forbidden-role"


async def test_allowed_role_passes(client: httpx.AsyncClient) -> None:
    token = mint_token(HS256, subject="t-9", role="township", county="c-1", township="t-1")

    response = await client.post("/assignments", headers=bearer(token))

    assert response.status_code == 200
    assert response.json() == {"by": "t-9"}


def test_require_roles_rejects_unknown_role_names_at_definition() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the enum's message
        require_roles("superuser")


class TokenArgs(TypedDict, total=False):
    """The arguments of mint_token that say who a principal is and where it may act."""

    role: Required[str]
    county: str
    township: str


@pytest.mark.parametrize(
    ("token_args", "path", "status"),
    [
        ({"role": "township", "county": "c-1", "township": "t-1"}, "c-1/townships/t-1", 200),
        ({"role": "township", "county": "c-1", "township": "t-1"}, "c-1/townships/t-2", 403),
        ({"role": "township", "county": "c-1", "township": "t-1"}, "c-2/townships/t-1", 403),
        ({"role": "org_admin", "county": "c-1"}, "c-1/townships/t-5", 200),
        ({"role": "org_admin", "county": "c-1"}, "c-2/townships/t-5", 403),
        ({"role": "auditor"}, "c-9/townships/t-9", 200),
        ({"role": "auditor", "county": "c-1"}, "c-2/townships/t-1", 403),
        ({"role": "service"}, "c-3/townships/t-3", 200),
    ],
)
async def test_jurisdiction(
    client: httpx.AsyncClient, token_args: TokenArgs, path: str, status: int
) -> None:
    token = mint_token(HS256, subject="p-1", **token_args)

    response = await client.get(f"/counties/{path}", headers=bearer(token))

    assert response.status_code == status
    if status == 403:
        assert response.json()["type"] == PROBLEMS + "forbidden-jurisdiction"


@pytest.mark.parametrize(
    ("jurisdiction", "scope", "covered"),
    [
        (Jurisdiction(cadre="k-1"), Scope("c-1", "t-1", "k-1"), True),
        (Jurisdiction(cadre="k-1"), Scope("c-1", "t-1", "k-2"), False),
        # A cadre-level principal does not cover a resource that is not scoped to a cadre.
        (Jurisdiction(cadre="k-1"), Scope("c-1", "t-1"), False),
        (Jurisdiction(county="c-1", township="t-1"), Scope("c-1"), False),
        (Jurisdiction(), Scope("c-1", "t-1", "k-1"), True),
    ],
)
def test_principal_covers(jurisdiction: Jurisdiction, scope: Scope, covered: bool) -> None:
    principal = Principal(subject="p", role=Role.CADRE, jurisdiction=jurisdiction)

    assert principal.covers(scope) is covered


def test_service_covers_everything_whatever_its_claims() -> None:
    principal = Principal(subject="s", role=Role.SERVICE, jurisdiction=Jurisdiction(county="x"))

    assert principal.covers(Scope("c-1", "t-1", "k-1"))
