"""Bearer-JWT authentication, roles and jurisdiction for every Zhucun HTTP API.

A token carries ``sub``, ``role`` and the jurisdiction claims ``county``, ``township`` and
``cadre`` (ids, never names) besides ``iss``, ``aud``, ``exp`` and ``iat``. Development uses
HS256 with a shared secret (:func:`mint_token`); production verifies RS256 tokens of an
identity provider against a PEM public key or a JWKS file.

In a route::

    @router.post("/villages/{village_id}/assignments")
    async def assign(
        principal: Annotated[Principal, Depends(require_roles(Role.ORG_ADMIN))], ...
    ) -> ...:
        principal.ensure_covers(Scope(county=village.county))
"""

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from zhucun.shared.problems import ProblemError
from zhucun.shared.rules import OutsideJurisdiction
from zhucun.shared.settings import AuthSettings


class Role(StrEnum):
    ORG_ADMIN = "org_admin"  # county organisation department
    TOWNSHIP = "township"
    CADRE = "cadre"  # acting for themselves
    AUDITOR = "auditor"  # read-only
    SERVICE = "service"  # another Zhucun process


class Jurisdiction(BaseModel):
    """Where a principal may act; ``None`` means "not restricted at this level"."""

    model_config = ConfigDict(frozen=True)

    county: str | None = None
    township: str | None = None
    cadre: str | None = None


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a resource lies, e.g. ``Scope(county, township)`` of a village."""

    county: str | None = None
    township: str | None = None
    cadre: str | None = None


class Principal(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str
    role: Role
    jurisdiction: Jurisdiction = Jurisdiction()

    def covers(self, scope: Scope) -> bool:
        """Every level the principal is restricted at must match the resource's."""
        if self.role is Role.SERVICE:
            return True
        mine = self.jurisdiction
        return all(
            restriction is None or restriction == actual
            for restriction, actual in (
                (mine.county, scope.county),
                (mine.township, scope.township),
                (mine.cadre, scope.cadre),
            )
        )

    def ensure_covers(self, scope: Scope) -> None:
        """Refuse (``OutsideJurisdiction``, a 403 ``forbidden-jurisdiction`` in every
        service) unless the principal covers ``scope``."""
        if not self.covers(scope):
            raise OutsideJurisdiction()


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """Build a principal from token claims; ``ValueError`` when they are inconsistent."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise ValueError("claim 'sub' must be a non-empty string")
    role_claim = claims.get("role")
    if not isinstance(role_claim, str) or role_claim not in {role.value for role in Role}:
        raise ValueError(f"claim 'role' must be one of {', '.join(Role)}")
    role = Role(role_claim)
    levels: dict[str, str | None] = {}
    for level in ("county", "township", "cadre"):
        value = claims.get(level)
        if value is not None and not isinstance(value, str):
            raise ValueError(f"claim {level!r} must be a string")
        levels[level] = value or None  # an empty claim restricts nothing, so it is absent
    required = _REQUIRED_LEVELS[role]
    missing = [level for level in required if levels[level] is None]
    if missing:
        raise ValueError(f"role {role} needs the claim(s) {', '.join(missing)}")
    return Principal(subject=subject, role=role, jurisdiction=Jurisdiction(**levels))


_REQUIRED_LEVELS: dict[Role, tuple[str, ...]] = {
    Role.ORG_ADMIN: ("county",),
    Role.TOWNSHIP: ("county", "township"),
    Role.CADRE: ("cadre",),
    Role.AUDITOR: (),  # without a county an auditor reads the whole province
    Role.SERVICE: (),
}


def _invalid_token(detail: str) -> ProblemError:
    return ProblemError(
        401,
        "invalid-token",
        "Invalid bearer token",
        detail,
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _missing_token() -> ProblemError:
    return ProblemError(
        401,
        "unauthenticated",
        "Authentication required",
        "Send an 'Authorization: Bearer <token>' header.",
        headers={"WWW-Authenticate": "Bearer"},
    )


class TokenVerifier:
    """Verifies bearer tokens with exactly the configured algorithm and key material."""

    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self._key: str | RSAPublicKey | None = None
        self._jwks: jwt.PyJWKSet | None = None
        self._jwks_mtime: float | None = None
        if settings.algorithm == "HS256":
            self._key = settings.secret.get_secret_value()
        elif settings.public_key_file and settings.jwks_file:
            raise ValueError("set public_key_file or jwks_file, not both")
        elif settings.public_key_file:
            self._key = _load_public_key(settings.public_key_file)
        else:
            assert settings.jwks_file is not None  # AuthSettings guarantees one of the two
            self._load_jwks(settings.jwks_file)

    def verify(self, token: str) -> Principal:
        """The token's principal, or a 401 :class:`ProblemError`."""
        settings = self._settings
        try:
            claims = jwt.decode(
                token,
                self._key_for(token),
                # Pinned: an HS256 token never reaches an RS256 verifier's key, nor "none".
                algorithms=[settings.algorithm],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_seconds,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid_token("The token has expired.") from None
        except jwt.PyJWTError as error:
            raise _invalid_token(f"The token is invalid: {error}") from None
        try:
            return principal_from_claims(claims)
        except ValueError as error:
            raise _invalid_token(f"The token's claims are inconsistent: {error}") from None

    def _key_for(self, token: str) -> str | RSAPublicKey | jwt.PyJWK:
        if self._key is not None:
            return self._key
        kid = jwt.get_unverified_header(token).get("kid")
        if not isinstance(kid, str):
            raise jwt.InvalidTokenError("the token header has no 'kid' to choose a JWKS key")
        key = self._jwks_key(kid)
        if key is None and self._jwks_file_changed():
            # Key rotation: the mounted JWKS file may have gained the new key.
            assert self._settings.jwks_file is not None
            self._load_jwks(self._settings.jwks_file)
            key = self._jwks_key(kid)
        if key is None:
            raise jwt.InvalidTokenError(f"no JWKS key has kid {kid!r}")
        if key.public_key_use not in (None, "sig"):
            raise jwt.InvalidTokenError(f"JWKS key {kid!r} is not a signing key")
        return key

    def _jwks_key(self, kid: str) -> jwt.PyJWK | None:
        assert self._jwks is not None
        try:
            return self._jwks[kid]
        except KeyError:
            return None

    def _load_jwks(self, path: Path) -> None:
        self._jwks_mtime = path.stat().st_mtime
        self._jwks = jwt.PyJWKSet.from_json(path.read_text(encoding="utf-8"))

    def _jwks_file_changed(self) -> bool:
        path = self._settings.jwks_file
        try:
            return path is not None and path.stat().st_mtime != self._jwks_mtime
        except OSError:
            return False


def _load_public_key(path: Path) -> RSAPublicKey:
    # A public key only: a private key file mounted into a service is a deployment mistake.
    key = load_pem_public_key(path.read_bytes())
    if not isinstance(key, RSAPublicKey):
        raise ValueError(f"{path} does not hold an RSA public key")
    return key


def mint_token(
    settings: AuthSettings,
    *,
    subject: str,
    role: str,
    county: str | None = None,
    township: str | None = None,
    cadre: str | None = None,
    ttl_seconds: int = 3600,
    private_key_pem: str | None = None,
    key_id: str | None = None,
) -> str:
    """A token for development and tests: HS256 with the shared secret, or RS256 when
    ``private_key_pem`` is given (``key_id`` becomes the header's ``kid``).

    Raises ``ValueError`` for inconsistent claims, a non-positive TTL, or RS256 settings
    without a private key (production tokens come from the identity provider).
    """
    if ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be positive")
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": subject,
        "role": role,
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    claims |= {
        level: value
        for level, value in (("county", county), ("township", township), ("cadre", cadre))
        if value is not None
    }
    principal_from_claims(claims)  # refuse to mint a token the verifier would reject
    headers = {"kid": key_id} if key_id else None
    if private_key_pem is not None:
        return jwt.encode(claims, private_key_pem, algorithm="RS256", headers=headers)
    if settings.algorithm != "HS256":
        raise ValueError(
            "auth.algorithm is RS256: tokens come from the identity provider "
            "(or pass private_key_pem)"
        )
    return jwt.encode(
        claims, settings.secret.get_secret_value(), algorithm="HS256", headers=headers
    )


_bearer = HTTPBearer(auto_error=False, description="A JWT bearer token")


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """FastAPI dependency: the request's principal, or 401.

    Async on purpose: a sync dependency runs in a worker thread, and the actor it binds
    into the structlog context would not reach the endpoint's log lines.
    """
    if credentials is None:
        raise _missing_token()
    verifier = getattr(request.app.state, "token_verifier", None)
    if not isinstance(verifier, TokenVerifier):
        raise RuntimeError(
            "app.state.token_verifier is not set; build the app with create_http_app"
        )
    principal = verifier.verify(credentials.credentials)
    # Subject and role only: they identify the actor for an audit without naming a person.
    structlog.contextvars.bind_contextvars(
        actor={"subject": principal.subject, "role": principal.role.value}
    )
    return principal


class RoleRequirement:
    """FastAPI dependency: the principal if its role is one of ``roles``, else 403.

    A class, not a closure, so the OpenAPI documents can say which roles an operation is
    open to (``zhucun.shared.openapi`` reads ``roles`` off the route's dependencies).
    """

    def __init__(self, roles: frozenset[Role]) -> None:
        self.roles = roles

    async def __call__(self, principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if principal.role not in self.roles:
            raise ProblemError(
                403,
                "forbidden-role",
                "Role not allowed",
                f"This operation is not open to the role {principal.role}.",
                allowed_roles=sorted(self.roles),
            )
        return principal


def require_roles(*roles: Role | str) -> RoleRequirement:
    """FastAPI dependency factory: the principal if its role is one of ``roles``, else 403."""
    allowed = frozenset(Role(role) for role in roles)  # a typo fails at import, not per call
    if not allowed:
        raise ValueError("require_roles needs at least one role")
    return RoleRequirement(allowed)
