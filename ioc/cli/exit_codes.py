"""Exit codes of ``ioc`` commands, documented in README ("Command line")."""

OK = 0
FAILED = 1  # the command ran and found problems (invalid config, failed check, test of a bench goal)
USAGE = 2  # wrong arguments (typer/click's own convention)
UNAVAILABLE = 3  # a dependency (database, broker, file) could not be reached
