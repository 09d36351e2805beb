"""Every error edgernn raises on purpose, in one tree (httpx style).

    EdgeRNNError
     ├── ConfigError       a value the user gave that is not allowed (cell, task, flag, scenario)
     ├── DataError         training data that cannot be used (missing column, NaN, too short)
     ├── ExportError       a converter or quantizer failed; names the format and the cause
     ├── BundleError       a bundle that cannot be loaded: manifest, schema version, paths, sha256
     │    └── VerifyError  an artifact that does not reproduce its golden vectors
     ├── StateError        a saved stream state that does not fit the bundle
     └── PublishError      MQTT delivery: "cannot publish: the publisher is closed"
          └── AuthError    the broker refused the login (names the broker and the reason)

Third-party exceptions are translated where they cross into edgernn: `raise BundleError(...) from exc`.
The `edgernn` command prints these as one line and exits 2, without a traceback.
Messages name the bad value and what is allowed:
`unsupported cell 'transformer'; supported: rnn, lstm, gru`.
"""


class EdgeRNNError(Exception):
    """Base of every error edgernn raises on purpose."""


class ConfigError(EdgeRNNError, ValueError):
    """A value the user gave that is not allowed."""


class DataError(EdgeRNNError, ValueError):
    """Training or evaluation data that cannot be used as given."""


class ExportError(EdgeRNNError):
    """A conversion or quantization step failed."""


class BundleError(EdgeRNNError):
    """A bundle that cannot be loaded or trusted."""


class VerifyError(BundleError):
    """An artifact whose outputs differ from the bundle's golden vectors."""


class StateError(EdgeRNNError):
    """A saved stream state that does not match the bundle."""


class PublishError(EdgeRNNError):
    """A prediction could not be handed to the broker."""


class AuthError(PublishError):
    """The broker refused the connection's credentials."""
