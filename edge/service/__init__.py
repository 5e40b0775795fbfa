"""Living under systemd: sd_notify, the heartbeat, the pid file, the state-directory lock, the journal."""
