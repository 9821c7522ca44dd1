"""The `slabscope` command."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
from enum import StrEnum
from typing import Annotated

import typer
from pydantic import ValidationError

from app.config import Settings, get_settings

# Plain help and errors (rich_markup_mode=None, no pretty tracebacks): rich's boxes showed
# `--help <bool>` and a bad option as a six-line frame.
cli = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="Watch Linux memory cgroups that refuse to die.")
log = logging.getLogger("slabscope")
WORKERS_MAX = 64  # also the bound of Settings.web_workers


class Format(StrEnum):
    """Output formats of `collect --once`."""

    json = "json"
    table = "table"


# The command-line option of each setting the commands take under another name.
OPTIONS = {"web_port": "--port", "web_host": "--host", "web_workers": "--workers",
           "database_url": "--database", "collect_interval_seconds": "--interval",
           "push_url": "--push"}


def _settings(**overrides: object) -> Settings:
    """The settings from the environment with the command's options over them, validated
    together: a bad value is one line naming the option or variable, status 2."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        get_settings()  # the environment alone first: its errors name the variable
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as err:
        problem = err.errors()[0]
        name = str(problem["loc"][0]) if problem["loc"] else "settings"
        where = OPTIONS.get(name, f"--{name.replace('_', '-')}") if name in given else \
            f"SLABSCOPE_{name.upper()}"
        typer.echo(f"slabscope: {where}: {problem['msg']} (got {problem.get('input')!r})",
                   err=True)
        raise typer.Exit(2) from None


def _logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _known(n: int | None) -> str:
    """A count as text: 'unknown' where the kernel did not say."""
    return "unknown" if n is None else f"{n:,}"


def _human(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)


@cli.command()
def collect(
    once: Annotated[bool, typer.Option("--once", help="One scrape, printed; no database.")] = False,
    fmt: Annotated[Format, typer.Option("--format", help="Output of --once.")] = Format.json,
    proc_root: Annotated[str | None, typer.Option(help="Where the host's /proc is.")] = None,
    sys_root: Annotated[str | None, typer.Option(help="Where the host's /sys is.")] = None,
    interval: Annotated[float | None, typer.Option(help="Seconds between ticks.")] = None,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: settings).")]
    = None,
    ticks: Annotated[int | None, typer.Option(help="Stop after this many ticks.")] = None,
    push: Annotated[str | None, typer.Option(help="Push to this slabscope server instead of "
                                             "writing a database (e.g. http://central:8000).")]
    = None,
    token_file: Annotated[str | None, typer.Option(help="File holding this host's push "
                                                   "token (`slabscope hosts add`).")] = None,
    spool_dir: Annotated[str | None, typer.Option(help="Where unsent snapshots wait.")] = None,
) -> None:
    """Scrape this host once (--once) or run the collector daemon (database or --push)."""
    s = _settings(proc_root=proc_root, sys_root=sys_root, collect_interval_seconds=interval,
                  database_url=database, push_url=push, token_file=token_file,
                  spool_dir=spool_dir)
    _logging(s.log_level)
    if once:
        from app.collector.scrape import Collector, options_from
        snap = Collector(options_from(s)).collect()
        if fmt is Format.json:
            from app.domain.snapshot_json import snapshot_to_dict
            json.dump(snapshot_to_dict(snap), sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            h, mc = snap.host, snap.memcg
            typer.echo(f"host {h.hostname}  kernel {h.kernel_release}  era {h.era}  "
                       f"layout {h.cgroup_layout}  cpus {h.possible_cpus}")
            typer.echo(f"memcgs: {_known(mc.total)} total, {_known(mc.visible)} visible, "
                       f"{_known(mc.dying)} dying ({mc.method})")
            mi = snap.meminfo
            typer.echo(f"slab {_human(mi.get('Slab'))} (reclaimable "
                       f"{_human(mi.get('SReclaimable'))}, unreclaimable "
                       f"{_human(mi.get('SUnreclaim'))}), percpu {_human(mi.get('Percpu'))}")
            typer.echo(f"{'cache':<28}{'objects':>12}{'active':>12}{'slabs':>9}{'bytes':>12}")
            for c in sorted(snap.caches, key=lambda c: -c.bytes)[:20]:
                typer.echo(f"{c.name[:27]:<28}{c.num_objs:>12}{c.active_objs:>12}"
                           f"{c.num_slabs:>9}{_human(c.bytes):>12}")
            if snap.series is not None and len(snap.series):
                from app.domain.cgtable import USAGE
                t = snap.series
                usage = t.column(USAGE)
                typer.echo(f"{len(t)} cgroups; largest by memory usage:")
                for i in sorted(range(len(t)), key=lambda i: -(usage[i] or 0))[:10]:
                    typer.echo(f"  {t.hierarchies[i]:<8}{t.paths[i][:60]:<62}"
                               f"{_human(usage[i]):>12}")
            for e in snap.errors:
                typer.echo(f"error: {e.source}: {e.path}: {e.message}", err=True)
        read = (snap.caches, snap.meminfo, snap.vmstat, snap.proc_cgroups,
                snap.series is not None and len(snap.series))
        if not any(read):
            typer.echo(f"slabscope: no source could be read under --proc-root {s.proc_root} "
                       f"and --sys-root {s.sys_root} ({len(snap.errors)} errors"
                       f"{'' if fmt is Format.json else ' above'})", err=True)
            raise typer.Exit(1)
        return
    # Settings travel in the environment (not argv, where `ps` would show a database password).
    env = dict(os.environ, SLABSCOPE_DATABASE_URL=s.database_url,
               SLABSCOPE_PROC_ROOT=s.proc_root, SLABSCOPE_SYS_ROOT=s.sys_root,
               SLABSCOPE_COLLECT_INTERVAL_SECONDS=str(s.collect_interval_seconds),
               SLABSCOPE_SPOOL_DIR=s.spool_dir)
    if s.push_url:
        # Push mode: no database in this process or its child.
        env.update(SLABSCOPE_PUSH_URL=s.push_url, SLABSCOPE_TOKEN_FILE=s.token_file or "")
    else:
        # Migrate in a child process, then exec the lean daemon entry point: neither Alembic
        # nor the CLI framework stays in the long-running process (60 MB, bench/scrape.py).
        import subprocess
        done = subprocess.run([sys.executable, "-m", "app.cli", "migrate"], env=env,
                              stdout=subprocess.DEVNULL, check=False)
        if done.returncode != 0:
            raise typer.Exit(2)
    # The validated settings go to the daemon on an inherited pipe, so it needs no pydantic.
    r, w = os.pipe()
    os.write(w, json.dumps(s.model_dump(mode="json")).encode())
    os.close(w)
    os.set_inheritable(r, True)
    argv = [sys.executable, "-m", "app.collector", "--settings-fd", str(r)]
    if ticks is not None:
        argv += ["--ticks", str(ticks)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"


@cli.command()
def migrate(
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: settings).")]
    = None,
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
    wait_seconds: Annotated[float, typer.Option(help="Retry this long while the database "
                                                "is not up yet (containers).")] = 0.0,
) -> None:
    """Bring the database schema to the latest migration (and do nothing else)."""
    s = _settings(database_url=database)
    _logging(s.log_level)
    import time

    from app.db.migrate import upgrade
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            upgrade(s.database_url, revision)
            break
        except Exception as err:
            if time.monotonic() < deadline:
                typer.echo(f"slabscope: database not ready ({str(err).splitlines()[0]}); "
                           "retrying", err=True)
                time.sleep(1.0)
                continue
            typer.echo(f"slabscope: cannot migrate {_redact(s.database_url)}: "
                       f"{str(err).splitlines()[0]}", err=True)
            raise typer.Exit(2) from err
    typer.echo(f"database {_redact(s.database_url)} is at revision {revision}")


@cli.command()
def doctor(
    proc_root: Annotated[str | None, typer.Option(help="Where the host's /proc is.")] = None,
    sys_root: Annotated[str | None, typer.Option(help="Where the host's /sys is.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Say which sources are readable, which are missing and why, and what can be shown."""
    s = _settings(proc_root=proc_root, sys_root=sys_root)
    from app.collector.doctor import diagnose
    from app.collector.scrape import options_from
    checks, shows, cannot, facts = diagnose(options_from(s))
    if as_json:
        json.dump({"facts": facts, "checks": [{
            "source": c.source, "path": c.path, "ok": c.ok, "detail": c.detail} for c in checks],
            "dashboard_shows": shows, "dashboard_cannot_show": cannot}, sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    for k, v in facts.items():
        typer.echo(f"{k + ':':<15}{v}")
    typer.echo("\nsources:")
    for c in checks:
        typer.echo(f"  [{'ok' if c.ok else '--'}] {c.source:<18} {c.path}  {c.detail}")
    typer.echo("\nthe dashboard will show:")
    for x in shows:
        typer.echo(f"  + {x}")
    typer.echo("\nit will not show:")
    for x in cannot or ["(nothing missing)"]:
        typer.echo(f"  - {x}")


@cli.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL (default: settings).")]
    = None,
    workers: Annotated[int | None, typer.Option(help="Server processes (1 to 64); they "
                                                "share nothing but the database.")] = None,
    migrate_first: Annotated[bool, typer.Option("--migrate/--no-migrate",
                                                help="Migrate the database first.")] = True,
) -> None:
    """Run the web dashboard and REST API on the database of the settings."""
    if workers is not None and not 1 <= workers <= WORKERS_MAX:
        typer.echo(f"slabscope: --workers must be 1 to {WORKERS_MAX}, not {workers}", err=True)
        raise typer.Exit(2)
    s = _settings(web_host=host, web_port=port, database_url=database, web_workers=workers)
    _logging(s.log_level)
    if migrate_first:
        from app.db.migrate import upgrade
        try:
            upgrade(s.database_url)
        except Exception as err:
            typer.echo(f"slabscope: cannot migrate {_redact(s.database_url)}: "
                       f"{str(err).splitlines()[0]}", err=True)
            raise typer.Exit(2) from err
    from app.webserver import cannot_listen
    problem = cannot_listen(s.web_host, s.web_port)
    if problem:
        typer.echo(f"slabscope: cannot listen on {s.web_host}:{s.web_port}: {problem} "
                   "(another server there? choose another with --port, SLABSCOPE_WEB_PORT "
                   "or `make run PORT=...`)", err=True)
        raise typer.Exit(2)
    import uvicorn
    # Every worker builds its own app from the environment (uvicorn --factory), so the
    # options given here travel there; nothing else is shared but the database.
    os.environ.update(SLABSCOPE_DATABASE_URL=s.database_url, SLABSCOPE_WEB_HOST=s.web_host,
                      SLABSCOPE_WEB_PORT=str(s.web_port),
                      SLABSCOPE_WEB_WORKERS=str(s.web_workers))
    get_settings.cache_clear()
    typer.echo(f"slabscope: dashboard on http://{s.web_host}:{s.web_port} "
               f"({s.web_workers} worker{'s' if s.web_workers > 1 else ''})", err=True)
    # Each worker speaks h11 with deadlines for slow requests (app/webserver.py).
    uvicorn.run("app.main:create_app", factory=True, host=s.web_host, port=s.web_port,
                workers=s.web_workers, log_level="warning", access_log=False,
                http="app.webserver:TimedH11Protocol")


hosts_cli = typer.Typer(help="Push tokens of fleet hosts (stored as SHA-256 only).",
                        no_args_is_help=True, rich_markup_mode=None)
cli.add_typer(hosts_cli, name="hosts")


@hosts_cli.command("add")
def hosts_add(
    name: Annotated[str, typer.Argument(help="The host name its collector reports.")],
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL.")] = None,
    token_file: Annotated[str | None, typer.Option(help="Also write the token here "
                                                   "(mode 0600).")] = None,
    token_env: Annotated[str | None, typer.Option(help="Register the token held in this "
                                                  "environment variable instead of making "
                                                  "one (provisioning, compose).")] = None,
) -> None:
    """Create a push token for a host and print it (it is shown once, stored hashed)."""
    from datetime import UTC, datetime

    from app.db import fleetstate
    from app.db.migrate import upgrade
    from app.db.session import make_engine, make_session_factory
    from app.fleet.tokens import TOKEN_MIN_CHARS, new_token, token_hash
    if not name or len(name) > 255 or any(c in name for c in "\n\r\t/"):
        typer.echo("slabscope: a host name is 1-255 characters, no '/' or control "
                   "characters", err=True)
        raise typer.Exit(2)
    s = _settings(database_url=database)
    upgrade(s.database_url)
    token = os.environ.get(token_env, "") if token_env else new_token()
    if len(token) < TOKEN_MIN_CHARS:
        typer.echo(f"slabscope: ${token_env} must hold a token of {TOKEN_MIN_CHARS} "
                   "characters or more",
                   err=True)
        raise typer.Exit(2)
    engine = make_engine(s.database_url)
    with make_session_factory(engine).begin() as session:
        if fleetstate.host_for_token(session, token_hash(token)) == name:
            engine.dispose()
            typer.echo(f"token already registered for {name}", err=True)
            return  # idempotent: the compose migrate service runs this at every start
        fleetstate.add_token(session, name, token_hash(token), datetime.now(UTC))
    engine.dispose()
    if token_file:
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
    if token_env:
        typer.echo(f"registered the token in ${token_env} for {name}")  # never echo it
    else:
        typer.echo(token)


@hosts_cli.command("revoke")
def hosts_revoke(name: Annotated[str, typer.Argument()],
                 database: Annotated[str | None, typer.Option()] = None) -> None:
    """Revoke every token of a host: its pushes are refused from now on."""
    from datetime import UTC, datetime

    from app.db import fleetstate
    from app.db.session import make_engine, make_session_factory
    s = _settings(database_url=database)
    engine = make_engine(s.database_url)
    with make_session_factory(engine).begin() as session:
        n = fleetstate.revoke_tokens(session, name, datetime.now(UTC))
    engine.dispose()
    typer.echo(f"revoked {n} token(s) of {name}")
    if n == 0:
        raise typer.Exit(1)


@hosts_cli.command("list")
def hosts_list(database: Annotated[str | None, typer.Option()] = None) -> None:
    """List hosts with tokens (never the tokens themselves)."""
    from app.db import fleetstate
    from app.db.session import make_engine, make_session_factory
    s = _settings(database_url=database)
    engine = make_engine(s.database_url)
    with make_session_factory(engine)() as session:
        for t in fleetstate.tokens(session):
            state = f"revoked {t.revoked_at.isoformat()}" if t.revoked_at else "live"
            typer.echo(f"{t.host_name:<40} {t.created_at.isoformat()}  {state}  "
                       f"sha256 {t.token_sha256[:12]}...")
    engine.dispose()


@cli.command()
def schema() -> None:
    """Print the JSON Schema of what a push-mode collector sends to POST /api/v1/ingest."""
    from app.fleet.wire import push_json_schema
    typer.echo(json.dumps(push_json_schema(), indent=1))


@cli.command()
def retention(
    raw_days: Annotated[float | None, typer.Option(help="Keep raw samples this many days "
                                                   "(default: settings).", min=0)] = None,
    ahead_days: Annotated[int, typer.Option(help="PostgreSQL: create daily partitions this "
                                            "many days ahead.", min=1, max=60)] = 3,
    database: Annotated[str | None, typer.Option(help="SQLAlchemy URL.")] = None,
) -> None:
    """Roll raw samples up by the hour, then drop raw samples past the retention (cron-safe).

    Every hour that received raw data since its rollup is rolled up again first, however
    late the data came. PostgreSQL drops whole daily partitions and creates the next days';
    SQLite deletes rows. Safe to run twice, concurrently, or while collectors write.
    """
    from datetime import UTC, datetime

    from app.db import retention as ret
    from app.db.session import make_engine, make_session_factory
    s = _settings(database_url=database)
    engine = make_engine(s.database_url)
    try:
        with make_session_factory(engine).begin() as session:
            r = ret.run(session, datetime.now(UTC), raw_days if raw_days is not None
                        else s.raw_retention_days, ahead_days)
    finally:
        engine.dispose()
    typer.echo(f"rolled up {r.scrape_hours} host-hours and {r.cache_hours} cache-hours "
               f"(from {r.hours_from.isoformat() if r.hours_from else '-'} to "
               f"{r.hours_to.isoformat()}); deleted {r.raw_scrapes_deleted} raw scrapes and "
               f"{r.removed_deleted} removal records")
    if r.partitions_dropped or r.partitions_created:
        typer.echo(f"dropped {len(r.partitions_dropped)} partitions, created "
                   f"{len(r.partitions_created)}")


class SimFormat(StrEnum):
    """Output formats of `simulate`."""

    table = "table"
    json = "json"
    csv = "csv"


def _fail(message: str) -> typer.Exit:
    """Print one line, `slabscope: <message>`, and return the exit to raise (status 2)."""
    typer.echo(f"slabscope: {message}", err=True)
    return typer.Exit(2)


def _workload_body(scenario: str, workload_file: str | None) -> dict[str, object]:
    """The body of POST /api/v1/simulations to run: a file's, or a preset's."""
    if workload_file is None:
        from app.services.model import workload_json
        from app.simulation.scenarios import PRESETS
        if scenario not in PRESETS:
            raise _fail(f"no scenario {scenario!r}; presets: {', '.join(PRESETS)}")
        return workload_json(PRESETS[scenario])
    from app.schemas.simulation import MAX_BODY_BYTES
    try:
        # As POST /api/v1/simulations: at most MAX_BODY_BYTES (a device or a huge file is
        # read no further), then JSON.
        with open(workload_file, "rb") as f:
            raw = f.read(MAX_BODY_BYTES + 1)
    except OSError as err:
        raise _fail(f"--workload {workload_file}: {err.strerror or err}") from err
    if len(raw) > MAX_BODY_BYTES:
        raise _fail(f"--workload {workload_file}: over {MAX_BODY_BYTES // 1024} KiB, the "
                    "bound of a simulation body")
    try:
        body = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _fail(f"--workload {workload_file}: not UTF-8 JSON ({err})") from err
    except RecursionError:
        raise _fail(f"--workload {workload_file}: JSON nested too deep") from None
    if not isinstance(body, dict):
        raise _fail(f"--workload {workload_file}: a JSON object is needed (the body of "
                    "POST /api/v1/simulations)")
    return body


def _rescale(job: dict[str, object], factor: float) -> None:
    """Multiply a class's rate: per_day, or the frequency of a periodic class."""
    per_day = job.get("per_day")
    if isinstance(per_day, (int, float)):
        job["per_day"] = per_day * factor
    period = job.get("period_seconds")
    if isinstance(period, (int, float)) and period > 0:
        if factor == 0:
            job["period_seconds"], job["count"] = None, 0
        else:
            job["period_seconds"] = period / factor


def _apply_rates(body: dict[str, object], rates: list[str], scale: float | None) -> None:
    classes = body.get("classes")
    jobs: list[dict[str, object]] = ([c for c in classes if isinstance(c, dict)]
                                     if isinstance(classes, list) else [])
    if scale is not None:
        if not (math.isfinite(scale) and scale > 0):
            raise _fail(f"--scale must be a number above 0, not {scale:g}")
        for each in jobs:
            _rescale(each, scale)
    for spec in rates:
        name, sep, value = spec.rpartition("=")
        try:
            per_day = float(value)
        except ValueError:
            per_day = math.nan
        if not sep or not name or not math.isfinite(per_day) or per_day < 0:
            raise _fail(f"--rate wants CLASS=PER_DAY (a number of 0 or more), not {spec!r}")
        job = next((j for j in jobs if j.get("name") == name), None)
        if job is None:
            known = ", ".join(str(j.get("name")) for j in jobs)
            raise _fail(f"--rate: no class {name!r}; classes: {known}")
        current = job.get("per_day") or 0.0
        period = job.get("period_seconds")
        if isinstance(period, (int, float)) and period > 0:
            current = 86_400.0 / period
        if isinstance(current, (int, float)) and current > 0:
            _rescale(job, per_day / current)
        else:
            job["per_day"] = per_day


@cli.command()
def simulate(
    scenario: Annotated[str, typer.Option(help="A preset (see `--list`).")]
    = "kubernetes-cronjobs",
    workload_file: Annotated[str | None, typer.Option(
        "--workload", help="A JSON file in the body format of POST /api/v1/simulations "
        "(instead of --scenario).")] = None,
    era: Annotated[list[str] | None, typer.Option(help="An era; repeat for several "
                                                   "(default: the file's, or all).")] = None,
    days: Annotated[float | None, typer.Option(help="Days to simulate (default: the "
                                               "workload's).")] = None,
    cpus: Annotated[int | None, typer.Option(help="Possible CPUs of the host (per-CPU "
                                             "costs).")] = None,
    numa_nodes: Annotated[int | None, typer.Option(help="NUMA nodes of the host.")] = None,
    slab_per_day: Annotated[float | None, typer.Option(
        help="Memory pressure: the chance a day that reclaim frees one slab object.")] = None,
    pagecache_per_day: Annotated[float | None, typer.Option(
        help="Memory pressure: the same for one page-cache page.")] = None,
    rate: Annotated[list[str] | None, typer.Option(
        help="CLASS=PER_DAY: cgroups a day of one class; repeat for several.")] = None,
    scale: Annotated[float | None, typer.Option(
        help="Multiply every class's rate (per_day, or the frequency of a timer).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same result).")] = 0,
    step_seconds: Annotated[float | None, typer.Option(
        help="Seconds between output points (default: the workload's).")] = None,
    fmt: Annotated[SimFormat, typer.Option("--format")] = SimFormat.table,
    list_presets: Annotated[bool, typer.Option("--list", help="List the presets.")] = False,
) -> None:
    """Run a workload (a preset or a file) in every kernel era (or the ones given).

    CPUs, NUMA nodes, pressure and rates override the workload's; the result is validated
    with the same bounds as POST /api/v1/simulations, and any bad value is one line on
    stderr with status 2.
    """
    from dataclasses import asdict, replace

    from pydantic import ValidationError

    from app.domain.eras import ERA_NAMES
    from app.schemas.simulation import SimulationIn
    from app.services.model import budget_error, to_workload
    from app.simulation.engine import simulate as run
    from app.simulation.engine import work
    from app.simulation.scenarios import PRESETS
    if list_presets:
        for name, preset in PRESETS.items():
            typer.echo(f"{name:<26} {preset.description}")
        return
    if not 0 <= seed < 1 << 63:
        raise _fail(f"--seed must be 0 to 2^63-1, not {seed}")
    body = _workload_body(scenario, workload_file)
    if era:
        bad = [e for e in era if e not in ERA_NAMES]
        if bad:
            raise _fail(f"unknown era {', '.join(bad)}; eras: {', '.join(ERA_NAMES)}")
        body["eras"] = list(era)
    if days is not None:
        if not (math.isfinite(days) and days > 0):
            raise _fail(f"--days must be above 0, not {days:g}")
        step = body.get("step_seconds")
        body["days"] = days
        body["step_seconds"] = min(step if isinstance(step, (int, float)) else 3600.0,
                                   days * 86_400.0 / 10)
    if step_seconds is not None:
        if not (math.isfinite(step_seconds) and step_seconds > 0):
            raise _fail(f"--step-seconds must be above 0, not {step_seconds:g}")
        body["step_seconds"] = step_seconds
    for key, value in (("cpus", cpus), ("numa_nodes", numa_nodes)):
        if value is not None:
            body[key] = value
    if slab_per_day is not None or pagecache_per_day is not None:
        pressure = body.get("pressure")
        pressure = dict(pressure) if isinstance(pressure, dict) else {}
        if slab_per_day is not None:
            pressure["slab_per_day"] = slab_per_day
        if pagecache_per_day is not None:
            pressure["pagecache_per_day"] = pagecache_per_day
        body["pressure"] = pressure
    _apply_rates(body, rate or [], scale)
    try:
        spec = SimulationIn.model_validate(body)
    except ValidationError as err:
        problem = err.errors()[0]
        where = ".".join(str(x) for x in problem["loc"]) or "workload"
        raise _fail(f"{where}: {problem['msg']}" + (f" (and {err.error_count() - 1} more)"
                                                 if err.error_count() > 1 else "")) from err
    w = to_workload(spec)
    if workload_file is None:
        w = replace(w, description=PRESETS[scenario].description)
    eras = list(spec.eras)
    # The same budget as the API's (SLABSCOPE_SIMULATION_MAX_WORK): what to reduce, before
    # any CPU is spent.
    budget = _settings().simulation_max_work
    cost = work(w, len(eras))
    if cost.total > budget:
        raise _fail(budget_error(cost, budget))
    scenario = w.name if workload_file else scenario
    if sys.stderr.isatty() and fmt is SimFormat.table:
        with typer.progressbar(length=len(eras), label=f"simulating {scenario}",
                               file=sys.stderr) as bar:
            result = run(w, eras, seed=seed, progress=lambda _name: bar.update(1))
    else:
        result = run(w, eras, seed=seed)
    if fmt is SimFormat.json:
        json.dump({"scenario": scenario, "seed": seed,
                   "eras": {k: asdict(v) for k, v in result.eras.items()}}, sys.stdout)
        sys.stdout.write("\n")
        return
    if fmt is SimFormat.csv:
        import csv
        out = csv.writer(sys.stdout)
        out.writerow(["era", "seconds", "live", "dying", "zombie_caches", "sysfs_dirs",
                      "leftover_slab_bytes", "dying_cost_bytes"])
        for name, e in result.eras.items():
            for k, t in enumerate(e.times_seconds):
                out.writerow([name, t, e.live[k], e.dying[k], round(e.zombie_caches[k], 1),
                              round(e.sysfs_dirs[k], 1), round(e.leftover_slab_bytes[k]),
                              round(e.dying_cost_bytes[k])])
        return
    span = w.duration_seconds
    unit = ("s", 1.0) if span < 600 else ("h", 3600.0) if span < 4 * 86_400 else ("d", 86_400.0)
    typer.echo(f"{scenario}: {w.description}")
    checkpoints = sorted({0, len(result.eras[eras[0]].times_seconds) // 2,
                          len(result.eras[eras[0]].times_seconds) - 1})
    first = result.eras[eras[0]].times_seconds
    head = "".join(f"{'dying @' + format(first[k] / unit[1], 'g') + unit[0]:>16}"
                   for k in checkpoints)
    typer.echo(f"{'era':<14}{head}{'max dying':>12}{'zombie caches':>15}{'wasted':>12}")
    for name, e in result.eras.items():
        cols = "".join(f"{e.dying[k]:>16,}" for k in checkpoints)
        typer.echo(f"{name:<14}{cols}{max(e.dying):>12,}{e.zombie_caches[-1]:>15,.0f}"
                   f"{_human(int(e.dying_cost_bytes[-1])):>12}")


def main() -> None:
    """Entry point of the console script."""
    cli()
if __name__ == "__main__":
    main()
