"""The one error the claims script refuses with: a one-line message, exit 2."""


class ClaimsError(Exception):
    """Pages or data the script cannot check: the message says what and where, in one line."""
