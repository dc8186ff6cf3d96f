"""What the global options chose (the profile), and the API client made from it once."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import config
from .errors import CliError, Exit

if TYPE_CHECKING:
    from .client import Api


@dataclass
class Session:
    profile_name: str | None = None
    _profile: config.Profile | None = None
    _api: Api | None = None
    _me: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def profile(self) -> config.Profile:
        if self._profile is None:
            self._profile = config.load(self.profile_name)
        return self._profile

    def api(self, *, auth: bool = True) -> Api:
        """The client for the profile; `auth` asks that a token be there."""
        from .client import Api

        if self._api is None:
            p = self.profile
            if auth and not p.token:
                where = f"profile '{p.name}'" if not p.from_env else "the environment"
                raise CliError(
                    f"not logged in ({where} has no token): run `portalctl login URL`, "
                    "or set PORTAL_URL and PORTAL_TOKEN",
                    Exit.AUTH,
                )
            self._api = Api(p.url, p.token, ca_bundle=p.ca_bundle)
        return self._api

    def me(self) -> dict[str, Any]:
        if self._me is None:
            self._me = self.api().get("me/")
        return self._me

    def close(self) -> None:
        if self._api is not None:
            self._api.close()


SESSION = Session()
