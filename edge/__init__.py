"""maskipy.edge: the Raspberry Pi side of maskipy. One frame flows down this list, a folder per step:

    sources/   camera, video file or image folder → a BGR frame (watchdog reopens a stalled one)
    detectors/ frame → face boxes (ssd: BlazeFace, haar: OpenCV cascades); geometry.py: box maths
    pipeline   boxes → crops by the bundle's contract (preprocess.py) → classifier/ → observations
    tracking   observations → tracks, one vote per person → a CountEvent when a person is counted
    outputs/   LEDs, buzzer, count log, MQTT; web/: status page, /metrics; runtime.py runs the loop

Around the loop: config/ (the INI schema), classifier/live.py (the model in use, swapped on reload),
service/ (systemd, heartbeat, pid file, lock), swap/ (install-time bundle checks and swaps), cli.py.
"""

# The version of maskipy, the one place it is set: setup.cfg reads it, and so do --version and MQTT
# discovery (cli_runner.package_version).
__version__ = "0.1.0"
