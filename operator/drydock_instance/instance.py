"""The run loop: PID 1 of the postgres container, supervising PostgreSQL for its Cluster.

Every `poll_seconds` it reads the desired state (Cluster, ConfigMap, Secrets), writes
what changed (certificates, configuration files), reloads PostgreSQL or restarts it when
a changed parameter needs that, observes the server (one query), and acts on the role
the Cluster wants for this instance:

* the target primary that is still a standby promotes when `handover.decide` says so:
  in a switchover, once it has received WAL past the old primary's shutdown checkpoint
  (else, after `switchover_timeout`, it gives the role back); in a failover, once its WAL
  receiver has been quiet for a few checks. Then it records itself as
  `status.currentPrimary`;
* a primary that is no longer the target records `status.demotion` (stopping), shuts
  down, records its shutdown checkpoint's LSN, waits until the new primary has taken
  over, runs pg_rewind against it (a no-op after a clean switchover) and comes back as a
  standby of the `-rw` Service; if the target is moved back to it, it starts as primary;
* the primary keeps the database owner's password equal to its Secret and the
  superuser's password NULL, or equal to its Secret while `enableSuperuserAccess` is on.

SIGTERM (the pod is deleted) shuts PostgreSQL down fast, which lets the WAL senders hand
everything to the standbys first.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path
from typing import Any

from drydock_instance import fsutil, handover, pgfiles, postgres
from drydock_instance.config import SUPERUSER, Settings
from drydock_instance.kubeclient import ApiError
from drydock_instance.sources import (
    Desired,
    SourceError,
    Transport,
    cluster_reference,
    event,
    fetch,
    now_iso,
)
from drydock_instance.status import STATUS_SQL, Status, parse_status

log = logging.getLogger(__name__)

STOP_TIMEOUT = 25.0
START_TIMEOUT = 300.0
PASSWORD_RECHECK_SECONDS = 300.0


class Manager:
    """One instance's supervisor. `run()` returns the container's exit code."""

    def __init__(self, settings: Settings, transport: Transport) -> None:
        self.settings = settings
        self.transport = transport
        self.local = postgres.Local(settings.socket_dir)
        self.server = postgres.Postmaster(settings.pgdata, self.local)
        self.status = Status(settings.pod, settings.cluster)
        self.stopping = threading.Event()
        self.heartbeat = time.monotonic()
        self.desired: Desired | None = None
        self._involved: dict[str, Any] | None = None
        self._passwords_key: tuple[object, ...] | None = None
        self._passwords_at = 0.0
        self._reported: tuple[object, ...] | None = None
        self._quiet_receiver = 0
        self._handover_key: tuple[str, str] | None = None
        self._handover_since = time.monotonic()
        self._reloads = 0
        self._restarts = 0

    # --- life cycle ------------------------------------------------------------------------

    def request_stop(self, signum: int = 0, _frame: object = None) -> None:
        log.info("signal %s: shutting down", signum)
        self.stopping.set()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        desired = self._wait_desired()
        if desired is None:
            return 0
        if not fsutil.is_initialised(self.settings.pgdata):
            log.error(
                "%s has no data directory: the init container did not run", self.settings.pgdata
            )
            return 1
        if desired.target_primary != self.settings.pod and not self._standby_signal():
            self._become_standby()  # a former primary, back after a failover or switchover
        else:
            self._apply_files(desired)
            self._start()
        while not self.stopping.is_set():
            self.tick()
            self.stopping.wait(self.settings.poll_seconds)
        self._set(phase="stopping")
        self.server.stop("fast", STOP_TIMEOUT)
        return 0

    def tick(self) -> None:
        """One pass of the loop; errors are logged and retried on the next pass."""
        self.heartbeat = time.monotonic()
        try:
            desired = fetch(self.transport, self.settings)
            self.desired = desired
            self._set(api_ok=True, target_primary=desired.target_primary)
        except SourceError as err:
            log.warning("cannot read the desired state: %s", err)
            self._set(api_ok=False, error=str(err))
            if self.desired is None:
                return
            desired = self.desired  # keep applying what was last known
        try:
            if not self.server.running():
                self._restart_after_exit(desired)
            self._apply_files(desired, reload=True)
            self.observe()
            if self.status.pending_restart:
                self._restart("parameters changed that need a restart")
                self.observe()
            self._act_on_role(desired)
            self._report(desired)
        except (postgres.PgError, ApiError, OSError) as err:
            log.error("%s", err)
            self._set(error=str(err))

    # --- observing -------------------------------------------------------------------------

    def observe(self) -> Status:
        base = self.status._replace(
            running=self.server.running(), restarts=self._restarts, reloads=self._reloads
        )
        if not base.running:
            self.status = base._replace(accepting=False)
            return self.status
        try:
            self.status = parse_status(self.local.query(STATUS_SQL), base)._replace(error="")
        except postgres.PgError as err:
            self.status = base._replace(accepting=False, error=str(err))
        return self.status

    def _set(self, **fields: Any) -> None:
        self.status = self.status._replace(**fields)

    # --- files and restarts ----------------------------------------------------------------

    def _standby_signal(self) -> bool:
        return (Path(self.settings.pgdata) / pgfiles.STANDBY_SIGNAL).exists()

    def _apply_files(self, desired: Desired, reload: bool = False) -> None:
        certs = fsutil.write_certs(self.settings, desired.certs)
        files = pgfiles.data_files(
            self.settings,
            desired.custom_conf,
            desired.hba,
            desired.ident,
            primary=not self._standby_signal(),
        )
        changed = fsutil.write_data_files(self.settings.pgdata, files)
        if reload and (certs or changed) and self.server.running():
            what = sorted(changed | ({"certificates"} if certs else set()))
            log.info("reloading PostgreSQL: %s changed", ", ".join(what))
            self.server.reload()
            self._reloads += 1
            time.sleep(0.5)  # let the postmaster and its children read the files
            if certs or changed - {pgfiles.REPLICATION_CONF}:  # renewed certificates too
                self._event("Normal", "ConfigurationReloaded", f"{', '.join(what)} reloaded")

    def _start(self) -> None:
        self._set(phase="starting")
        self.server.start()
        self.server.wait_accepting(START_TIMEOUT)
        self._set(phase="running")
        self.observe()

    def _restart(self, why: str) -> None:
        log.info("restarting PostgreSQL: %s", why)
        self._set(phase="restarting")
        self.server.stop("fast", STOP_TIMEOUT)
        self._restarts += 1
        self._start()
        self._event("Normal", "Restarted", why)

    def _restart_after_exit(self, desired: Desired) -> None:
        code = self.server.exit_code()
        log.warning("PostgreSQL exited unexpectedly (code %s): starting it again", code)
        self._event("Warning", "PostgresExited", f"PostgreSQL exited with code {code}")
        self._restarts += 1
        time.sleep(1)
        self._apply_files(desired)
        self._start()

    # --- roles ------------------------------------------------------------------------------

    def _act_on_role(self, desired: Desired) -> None:
        me = self.settings.pod
        status = self.status
        if not status.accepting:
            return
        if status.is_primary and desired.target_primary != me:
            self._become_standby()
        elif status.is_primary:
            if desired.demotion is not None and desired.demotion.former == me:
                # This primary's own record of a switchover that was given back to it.
                self.transport.patch_status({"status": {"demotion": None}})
            self._keep_passwords(desired)
        elif status.in_recovery and desired.target_primary == me:
            self._promote_when_upstream_is_gone()

    def _promote_when_upstream_is_gone(self) -> None:
        """Promote once `handover.decide` says the old primary's WAL is all here (planned)
        or its stream has been quiet for a few checks (failover); give the role back when a
        planned handover cannot complete in time."""
        desired = self.desired
        if desired is None:
            return
        demotion = desired.demotion
        self._quiet_receiver = (
            0 if self.status.receiver == "streaming" else self._quiet_receiver + 1
        )
        key = demotion[:2] if demotion is not None else None
        if key != self._handover_key:
            self._handover_key, self._handover_since = key, time.monotonic()
        decision = handover.decide(
            self.settings.pod,
            desired.current_primary,
            demotion,
            self.status.receiver,
            self.status.lsn,
            self._quiet_receiver,
            time.monotonic() - self._handover_since,
            self.settings.switchover_timeout,
        )
        if decision.verdict is handover.Verdict.WAIT:
            log.info("target primary: %s", decision.reason)
            return
        if decision.verdict is handover.Verdict.ABORT and demotion is not None:
            log.warning(
                "switchover aborted, %s is primary again: %s", demotion.former, decision.reason
            )
            self.transport.patch_status(
                {
                    "status": {
                        "targetPrimary": demotion.former,
                        "targetPrimaryTimestamp": now_iso(),
                    }
                }
            )
            self._event(
                "Warning",
                "SwitchoverAborted",
                f"{demotion.former} stays primary: {decision.reason}",
            )
            self._handover_key = None  # a later attempt gets the whole timeout again
            return
        self._quiet_receiver = 0
        log.info("promoting: %s", decision.reason)
        self._set(phase="promoting")
        self.server.promote()
        # A checkpoint now, not the spread one promotion requests: pg_rewind (run by the old
        # primary against this one once currentPrimary names it) reads the timeline from
        # pg_control, which says the old timeline until a checkpoint has been written.
        self.local.query("CHECKPOINT;")
        fsutil.write_data_files(
            self.settings.pgdata,
            pgfiles.data_files(
                self.settings,
                self.desired.custom_conf if self.desired else "",
                self.desired.hba if self.desired else "",
                self.desired.ident if self.desired else "",
                primary=True,
            ),
        )
        self._set(phase="running")
        status = self.observe()
        self.transport.patch_status(
            {
                "status": {
                    "currentPrimary": self.settings.pod,
                    "currentPrimaryTimestamp": now_iso(),
                    "timelineID": status.timeline,
                    "demotion": None,
                }
            }
        )
        self._event("Normal", "Promoted", f"promoted to primary on timeline {status.timeline}")

    def _become_standby(self) -> None:
        """Stop, wait for the new primary, rewind onto its timeline, start as a standby."""
        self._set(phase="demoting")
        if self.server.running():
            target = self.desired.target_primary if self.desired else ""
            me = self.settings.pod
            # Said before stopping (an API error here keeps this primary up, and the loop
            # retries): the target must not take the quiet stream for a failover.
            self._record_demotion(handover.Demotion(me, target, handover.STOPPING))
            log.info("no longer the target primary: shutting down to rejoin as a standby")
            self.server.stop("fast", STOP_TIMEOUT)
            control = postgres.controldata(self.settings.pgdata)
            lsn = control.get("Latest checkpoint location", "")
            clean = control.get("Database cluster state") == "shut down" and lsn
            self._record_demotion(
                handover.Demotion(me, target, handover.STOPPED, lsn)
                if clean
                else handover.Demotion(me, target, handover.UNCLEAN)
            )
            self._event(
                "Normal",
                "Demoted",
                f"stopped as primary (shutdown checkpoint {lsn}) to rejoin as a standby"
                if clean
                else "stopped as primary, not cleanly: the switchover will be given back",
            )
        desired = self._wait_for_new_primary()
        if desired is None:
            return
        source = pgfiles.conninfo(self.settings, self.settings.rw_host, dbname="postgres")
        while not self.stopping.is_set():
            self.heartbeat = time.monotonic()
            fsutil.write_certs(self.settings, desired.certs)
            try:
                out = postgres.rewind(self.settings.pgdata, source)
                break
            except postgres.PgError as err:
                log.warning("pg_rewind from %s failed, retrying: %s", self.settings.rw_host, err)
                self._set(error=f"pg_rewind: {err}")
                self.stopping.wait(5)
        else:
            return
        log.info("pg_rewind: %s", out.strip().splitlines()[-1] if out.strip() else "done")
        fsutil.touch(Path(self.settings.pgdata) / pgfiles.STANDBY_SIGNAL)
        self._apply_files(desired)
        self._start()
        self._event("Normal", "Rejoined", f"following {desired.current_primary} as a standby")

    def _wait_for_new_primary(self) -> Desired | None:
        while not self.stopping.is_set():
            self.heartbeat = time.monotonic()
            try:
                desired = fetch(self.transport, self.settings)
                self.desired = desired
                self._set(api_ok=True, target_primary=desired.target_primary, running=False)
            except SourceError as err:
                self._set(api_ok=False, error=str(err))
            else:
                me = self.settings.pod
                if desired.target_primary == me:
                    log.info("the target primary moved back to this instance")
                    self._apply_files(desired)
                    self._start()
                    return None
                if desired.current_primary == desired.target_primary:
                    return desired
                log.info("waiting for %s to take over", desired.target_primary)
            self.stopping.wait(self.settings.poll_seconds)
        return None

    def _record_demotion(self, demotion: handover.Demotion) -> None:
        self.transport.patch_status({"status": {"demotion": demotion.as_status()}})

    # --- passwords ---------------------------------------------------------------------------

    def _keep_passwords(self, desired: Desired) -> None:
        key = (
            desired.app_user,
            desired.app_password,
            desired.superuser_enabled,
            desired.superuser_password,
        )
        recheck = time.monotonic() - self._passwords_at > PASSWORD_RECHECK_SECONDS
        if key == self._passwords_key and not recheck:
            return
        roles = {desired.app_user: desired.app_password, SUPERUSER: desired.superuser_password}
        rows = self.local.query(pgfiles.stored_passwords_sql(tuple(roles)))
        stored = {r[0]: r[1] for r in rows if len(r) == 2}
        statements = []
        for role, password in roles.items():
            if password is None:
                if stored.get(role):
                    statements.append(pgfiles.password_sql(role, None))
            elif not pgfiles.verifier_matches(stored.get(role), password):
                verifier = pgfiles.scram_verifier(password, pgfiles.new_salt())
                statements.append(pgfiles.password_sql(role, verifier))
        if statements:
            self.local.query("\n".join(statements))
            su = "enabled" if desired.superuser_enabled else "disabled (password NULL)"
            log.info("passwords applied: %d role(s); superuser access %s", len(statements), su)
            self._event("Normal", "PasswordsApplied", f"superuser access {su}")
        self._passwords_key = key
        self._passwords_at = time.monotonic()

    # --- reporting ----------------------------------------------------------------------------

    def _report(self, desired: Desired) -> None:
        s = self.status
        me = self.settings.pod
        patch: dict[str, Any] = {}
        state = (s.is_primary, s.timeline)
        if state != self._reported:
            patch["instancesReportedState"] = {
                me: {"isPrimary": s.is_primary, "timeLineID": s.timeline}
            }
        if s.is_primary and desired.target_primary == me and desired.current_primary != me:
            patch.update(
                currentPrimary=me, currentPrimaryTimestamp=now_iso(), timelineID=s.timeline
            )
        if patch:
            self.transport.patch_status({"status": patch})
            self._reported = state

    def _event(self, event_type: str, reason: str, message: str) -> None:
        try:
            if self._involved is None:
                self._involved = cluster_reference(self.transport, self.settings)
            self.transport.post_event(
                event(self._involved, self.settings, event_type, reason, message)
            )
        except Exception as err:  # an event is best effort: never stop the loop for one
            log.warning("cannot post event %s: %s", reason, err)

    def _wait_desired(self) -> Desired | None:
        while not self.stopping.is_set():
            try:
                self.desired = fetch(self.transport, self.settings)
                return self.desired
            except SourceError as err:
                log.info("waiting for the Cluster's objects: %s", err)
                self.stopping.wait(self.settings.poll_seconds)
        return None
