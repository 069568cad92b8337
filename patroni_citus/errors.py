"""The project's one error hierarchy; the CLI edge turns each into a single clear line."""


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
