"""Errors facelens raises. Each message is one line naming the input and what is wrong."""


class FacelensError(Exception):
    """Base of every error facelens raises on purpose."""


class SourceError(FacelensError):
    """An input (file, folder, camera, stream) cannot be read."""


class ModelError(FacelensError):
    """A model file is missing, cannot be downloaded, or fails its checksum."""


class ChecksumError(ModelError):
    """A model file's SHA-384 differs from the catalog's."""
