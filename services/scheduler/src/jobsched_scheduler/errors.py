"""What can go wrong, in the scheduler's own terms: the store and the validation raise
these, and only the gRPC layer turns them into status codes."""


class DomainError(Exception):
    """The base of every error the API reports by name."""


class InvalidValue(DomainError):
    """A value the API or the database refuses: out of range, empty, malformed."""


class NotFound(DomainError):
    """No such job."""


class Conflict(DomainError):
    """The value is taken: a job name that already exists."""


class WrongState(DomainError):
    """Not allowed in the job's current state, e.g. cancelling a finished job."""


class Unavailable(DomainError):
    """The database cannot be reached now; the same request may work later."""


class FellBehind(DomainError):
    """An event watcher that could not keep up and was cut off."""
