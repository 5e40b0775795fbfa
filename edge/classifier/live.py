"""The model the frame loop classifies with: chosen at start, swapped between frames on reload."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..bundle import CURRENT, Bundle, current_bundle_dir, models_dir, not_a_store_link
from ..config import EdgeConfig
from ..service.running import write_running
from .load import load_model, load_start_model, resolve_model

log = logging.getLogger(__name__)


class LiveModel:
    """The running bundle and classifier; a reload that fails keeps them.

    At start: ``--model`` or ``[classifier] model`` if given, else the deployed bundle, falling back
    to the previous and then the built-in one (``problem`` says so while a fallback runs)::

        model = LiveModel(config)
        model.reload()   # after a deploy (SIGHUP); False and the old model kept if the new one fails
    """

    def __init__(self, config: EdgeConfig, explicit: str | Path | None = None) -> None:
        self.config, self.explicit = config, explicit or config.classifier.model or None
        start = load_start_model(config, self.explicit)
        self.bundle: Bundle = start.bundle
        self.classifier: Any = start.classifier
        self.problem: str | None = start.problem  # set while a fallback model runs
        self._started_from = start.deployed
        self.reloads = self.reload_failures = 0
        write_running(config.counts.state_dir, self.bundle.directory, self.bundle.sha256)

    def deployed_since_start(self) -> bool:
        """True when ``current`` moved after this model was chosen (a deploy during start-up)."""
        if self.explicit:
            return False
        now = current_bundle_dir(self.config.counts.state_dir)
        return now is not None and now != self._started_from

    def reload(self) -> bool:
        """Load the model again (a new bundle may have been deployed); keep the old one on failure."""
        gone = self._deployed_model_gone()
        if gone:
            return self._keep(gone)
        try:
            bundle, classifier = load_model(self.config, resolve_model(self.config, self.explicit))
        except Exception as exc:  # whatever a bad bundle does, the running model stays
            return self._keep(str(exc))
        self.bundle, self.classifier, self.problem = bundle, classifier, None
        self.reloads += 1
        log.info("reload: now using model %s (%s)", bundle.directory, bundle.sha256[:12])
        write_running(self.config.counts.state_dir, bundle.directory, bundle.sha256, reload_ok=True)
        return True

    def _keep(self, why: str) -> bool:
        """A failed reload: the running model stays, and the log and the installer are told why."""
        self.reload_failures += 1
        log.error("reload: keeping model %s: %s", self.bundle.directory, why)
        write_running(self.config.counts.state_dir, self.bundle.directory, self.bundle.sha256,
                      reload_ok=False, reload_error=why)
        return False

    def _deployed_model_gone(self) -> str | None:
        """Why a reload must not fall through to the built-in model: the store's ``current`` link is
        there but its version directory is not (deleted by hand), or ``current`` is a folder copied
        there by hand. None when nothing is amiss."""
        if self.explicit:
            return None
        link = models_dir(self.config.counts.state_dir) / CURRENT
        hand_copied = not_a_store_link(link)
        if hand_copied:
            return hand_copied
        if link.is_symlink() and current_bundle_dir(self.config.counts.state_dir) is None:
            return (f"the deployed model is gone ({link} points to a missing directory); install one with "
                    f"maskipy-edge bundle install DIR or go back with maskipy-edge bundle rollback")
        return None
