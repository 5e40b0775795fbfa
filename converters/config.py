"""The converters' [convert] section of config.ini."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from maskipy.edge.config import EDGE_SCHEMA, parse_sections, read_ini, setting

QUANTIZATIONS = ("int8", "uint8", "float32", "float16", "dynamic")
CALIBRATIONS = ("percentile", "minmax")


@dataclass(frozen=True)
class ConvertConfig:
    """How to quantize, and how far the quantized model may drift from the float one."""

    quantization: str = setting("int8", "int8/uint8: full-integer (the Pi default); float32, "
                                "float16, dynamic: on request", choices=QUANTIZATIONS)
    representative_samples: int = setting(300, "training crops used to calibrate int8 ranges",
                                          low=10, high=100_000)
    calibration: str = setting("percentile", "int8 activation ranges: percentile (clip rare "
                               "outliers; measured fewer flips) or minmax (TFLite's own)",
                               choices=CALIBRATIONS)
    calibration_percentile: float = setting(99.99, "share of calibration values each int8 range "
                                            "keeps (percentile calibration)", low=90, high=100)
    min_agreement: float = setting(0.995, "least top-1 agreement with the float model on the "
                                   "held-back crops", low=0, high=1)
    max_accuracy_drop: float = setting(0.005, "largest accuracy loss vs the float model (0.005 = "
                                       "half a point)", low=0, high=1)
    parity_samples: int = setting(0, "held-back crops to check (0: the whole test split)", low=0)
    decision: bool = setting(True, "fit the alert decision on the validation split: a temperature "
                             "that calibrates the probabilities and a weight on improperly_masked")
    false_alarm_cost: float = setting(2.0, "decision: cost of calling a properly masked person "
                                      "improperly masked (per such person)", low=0.0, high=100.0)
    missed_improper_cost: float = setting(1.0, "decision: cost of missing an improperly masked person "
                                          "(per such person)", low=0.0, high=100.0)
    output_dir: Path = setting(Path("bundle"), "where model.tflite and model.json go")


def load_convert_config(path: str | Path | None) -> ConvertConfig:
    parser = read_ini(path)
    shown = str(path) if path is not None else "defaults"
    foreign = [*EDGE_SCHEMA, "train", "deploy"]
    config: ConvertConfig = parse_sections(parser, {"convert": ConvertConfig}, shown, foreign)["convert"]
    if path is not None and not config.output_dir.is_absolute():
        import dataclasses

        config = dataclasses.replace(config, output_dir=Path(path).resolve().parent / config.output_dir)
    return config
