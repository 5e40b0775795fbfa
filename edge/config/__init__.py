"""The edge's configuration: one INI file, every section a typed dataclass, validated up front.

``schema`` reads and checks values (unknown keys refused, every error naming file, key, value and
fix), ``sections`` declares the sections, ``load`` reads a file and applies the rules across them::

    config = load_edge_config("/etc/maskipy/config.ini")
    config.camera.fps
"""

from .load import (
    FOREIGN_SECTIONS,
    example_config,
    exposed_secrets,
    is_loopback,
    load_edge_config,
    verify_config,
)
from .schema import describe, parse_sections, read_ini, setting
from .sections import (
    COUNTED_CLASSES,
    EDGE_SCHEMA,
    CameraConfig,
    ClassifierConfig,
    CountsConfig,
    DetectorConfig,
    EdgeConfig,
    HttpConfig,
    MqttConfig,
    OutputsConfig,
    PreviewConfig,
    TrackingConfig,
)

__all__ = [
    "COUNTED_CLASSES", "EDGE_SCHEMA", "FOREIGN_SECTIONS", "CameraConfig", "ClassifierConfig", "CountsConfig",
    "DetectorConfig", "EdgeConfig", "HttpConfig", "MqttConfig", "OutputsConfig", "PreviewConfig",
    "TrackingConfig", "describe", "example_config", "exposed_secrets", "is_loopback", "load_edge_config",
    "parse_sections", "read_ini", "setting", "verify_config",
]
