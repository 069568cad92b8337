"""The project's one error hierarchy, and how an entry point describes any failure in single clear lines."""


class PatroniCitusError(Exception):
    """Base of every error a user can cause or meet; its message names the cause and the fix."""

    exit_code = 1


class ConfigurationError(PatroniCitusError):
    """A setting has a value that is not allowed; nothing has been written."""

    exit_code = 2
    related: tuple[str, ...] = ()
    """Other settings this refusal is about (a conflict of several): reported once, not once each."""

    def __init__(self, setting: str, value: str | None, allowed: str) -> None:
        shown = "(unset)" if value is None else repr(value)
        super().__init__(f"{setting}={shown} is invalid: {allowed}")
        self.setting = setting


class SecretSettingError(ConfigurationError):
    """Like ConfigurationError, but the offending value is a secret and is never shown."""

    def __init__(self, setting: str, allowed: str) -> None:
        PatroniCitusError.__init__(self, f"{setting} is invalid: {allowed}")
        self.setting = setting


class UnreachableError(PatroniCitusError):
    """The DCS, Patroni or the coordinator could not be reached."""

    exit_code = 2


#: Bad input or an unreachable DCS/coordinator, as the errors above use it.
USAGE_EXIT = 2
#: A shell's code for a process ended by SIGINT (Ctrl-C), 128 + 2.
INTERRUPTED_EXIT = 130
#: Something the project did not foresee: still one line, the exit code of a failed Python program.
UNEXPECTED_EXIT = 1


def describe_failure(exc: BaseException) -> tuple[list[str], int]:
    """Any failure as the lines an entry point prints (never a traceback) and the code it exits with.

    The project's errors keep their message (several settings: a line each) and code; an OSError
    names its file; anything else says it was unexpected, on one line.

    >>> describe_failure(PermissionError(13, "Permission denied", "/out/x.json"))
    (['/out/x.json: Permission denied'], 2)
    >>> describe_failure(KeyboardInterrupt())
    (['interrupted'], 130)
    """
    if isinstance(exc, PatroniCitusError):
        return str(exc).splitlines() or [type(exc).__name__], exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return ["interrupted"], INTERRUPTED_EXIT
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return [f"{where}{exc.strerror or exc}"], USAGE_EXIT
    text = " ".join(str(exc).split())  # a driver's message may span lines
    name = type(exc).__name__
    return [f"unexpected {name}: {text}" if text else f"unexpected {name}"], UNEXPECTED_EXIT
