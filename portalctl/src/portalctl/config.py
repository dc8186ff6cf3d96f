"""Where the portal is and which token to send.

`PORTAL_URL` and `PORTAL_TOKEN` in the environment win. Otherwise the profile (`--profile`,
or `PORTALCTL_PROFILE`, else `default`) of the config file: `config.ini` in the user's
config directory (`~/.config/portalctl/` on Linux; `PORTALCTL_CONFIG` names another file),
kept at mode 0600 because it holds tokens.
"""

from __future__ import annotations

import configparser
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import CliError, Exit

DEFAULT_PROFILE = "default"
KEYS = ("url", "token", "token_id", "username", "ca_bundle")


def config_path() -> Path:
    explicit = os.environ.get("PORTALCTL_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    from platformdirs import user_config_path

    return user_config_path("portalctl", appauthor=False) / "config.ini"


@dataclass
class Profile:
    name: str
    url: str = ""
    token: str = ""
    token_id: str = ""
    username: str = ""
    ca_bundle: str = ""
    from_env: bool = False  # the URL or the token came from the environment

    def as_dict(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in KEYS if getattr(self, key)}


def read_file(path: Path | None = None) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    path = path or config_path()
    try:
        with path.open(encoding="utf-8") as fh:
            parser.read_file(fh)
    except FileNotFoundError:
        pass
    except (OSError, configparser.Error) as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc
    return parser


def load(name: str | None) -> Profile:
    """The profile to use, with the environment laid over it."""
    name = name or os.environ.get("PORTALCTL_PROFILE") or DEFAULT_PROFILE
    parser = read_file()
    stored = parser[name] if parser.has_section(name) else {}
    profile = Profile(name=name)
    for key in KEYS:
        setattr(profile, key, stored.get(key, ""))
    env_url, env_token = os.environ.get("PORTAL_URL"), os.environ.get("PORTAL_TOKEN")
    if env_url:
        profile.url, profile.from_env = env_url, True
    if env_token:
        # A token from the environment is not the profile's: its id and user are unknown.
        profile.token, profile.token_id, profile.username = env_token, "", ""
        profile.from_env = True
    if os.environ.get("PORTAL_CA_BUNDLE"):
        profile.ca_bundle = os.environ["PORTAL_CA_BUNDLE"]
    profile.url = profile.url.rstrip("/")
    return profile


def profile_names() -> list[str]:
    return read_file().sections()


def save(profile: Profile) -> Path:
    """Store the profile (replacing its section); the file is written whole at mode 0600."""
    path = config_path()
    parser = read_file(path)
    parser[profile.name] = profile.as_dict()
    _write(path, parser)
    return path


def remove_secret(name: str) -> Path | None:
    """Forget a profile's token (its URL stays, for the next login)."""
    path = config_path()
    parser = read_file(path)
    if not parser.has_section(name):
        return None
    for key in ("token", "token_id", "username"):
        parser.remove_option(name, key)
    _write(path, parser)
    return path


def _write(path: Path, parser: configparser.ConfigParser) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".config-", dir=path.parent)  # created 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                parser.write(fh)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc}", Exit.ERROR) from exc
