"""Exceptions of the linker that callers handle by type (all are ValueErrors, so code
that caught ValueError before still does)."""


class LinkerNotReadyError(ValueError):
    """The linker has no taxonomy and index yet: initialize it or load a trained pipeline."""


class VectorsMismatchError(ValueError):
    """The pipeline's word vectors are not the ones the linker was trained with."""


class UnknownConceptError(ValueError):
    """A gold concept of the data is not in the linker's taxonomy."""


class NotCalibratableError(ValueError):
    """No development span is usable for calibration (all are strings of concepts the
    linker can link to): the linker keeps its fixed fusion."""


class SettingsError(ValueError):
    """A setting of the linker's config has an unknown name or a bad value."""
