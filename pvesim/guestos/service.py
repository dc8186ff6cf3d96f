"""The CT's service manager: units found, started as real processes, stopped by PID.

A running unit has ``run/systemd/units/NAME.pid`` (its main PID, which leads its own
process group) and appends its stdout and stderr to ``var/log/journal/NAME.log``.
``NAME.state`` holds ``active`` for a unit that is up without a process (a package
service the apt stand-in only records, a oneshot with RemainAfterExit) and ``failed``
after a failed start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import procs
from .layout import Layout
from .units import Command, Unit, UnitError, expand_words, load_unit, parse_env_file, specifiers

START_TIMEOUT = 90.0
BOOT_TARGETS = ("multi-user.target", "default.target", "graphical.target")


class ServiceError(Exception):
    """A failed systemctl operation: the message systemd prints and its exit code."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class Found:
    name: str  # the unit's own name (an alias resolves to it)
    path: Path
    unit: Unit


class ServiceManager:
    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    # -- lookup ------------------------------------------------------------------------
    def unit_path(self, name: str) -> Path | None:
        for directory in self.layout.unit_dirs:
            path = directory / name
            if path.is_file():
                return path
        return None

    def find(self, name: str) -> Found | None:
        path = self.unit_path(name)
        if path is None:
            return None
        real = path.resolve()
        own = real.name if real.suffix == path.suffix else name
        try:
            unit = load_unit(own, real.read_text())
        except (OSError, UnicodeDecodeError, UnitError) as exc:
            raise ServiceError(f"Failed to load {name}: {exc}") from exc
        return Found(own, real, unit)

    def need(self, name: str, verb: str) -> Found:
        found = self.find(name)
        if found is None:
            if verb in ("enable", "disable"):
                raise ServiceError(f"Failed to {verb} unit: Unit file {name} does not exist.")
            raise ServiceError(f"Failed to {verb} {name}: Unit {name} not found.", 5)
        return found

    def all_units(self) -> list[str]:
        names: set[str] = set()
        for directory in self.layout.unit_dirs:
            if directory.is_dir():
                names.update(p.name for p in directory.glob("*.service") if p.is_file())
        return sorted(names)

    # -- state -------------------------------------------------------------------------
    def _pid_file(self, name: str) -> Path:
        return self.layout.unit_state / f"{name}.pid"

    def _state_file(self, name: str) -> Path:
        return self.layout.unit_state / f"{name}.state"

    def main_pid(self, name: str) -> int | None:
        try:
            pid = int(self._pid_file(name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if procs.unit_alive(pid) else None

    def state(self, name: str) -> str:
        """active, inactive or failed (a main process that is gone is a failure)."""
        if self.main_pid(name) is not None:
            return "active"
        if self._pid_file(name).exists():
            return "failed"
        try:
            return self._state_file(name).read_text().strip() or "inactive"
        except OSError:
            return "inactive"

    def since(self, name: str) -> float | None:
        for path in (self._pid_file(name), self._state_file(name)):
            with contextlib.suppress(OSError):
                return path.stat().st_mtime
        return None

    def _set_state(self, name: str, state: str | None) -> None:
        self.layout.unit_state.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self._pid_file(name).unlink()
        if state is None:
            with contextlib.suppress(FileNotFoundError):
                self._state_file(name).unlink()
        else:
            self._state_file(name).write_text(state + "\n")

    def enabled(self, found: Found) -> bool:
        return any(
            (self.layout.etc_units / f"{target}.wants" / found.name).is_symlink()
            for target in {*found.unit.wanted_by, *BOOT_TARGETS}
        )

    # -- the journal -------------------------------------------------------------------
    def log_path(self, name: str) -> Path:
        return self.layout.journal / f"{name}.log"

    def hostname(self) -> str:
        try:
            return (self.layout.root / "etc" / "hostname").read_text().strip() or "localhost"
        except OSError:
            return "localhost"

    def journal(self, name: str, message: str) -> None:
        """A line as systemd would log it about the unit."""
        self.layout.journal.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%b %d %H:%M:%S")
        with open(self.log_path(name), "a") as fh:
            fh.write(f"{stamp} {self.hostname()} systemd[1]: {message}\n")

    # -- start and stop ------------------------------------------------------------------
    def environment(self, found: Found) -> dict[str, str]:
        env = self.layout.env()
        env.update(found.unit.environment)
        for path, optional in found.unit.environment_files:
            target = self.layout.inside(path)
            try:
                env.update(parse_env_file(target.read_text()))
            except OSError as exc:
                if not optional:
                    raise ServiceError(
                        f"Job for {found.name} failed: EnvironmentFile {path} cannot be read "
                        f"({exc.strerror})."
                    ) from exc
        env["INVOCATION_ID"] = os.urandom(16).hex()
        return env

    def workdir(self, found: Found) -> Path:
        wd = found.unit.working_directory
        if not wd or wd == "~":
            return self.layout.root
        target = self.layout.inside(wd)
        if not target.is_dir():
            if found.unit.working_directory_optional:
                return self.layout.root
            raise ServiceError(
                f"Job for {found.name} failed: WorkingDirectory {wd} does not exist "
                "(status=200/CHDIR)."
            )
        return target

    def argv(self, found: Found, cmd: Command, env: dict[str, str]) -> tuple[str, list[str]]:
        """(the program's host path, argv) for one command line of the unit."""
        name = found.name
        values = {
            "%": "%",
            "n": name,
            "N": name.rsplit(".", 1)[0],
            "p": name.split("@", 1)[0].rsplit(".", 1)[0],
            "i": name.split("@", 1)[1].rsplit(".", 1)[0] if "@" in name else "",
            "h": str(self.layout.root),
            "u": "root",
            "t": str(self.layout.run),
        }
        words = [specifiers(w, values) for w in cmd.words]
        argv = expand_words(Command(words, expand_env=cmd.expand_env), env)
        program: str | None = argv[0]
        if "/" in argv[0]:
            resolved = self.layout.inside(argv[0])
            program = str(resolved) if os.access(resolved, os.X_OK) else None
        else:
            program = shutil.which(argv[0], path=env.get("PATH"))
        if program is None:
            raise ServiceError(
                f"Job for {name} failed: executable {argv[0]} not found (status=203/EXEC)."
            )
        if cmd.argv0 is not None:
            argv[0] = cmd.argv0
        return program, argv

    def _run_sync(self, found: Found, cmd: Command, env: dict[str, str], log: IO[str]) -> None:
        program, argv = self.argv(found, cmd, env)
        log.flush()
        try:
            code = subprocess.run(
                argv,
                executable=program,
                cwd=self.workdir(found),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=START_TIMEOUT,
                check=False,
            ).returncode
        except subprocess.TimeoutExpired:
            code = -9
        if code != 0 and not cmd.ignore_failure:
            raise ServiceError(
                f"Job for {found.name} failed because the control process exited with error "
                f'code.\nSee "systemctl status {found.name}" and "journalctl -xeu {found.name}" '
                "for details."
            )

    def start(self, name: str) -> None:
        found = self.need(name, "start")
        if self.state(found.name) == "active":
            return
        if found.unit.record_only:
            self._set_state(found.name, "active")
            self.journal(found.name, f"Started {self._title(found)}.")
            return
        try:
            self._start_process(found)
        except ServiceError:
            self._set_state(found.name, "failed")
            self.journal(found.name, f"Failed to start {self._title(found)}.")
            raise
        self.journal(found.name, f"Started {self._title(found)}.")

    def _start_process(self, found: Found) -> None:
        env = self.environment(found)
        cwd = self.workdir(found)
        self.layout.journal.mkdir(parents=True, exist_ok=True)
        with open(self.log_path(found.name), "a") as log:
            for cmd in found.unit.exec_start_pre:
                self._run_sync(found, cmd, env, log)
            if found.unit.type == "oneshot":
                for cmd in found.unit.exec_start:
                    self._run_sync(found, cmd, env, log)
                self._set_state(found.name, "active" if found.unit.remain_after_exit else None)
            else:
                pid = self._spawn(found, found.unit.exec_start[0], env, cwd, log)
                self._set_state(found.name, None)
                self._pid_file(found.name).write_text(f"{pid}\n")
                env["MAINPID"] = str(pid)
            for cmd in found.unit.exec_start_post:
                self._run_sync(found, cmd, env, log)

    def _spawn(
        self, found: Found, cmd: Command, env: dict[str, str], cwd: Path, log: IO[str]
    ) -> int:
        program, argv = self.argv(found, cmd, env)
        log.flush()
        proc = subprocess.Popen(
            argv,
            executable=program,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if found.unit.type != "forking":
            return proc.pid
        proc.wait(START_TIMEOUT)
        if found.unit.pid_file:
            with contextlib.suppress(OSError, ValueError):
                return int(self.layout.inside(found.unit.pid_file).read_text().split()[0])
        return proc.pid  # its process group lives on in the daemon

    def stop(self, name: str) -> None:
        found = self.find(name)
        if found is None:
            raise ServiceError(f"Failed to stop {name}: Unit {name} not loaded.", 5)
        pid = self.main_pid(found.name)
        was = self.state(found.name)
        if pid is not None:
            env = self.environment_or_base(found)
            env["MAINPID"] = str(pid)
            with open(self.log_path(found.name), "a") as log:
                for cmd in found.unit.exec_stop:
                    with contextlib.suppress(ServiceError):
                        self._run_sync(found, cmd, env, log)
            self.journal(found.name, f"Stopping {self._title(found)}...")
            procs.stop_unit(pid, min(found.unit.timeout_stop, 30.0))
        self._set_state(found.name, None)
        if was != "inactive":
            self.journal(found.name, f"Stopped {self._title(found)}.")

    def environment_or_base(self, found: Found) -> dict[str, str]:
        try:
            return self.environment(found)
        except ServiceError:
            return self.layout.env()

    def restart(self, name: str) -> None:
        found = self.need(name, "restart")
        self.stop(found.name)
        self.start(found.name)

    def reload(self, name: str) -> None:
        found = self.need(name, "reload")
        if not found.unit.exec_reload:
            raise ServiceError(
                f"Failed to reload {found.name}: Job type reload is not applicable for unit "
                f"{found.name}."
            )
        if self.state(found.name) != "active":
            raise ServiceError(f"Failed to reload {found.name}: Unit {found.name} is not active.")
        env = self.environment(found)
        pid = self.main_pid(found.name)
        if pid is not None:
            env["MAINPID"] = str(pid)
        with open(self.log_path(found.name), "a") as log:
            for cmd in found.unit.exec_reload:
                self._run_sync(found, cmd, env, log)

    # -- enablement ----------------------------------------------------------------------
    def enable(self, name: str) -> list[str]:
        """Links as systemd makes them; returns the messages it prints."""
        found = self.need(name, "enable")
        targets = found.unit.wanted_by
        if not targets and not found.unit.aliases:
            return [
                "The unit files have no installation config (WantedBy=, RequiredBy=, Also=,",
                "Alias= settings in the [Install] section, and DefaultInstance= for template",
                "units). This means they are not meant to be enabled or disabled using systemctl.",
            ]
        messages = []
        source = self.layout.display(found.path)
        links = [self.layout.etc_units / f"{t}.wants" / found.name for t in targets]
        links += [self.layout.etc_units / alias for alias in found.unit.aliases]
        for link in links:
            if link.is_symlink() or link.exists():
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(source)
            messages.append(f"Created symlink {self.layout.display(link)} \u2192 {source}.")
        return messages

    def disable(self, name: str) -> list[str]:
        found = self.need(name, "disable")
        messages = []
        for target in {*found.unit.wanted_by, *BOOT_TARGETS}:
            link = self.layout.etc_units / f"{target}.wants" / found.name
            if link.is_symlink():
                link.unlink()
                messages.append(f"Removed {self.layout.display(link)}.")
        for alias in found.unit.aliases:
            link = self.layout.etc_units / alias
            if link.is_symlink():
                link.unlink()
                messages.append(f"Removed {self.layout.display(link)}.")
        return messages

    def boot(self) -> list[str]:
        """At CT start: every enabled unit is started (errors are logged, not raised)."""
        started = []
        for target in BOOT_TARGETS:
            wants = self.layout.etc_units / f"{target}.wants"
            if not wants.is_dir():
                continue
            for link in sorted(wants.iterdir()):
                name = link.name
                try:
                    found = self.find(name)
                    if found is not None:
                        self.start(found.name)
                        started.append(found.name)
                except (ServiceError, OSError) as exc:
                    with contextlib.suppress(OSError):
                        self.journal(name, f"Failed to start {name} at boot: {exc}")
        return started

    def _title(self, found: Found) -> str:
        desc = found.unit.description
        return f"{found.name} - {desc}" if desc else found.name
