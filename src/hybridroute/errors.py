"""Error types: one hierarchy, so callers can catch what hybridroute raises."""


class HybridError(Exception):
    """Base class of every error hybridroute raises on purpose."""


class ConfigError(HybridError):
    """A configuration value is out of range or inconsistent."""


class DataError(HybridError):
    """Input data is missing, malformed or unusable."""


class ArtifactError(HybridError):
    """A model bundle or run folder is missing, corrupt or incompatible."""


class InferenceError(HybridError):
    """The model could not produce a prediction."""


class RoutingError(HybridError):
    """A routing policy or its configuration is invalid."""
