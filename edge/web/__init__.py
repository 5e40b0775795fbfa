"""The status page: what it shows (status), how it is served (server, metrics, preview), and the output
that feeds it from the frame loop (output)."""
