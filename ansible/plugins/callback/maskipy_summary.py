"""maskipy_summary: one table for the whole fleet at the end of a roll-out or rollback playbook."""

from __future__ import annotations

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: maskipy_summary
    type: aggregate
    short_description: fleet table (host, old sha, new sha, result) after maskipy roll-outs
    description:
      - Collects the C(maskipy_rollout) fact each gate sets and prints one row per gate of the play,
        gates never reached (a failed canary, an aborted batch) as C(skipped).
    requirements:
      - enable in ansible.cfg (callbacks_enabled = maskipy_summary)
"""

HEADER = ("host", "old sha", "new sha", "result", "detail")


class CallbackModule(CallbackBase):
    """Adds the table after Ansible's own recap; prints nothing for playbooks that set no maskipy_rollout."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "maskipy_summary"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self) -> None:
        super().__init__()
        self.plays: list[list[str]] = []  # each play's hosts, in roll-out order
        self.rollout_plays: set[int] = set()  # the plays that set maskipy_rollout
        self.rows: dict[str, dict[str, str]] = {}

    def v2_playbook_on_play_start(self, play) -> None:
        # Called once per serial batch, with the inventory restricted to it: ask for the whole play's hosts.
        try:
            inventory = play._variable_manager._inventory
            names = [host.name for host in inventory.get_hosts(play.hosts, ignore_restrictions=True,
                                                                order=play.order)]
        except (AttributeError, TypeError):
            names = []
        self.plays.append(names)

    def v2_runner_on_ok(self, result) -> None:
        row = result._result.get("ansible_facts", {}).get("maskipy_rollout")
        if isinstance(row, dict):
            self.rollout_plays.add(len(self.plays) - 1)
            self.rows[result._host.get_name()] = {key: str(value) for key, value in row.items()}

    def v2_runner_on_unreachable(self, result) -> None:
        message = str(result._result.get("msg", "unreachable")).strip().splitlines()
        self.rows[result._host.get_name()] = {"result": "FAILED", "detail": message[-1] if message else ""}

    def v2_playbook_on_stats(self, stats) -> None:
        if not self.rows:
            return
        hosts = [host for i in sorted(self.rollout_plays) for host in self.plays[i]]
        hosts = list(dict.fromkeys(hosts + list(self.rows)))
        self._display.display(table([self._row(host) for host in hosts]))

    def _row(self, host: str) -> tuple[str, ...]:
        row = self.rows.get(host)
        if row is None:
            return host, "?", "?", "skipped", "not tried: an earlier batch failed"
        return (host, row.get("old_sha", "?"), row.get("new_sha", "?"), row.get("result", "?"),
                row.get("detail", ""))


def table(rows: list[tuple[str, ...]]) -> str:
    """The rows under HEADER in aligned columns (the detail last, unpadded), then the tally."""
    cells = [HEADER, *rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(HEADER) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()
             for row in cells]
    results = [row[3] for row in rows]
    ok, skipped = results.count("ok"), results.count("skipped")
    failed = len(rows) - ok - skipped
    lines.append(f"maskipy: {len(rows)} gate(s): {ok} ok, {failed} failed, {skipped} skipped")
    return "\n".join(["", "MASKIPY FLEET SUMMARY", *lines])
