"""Loading the gate's model: any failure is a ModelError, and a bad deploy falls back, loudly."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..bundle import (
    CURRENT,
    Bundle,
    current_bundle_dir,
    load_bundle,
    models_dir,
    not_a_store_link,
    previous_bundle_dir,
)
from ..config import EdgeConfig
from ..errors import MaskipyError, ModelError
from . import build_classifier
from .probes import check_probes

log = logging.getLogger(__name__)


def resolve_model(config: EdgeConfig, model: str | Path | None = None) -> str | Path | None:
    """The bundle to load: ``--model``, ``[classifier] model``, the deployed one, else the default (None)."""
    if model:
        return model
    if config.classifier.model:
        return config.classifier.model
    return current_bundle_dir(config.counts.state_dir)


def load_model(config: EdgeConfig, location: str | Path | None, *,
               kit_probes: bool = False) -> tuple[Bundle, Any]:
    """Load and verify one bundle and build its classifier; every failure becomes a ModelError.

    ``kit_probes``: a bundle without probe crops is checked with the kit's own (what a deploy's
    validation does; a benchmark's throwaway model is loaded without them)."""
    try:
        bundle = load_bundle(location)
        classifier = build_classifier(config.classifier, bundle)
        # Labels by meaning: a bundle with its labels permuted would invert the gate.
        classifier.probe_summary = check_probes(classifier, bundle, kit_probes=kit_probes)
        return bundle, classifier
    except MaskipyError:
        raise
    except Exception as exc:  # unreadable files, odd JSON: still the bundle's fault, not a crash
        raise ModelError(f"{location}: cannot load the model ({type(exc).__name__}: {exc}); "
                         f"deploy a good bundle or fix its permissions") from None


@dataclass(frozen=True)
class StartModel:
    """The model the gate starts with, where the choice came from, and what went wrong on the way."""

    bundle: Bundle
    classifier: Any
    deployed: Path | None  # the ``current`` bundle at the time of choosing (None: not deployed)
    problem: str | None = None


def load_start_model(config: EdgeConfig, explicit: str | Path | None) -> StartModel:
    """The deployed model, else the previous one, else the built-in one, with a loud warning.

    A model named by --model or ``[classifier] model`` (``explicit``) has no fallback: its
    ModelError ends the run with a clear message.
    """
    state = config.counts.state_dir
    deployed = None if explicit else current_bundle_dir(state)
    # A folder copied over the ``current`` link is never loaded: say so, as for a current that fails.
    hand_copied = None if explicit else not_a_store_link(models_dir(state) / CURRENT)
    if explicit or (deployed is None and hand_copied is None):
        return StartModel(*load_model(config, explicit), deployed)
    problems: list[str] = []
    if hand_copied:
        problems.append(f"current: {hand_copied}")
        log.error("model: cannot load the current model: %s", hand_copied)
    choices = (("current", deployed), ("previous", previous_bundle_dir(state)), ("built-in", None))
    for name, location in choices:
        if location is None and name != "built-in":
            continue
        try:
            bundle, classifier = load_model(config, location)
        except MaskipyError as exc:
            problems.append(f"{name}: {exc}")
            log.error("model: cannot load the %s model: %s", name, exc)
            continue
        if not problems:
            return StartModel(bundle, classifier, deployed)
        log.error("model: FALLBACK: running the %s model %s because the deployed one failed (%s); "
                  "deploy a good bundle (maskipy-edge bundle install) or roll back", name, bundle.directory,
                  "; ".join(problems))
        return StartModel(bundle, classifier, deployed, f"fallback to the {name} model, deployed one failed")
    raise ModelError("; ".join(problems))
