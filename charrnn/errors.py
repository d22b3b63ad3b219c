"""The one exception type that carries a user-facing message."""


class CharRNNError(Exception):
    """A problem the user can fix; the CLI prints its message on one line and exits non-zero.

    `flags` is the end of the message that tells a command-line user which flag to give, separator included
    ("; pass --encoding if ..."): str() has it, `problem` does not. The app, where nobody passes flags, shows
    `problem`, and says what to change on the page where it can (serve/jobs.py for a time budget).
    """

    def __init__(self, problem: str = "", flags: str = ""):
        super().__init__(problem + flags)
        self.problem, self.flags = problem, flags
