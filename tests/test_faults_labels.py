"""An operator's worst week, bad bundles: labels are checked by meaning.

A full disk is a real 64 KiB tmpfs (``mount -t tmpfs -o size=64k``, the ``tmpfs`` fixture in
conftest) and a read-only one the same tmpfs remounted ``ro``; where the sandbox cannot mount (no
CAP_SYS_ADMIN), the full disk is ``/dev/full`` (every write: ENOSPC) and the read-only tests skip.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from faults_helpers import gate

from maskipy.edge.bundle import current_bundle_dir


def permuted(bundle: Path, target: Path, first: str = "properly_masked", second: str = "unmasked") -> Path:
    import shutil

    shutil.copytree(bundle, target)
    meta = json.loads((target / "model.json").read_text())
    labels = meta["labels"]
    a, b = labels.index(first), labels.index(second)
    labels[a], labels[b] = labels[b], labels[a]
    (target / "model.json").write_text(json.dumps(meta))
    return target


def test_permuted_labels_are_refused_by_validation_and_install(tmp_path, default_bundle):
    from maskipy.edge.errors import ModelError
    from maskipy.edge.swap import cli as swap

    assert ("9 probe crops labelled right (properly_masked, unmasked, not_face)"
            in swap.validate_bundle(default_bundle).describe())
    bad = permuted(default_bundle, tmp_path / "permuted")
    with pytest.raises(ModelError, match="properly_masked probes classified as unmasked"):
        swap.validate_bundle(bad)
    with pytest.raises(ModelError, match="do not mean what they say"):
        swap.install_bundle(bad, tmp_path / "state", notify=False)
    assert current_bundle_dir(tmp_path / "state") is None
    # Even the swap that leaves both counted-and-probed faces alone: not_face probes pin the rest.
    with pytest.raises(ModelError, match="not_face probes classified as improperly_masked"):
        swap.validate_bundle(permuted(default_bundle, tmp_path / "p2", "improperly_masked", "not_face"))


def test_permuted_labels_in_place_are_refused_on_reload(tmp_path, default_bundle, scene_frames):
    from maskipy.edge.swap import cli as swap

    state = tmp_path / "state"
    swap.install_bundle(default_bundle, state, notify=False)
    current = current_bundle_dir(state)
    assert (current / "probes.npz").is_file()  # the probes travel with the installed copy
    runtime = gate(state, scene_frames[:1])
    try:
        meta = json.loads((current / "model.json").read_text())
        meta["labels"] = [{"properly_masked": "unmasked", "unmasked": "properly_masked"}.get(label, label)
                          for label in meta["labels"]]
        (current / "model.json").write_text(json.dumps(meta))
        assert runtime.reload_model() is False and runtime.classifier.labels[0] == "properly_masked"
    finally:
        runtime.close()


def without_probes(bundle: Path, target: Path) -> Path:
    import shutil

    if not target.exists():
        shutil.copytree(bundle, target)
    meta = json.loads((target / "model.json").read_text())
    del meta["probes"]
    (target / "model.json").write_text(json.dumps(meta))
    (target / "probes.npz").unlink()
    return target


def test_a_bundle_without_probes_is_checked_with_the_kits_own(tmp_path, default_bundle):
    """Removing probes.npz (or a bundle made before probes) must not let permuted labels through:
    the kit's own probe crops (the built-in bundle's) check any bundle that carries none."""
    from maskipy.edge.errors import ModelError
    from maskipy.edge.swap import cli as swap

    plain = without_probes(default_bundle, tmp_path / "plain")
    assert "the kit's 9 probe crops labelled right" in swap.validate_bundle(plain).describe()
    bad = without_probes(default_bundle, permuted(default_bundle, tmp_path / "permuted"))
    with pytest.raises(ModelError, match="properly_masked probes classified as unmasked"):
        swap.validate_bundle(bad)
    with pytest.raises(ModelError, match="do not mean what they say"):
        swap.install_bundle(bad, tmp_path / "state", notify=False)


def test_bundle_install_on_a_full_disk_leaves_no_staging_behind(tmpfs, default_bundle, capsys):
    from maskipy.edge.swap import cli as swap

    if tmpfs is None:
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
    state = tmpfs.path / "state"
    code = swap.main(["install", str(default_bundle), "--state-dir", str(state)])
    assert code == 1 and "No space left" in capsys.readouterr().err
    assert not list((state / "models").glob(".staging-*"))
    assert current_bundle_dir(state) is None
