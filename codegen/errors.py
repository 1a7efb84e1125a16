"""The project's error types: each carries an exit code and a one-line message.

The command line catches `CodegenError`, prints its message (no traceback unless
`--debug`) and exits with its code. The codes are documented in the README.
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """Process exit codes of the `codegen` command (documented in the README)."""

    OK = 0
    ERROR = 1  # unexpected internal error (a bug: please report it)
    USAGE = 2  # bad command-line arguments
    INPUT = 3  # a model / checkpoint / IR file is missing, truncated or malformed
    UNSUPPORTED = 4  # the graph holds ops the converter cannot translate
    INVALID_IR = 5  # graph.json or its weights fail validation
    OUTPUT = 6  # the output folder cannot be written
    MERGE_CONFLICT = 7  # a rebuild could not merge hand edits of model.py
    MISMATCH = 8  # verify: PyTorch and TensorFlow disagree beyond tolerance
    NETWORK = 9  # a download failed
    GENERATED_CODE = 10  # build: the generated model.py fails when run (nothing written)
    INTERRUPTED = 130


class CodegenError(Exception):
    """A user-facing error: one line saying what is wrong and what to do."""

    exit_code: Exit = Exit.ERROR

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class UsageError(CodegenError):
    exit_code = Exit.USAGE


class InputError(CodegenError):
    exit_code = Exit.INPUT


class UnsupportedOpsError(CodegenError):
    exit_code = Exit.UNSUPPORTED


class InvalidIRError(CodegenError):
    exit_code = Exit.INVALID_IR


class OutputError(CodegenError):
    exit_code = Exit.OUTPUT


class MergeConflictError(CodegenError):
    exit_code = Exit.MERGE_CONFLICT


class MismatchError(CodegenError):
    exit_code = Exit.MISMATCH


class NetworkError(CodegenError):
    exit_code = Exit.NETWORK


class GeneratedCodeError(CodegenError):
    """`codegen build` ran the model it generated on sample inputs and it failed: the
    message names the IR node whose code failed; nothing was written."""

    exit_code = Exit.GENERATED_CODE
