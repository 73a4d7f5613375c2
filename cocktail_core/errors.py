"""One error family for the whole core.

Every error a user can cause is a :class:`CocktailError`: its message says what is wrong and names
the model, tensor or field; its ``hint`` says what to do next. The CLI and the UI show errors
through :func:`format_error`, so both speak with one voice and neither shows a traceback.
"""

from __future__ import annotations


class CocktailError(Exception):
    """Base class of every error Cocktail raises on purpose.

    Args:
        message: What is wrong, naming the model / tensor / field concerned.
        hint: What the user can do about it (optional).
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


# --- Recipe and input ---------------------------------------------------------------------------


class RecipeError(CocktailError, ValueError):
    """The recipe (or the CLI arguments that build one) is invalid.

    Example: ``Recipe(models=["a"], weights=[1.0])`` ->
    "A merge needs at least two models; got 1 (a)."
    """


class SourceNotFoundError(CocktailError, FileNotFoundError):
    """A model reference points at nothing: no such local folder and not a Hub repo id."""


class NoSafetensorsError(CocktailError):
    """A model folder has no ``*.safetensors`` weights (only pickled or no weights)."""


class OutputExistsError(CocktailError, FileExistsError):
    """The output folder exists and ``overwrite`` was not asked for."""


class OutputPathError(CocktailError, OSError):
    """The output folder cannot be created there (a file in the way, no write access)."""


class PreflightError(CocktailError):
    """The inputs cannot be merged; ``problems`` lists every reason found, not just the first."""

    def __init__(self, problems: list[str], *, hint: str | None = None) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"Preflight found {len(self.problems)} problem(s) that would make this merge fail or be wrong:\n{lines}",
            hint=hint,
        )


class MergeInterruptedError(CocktailError):
    """The merge stopped midway; nothing was written at the output path."""


class ExamplesError(CocktailError, ValueError):
    """Examples for weight computation are malformed or do not fit the model kind.

    ``line`` / ``column`` / ``field`` locate the problem when known (1-based).
    """

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.line, self.column, self.field = line, column, field
        where = []
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = f"Examples, {', '.join(where)}: " if where else "Examples: "
        super().__init__(prefix + message, hint=hint)


class ScoringError(CocktailError):
    """A model could not be scored on the examples (e.g. an answer truncated away)."""


class SettingsError(CocktailError, ValueError):
    """An environment setting (``COCKTAIL_*``) has a value Cocktail cannot use."""


# --- Hub ----------------------------------------------------------------------------------------


class HubError(CocktailError):
    """Base class of errors talking to the Hugging Face Hub."""


class HubRepoNotFoundError(HubError):
    """The repository does not exist, or is private and the token cannot see it."""


class HubRevisionNotFoundError(HubError):
    """The repository exists but the requested revision (branch, tag, commit) does not."""


class HubGatedError(HubError):
    """The repository is gated and the token's user has not been granted access."""


class HubUnauthorizedError(HubError):
    """The token is missing, invalid, or lacks the permission the action needs."""


class HubUnreachableError(HubError):
    """The Hub could not be reached (network, DNS, timeout)."""


class HubRepoNotEmptyError(HubError):
    """The target repository already holds files and neither overwrite nor a PR was asked for."""


class HubPushError(HubError):
    """The upload failed; nothing was committed."""


def format_error(exc: BaseException) -> str:
    """Return the one-paragraph text shown to users for ``exc`` (CLI and UI alike).

    Known errors print their message and hint; anything else is an internal error, reported with
    its type so it can be filed, never with a traceback.

    Example:
        >>> format_error(RecipeError("Unknown method 'lin'.", hint="Choose one of: linear."))
        "Unknown method 'lin'. Choose one of: linear."
    """
    if isinstance(exc, CocktailError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "Interrupted; nothing was written at the output path."
    if isinstance(exc, MemoryError):
        return "Out of memory. Close other programs or merge on a machine with more RAM."
    return (
        f"Internal error ({type(exc).__name__}: {exc}). This is a bug in Cocktail; "
        "rerun with --debug for the traceback and report it."
    )
