"""What `portalctl deploy` reads from a git checkout: GitHub names from remote URLs, and on
a real git repository in a temporary directory the branch, the commit, its time, the
uncommitted changes and the archive of the commit alone."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

import pytest

from portalctl.commands.deploy import resolve_target
from portalctl.errors import CliError, Exit
from portalctl.gitsource import Checkout, checked_repository, github_repository


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://github.com/alice/shop.git", "alice/shop"),
        ("https://github.com/alice/shop", "alice/shop"),
        ("https://github.com/alice/shop/", "alice/shop"),
        ("http://www.github.com/Alice/my.shop.git", "Alice/my.shop"),
        ("https://x-access-token:ghs_secret@github.com/alice/shop.git", "alice/shop"),
        ("git@github.com:alice/shop.git", "alice/shop"),
        ("git@github.com:alice/shop", "alice/shop"),
        ("github.com:alice/shop.git", "alice/shop"),
        ("ssh://git@github.com/alice/shop.git", "alice/shop"),
        ("ssh://git@github.com:22/alice/shop", "alice/shop"),
        ("git://github.com/alice/shop.git", "alice/shop"),
        ("  https://GitHub.com/alice/shop.git\n", "alice/shop"),
    ],
)
def test_github_remote_urls(url: str, name: str) -> None:
    assert github_repository(url) == name


@pytest.mark.parametrize(
    "url",
    [
        "https://gitlab.com/alice/shop.git",
        "https://github.com.evil.example/alice/shop.git",
        "https://github.com/alice",
        "https://github.com/alice/shop/tree/main",
        "git@gitlab.com:alice/shop.git",
        "/srv/git/shop.git",
        "../shop",
        "",
    ],
)
def test_other_remotes_are_not_github(url: str) -> None:
    assert github_repository(url) is None


def test_repository_option_is_owner_slash_name() -> None:
    assert checked_repository(" alice/shop ") == "alice/shop"
    for bad in ("shop", "alice/", "/shop", "alice/shop/x", "alice/sh op"):
        with pytest.raises(CliError) as caught:
            checked_repository(bad)
        assert caught.value.exit_code == Exit.USAGE


# -- a real repository ---------------------------------------------------------------------
def run_git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`shop/` with two commits on `main`: app.py, then README and lib/util.py."""
    empty = tmp_path / "gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.org")
    path = tmp_path / "shop"
    path.mkdir()
    run_git(path, "init", "-q", "-b", "main")
    (path / "app.py").write_text("print('one')\n")
    run_git(path, "add", ".")
    run_git(path, "commit", "-q", "-m", "one", "--date", "2026-01-02T03:04:05+00:00")
    (path / "README").write_text("shop\n")
    (path / "lib").mkdir()
    (path / "lib" / "util.py").write_text("X = 1\n")
    run_git(path, "add", ".")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-02-03T04:05:06+01:00")
    run_git(path, "commit", "-q", "-m", "two")
    monkeypatch.delenv("GIT_COMMITTER_DATE")
    return path


def members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive, "r:gz") as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def test_the_checkout_is_found_from_a_subdirectory(repo: Path, tmp_path: Path) -> None:
    checkout = Checkout.at(repo / "lib")
    assert checkout.top == repo.resolve()
    assert checkout.branch() == "main"
    head = run_git(repo, "rev-parse", "HEAD")
    assert checkout.commit() == head and len(head) == 40
    assert checkout.commit(head[:7]) == head
    assert checkout.commit("HEAD~1") == run_git(repo, "rev-parse", "HEAD~1")
    assert checkout.committed_at(head) == "2026-02-03T04:05:06+01:00"
    for bad in ("nope", "--all", "HEAD~9"):
        with pytest.raises(CliError) as caught:
            checkout.commit(bad)
        assert caught.value.exit_code == Exit.USAGE
    with pytest.raises(CliError, match="not in a git checkout"):
        Checkout.at(tmp_path)
    with pytest.raises(CliError, match="not a directory"):
        Checkout.at(tmp_path / "missing")


def test_the_archive_is_the_commit_alone_and_the_whole_tree(repo: Path, tmp_path: Path) -> None:
    checkout = Checkout.at(repo / "lib")  # from a subdirectory: still the whole tree
    assert not checkout.has_changes()
    (repo / "app.py").write_text("print('edited, not committed')\n")
    (repo / "scratch.txt").write_text("untracked\n")
    assert checkout.has_changes()
    got = members(checkout.archive(checkout.commit(), tmp_path / "head.tar.gz"))
    assert got == {"app.py": b"print('one')\n", "README": b"shop\n", "lib/util.py": b"X = 1\n"}
    first = members(checkout.archive(checkout.commit("HEAD~1"), tmp_path / "first.tar.gz"))
    assert first == {"app.py": b"print('one')\n"}
    # gzip'd, as the portal takes it.
    assert (tmp_path / "head.tar.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_target_defaults_come_from_the_checkout(repo: Path) -> None:
    checkout = Checkout.at(repo)
    head = run_git(repo, "rev-parse", "HEAD")

    def no_username() -> str:
        raise AssertionError("the portal is asked only when origin is not on GitHub")

    asked: list[str] = []

    def username() -> str:
        asked.append("me")
        return "alice"

    # No origin: the portal user's name and the directory's.
    target = resolve_target(
        checkout, repository=None, ref=None, pr=None, commit=None, username=username
    )
    assert (target.repository, target.ref, target.commit) == ("alice/shop", "main", head)
    assert target.committed_at == "2026-02-03T04:05:06+01:00" and asked == ["me"]

    run_git(repo, "remote", "add", "origin", "git@github.com:acme/web-shop.git")
    target = resolve_target(
        checkout, repository=None, ref=None, pr=7, commit="HEAD~1", username=no_username
    )
    assert (target.repository, target.ref) == ("acme/web-shop", "pr-7")
    assert target.commit == run_git(repo, "rev-parse", "HEAD~1")
    target = resolve_target(
        checkout, repository="bob/x", ref="feature/a", pr=None, commit=None, username=no_username
    )
    assert (target.repository, target.ref) == ("bob/x", "feature/a")


def test_a_detached_head_needs_a_ref(repo: Path) -> None:
    run_git(repo, "checkout", "-q", "--detach", "HEAD~1")
    checkout = Checkout.at(repo)
    assert checkout.branch() is None
    with pytest.raises(CliError, match="HEAD is detached") as caught:
        resolve_target(
            checkout, repository="a/b", ref=None, pr=None, commit=None, username=lambda: "x"
        )
    assert caught.value.exit_code == Exit.USAGE
    target = resolve_target(
        checkout, repository="a/b", ref="main", pr=None, commit=None, username=lambda: "x"
    )
    assert target.commit == run_git(repo, "rev-parse", "main~1")
    with pytest.raises(CliError, match="not both"):
        resolve_target(
            checkout, repository="a/b", ref="main", pr=3, commit=None, username=lambda: "x"
        )
