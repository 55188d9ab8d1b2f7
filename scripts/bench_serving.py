"""`make bench`: one registered model, the same inputs, served three ways, on SQLite and on PostgreSQL.

(a) bare in-process decode + preprocess + forward (ONNX Runtime), no HTTP; (b) POST /api/predict served by gunicorn
as deployed (gunicorn.conf.py, DEBUG off, every input stored as a coin with its prediction before the answer), once
on a fresh SQLite database and once on a fresh PostgreSQL database made for the run and dropped after it; (c) the
same model version under `mlflow models serve --env-manager local` (stores nothing), at its default (one worker) and
with as many workers as gunicorn runs. Inputs: pairs of 12 MP phone-size JPEGs and pairs of 600x600 JPEGs.

For each server and input: single-client p50/p95, the throughput of N concurrent clients (separate processes), and
the server's CPU time per request over that run (its whole process tree; PostgreSQL's backends included for (b) on
PostgreSQL). Also: the first prediction of a freshly started gunicorn against the median of the next ten, the
throughput ceiling of the machine (cores / (a) p50), the targets of issue 15, and as the last line the ratios in a
form a script reads (serving_bench.report.parse_ratio_line). `--repeat 3` runs everything three times and prints
each ratio's spread; the last line then carries the medians.

The clients run on the same cores as the server (their CPU is taken from it); the machine's load average is
printed at the start and the end, since a figure means little without it.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from multiprocessing.pool import Pool
from pathlib import Path

from serving_bench import load, report, servers
from serving_bench.inputs import SEEDS, SIZES, body, photo_pairs
from serving_bench.load import Target
from serving_bench.report import KINDS, Measured

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coinsite.settings")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
PAIRS_PER_KIND = 4
FIRST_PREDICTION_TARGET = 1.5  # issue 15, must-show 5: the first prediction after a start within 1.5 x the next ten


@dataclass
class Setup:
    """What every round shares: arguments, inputs, the client pool, environments and the databases of (b)."""

    args: argparse.Namespace
    version: int
    model_name: str
    predictor: object
    pairs: dict[str, list[tuple[bytes, bytes]]]
    bodies: dict[str, list[bytes]]
    pool: Pool
    work: Path
    base_env: dict[str, str]
    web_env: dict[str, str]
    databases: list[tuple[str, str, str | None, str]] = field(default_factory=list)  # label, URL, pg name, token
    pg_name: str | None = None  # the PostgreSQL database the bench created (dropped at the end, whatever happens)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=60, help="single-client requests per server and input kind")
    parser.add_argument(
        "--seconds", type=float, default=8.0, help="how long the concurrent clients run per server and input"
    )
    parser.add_argument("--clients", type=int, default=8, help="concurrent client processes (default 8)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds; with more than one, each ratio's spread is printed"
    )
    parser.add_argument("--gunicorn-workers", type=int, help="default: gunicorn.conf.py's (one per core)")
    parser.add_argument("--gunicorn-threads", type=int, help="default: gunicorn.conf.py's")
    parser.add_argument(
        "--keep-alive", action="store_true", help="one persistent connection per client (default: one per request)"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server where the bench may create and drop its own database (BENCH_POSTGRES_URL)",
    )
    parser.add_argument("--no-postgres", action="store_true", help="run (b) on SQLite only")
    return parser.parse_args()


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def in_process(setup: Setup) -> dict[str, tuple[float, float]]:
    """(a): p50/p95 of decode + preprocess + forward in this process, one pair at a time, as serving does it
    (registry.serving: the first look, then the second look where the reader is unsure, training.ml.second_look, then
    the OCR where it is still unsure, training.ml.fusion); prints the share of inputs that ran the OCR and its p50."""
    from training.ml import fusion, images, second_look  # after django.setup(): the app registry imports the ML library

    predictor = setup.predictor
    calibration = predictor.calibration.get("calibration") or predictor.calibration
    out = {}
    for kind in KINDS:
        pairs = setup.pairs[kind]
        for pair in pairs[:2]:
            predictor.predict_pairs(*images.preprocess_batch([pair], predictor.config))
        latencies, looked, ocr_ms = [], 0, []
        for i in range(setup.args.repeats):
            started = time.perf_counter()
            pair = pairs[i % len(pairs)]
            rows = predictor.predict_pairs(*images.preprocess_batch([pair], predictor.config))
            looked += int(second_look.unsure(rows, calibration).any())
            again = second_look.look_again(predictor.predict_pairs, [pair], rows, predictor.config, calibration)
            ocr_started = time.perf_counter()
            fused = fusion.read_with_ocr([pair], again, predictor.config, calibration)
            if fused.ocr[0] is not None:
                ocr_ms.append((time.perf_counter() - ocr_started) * 1000)
            latencies.append((time.perf_counter() - started) * 1000)
        out[kind] = report.percentiles(latencies)
        ocr_p50 = f"{statistics.median(ocr_ms):.0f} ms p50 of the OCR itself" if ocr_ms else "no OCR p50"
        print(
            f"(a) {kind}: {looked} of {setup.args.repeats} pairs took the second look; "
            f"{len(ocr_ms)} of {setup.args.repeats} ({len(ocr_ms) / setup.args.repeats:.0%}) ran the OCR, {ocr_p50}"
        )
    return out


def measure(setup: Setup, server: servers.Server, target: Target, kind: str) -> Measured:
    """Single-client latency, then the concurrent clients with the server's CPU read at their start and end."""
    bodies = setup.bodies[kind]
    load.timed_posts(target, bodies, 2)  # warm-up: first use of this input size in each code path
    p50, p95 = report.percentiles(load.timed_posts(target, bodies, setup.args.repeats))
    before: dict[str, object] = {}

    def snapshot() -> None:
        before["web"], before["db"] = server.cpu_seconds(), server.database_cpu()

    answered, elapsed = load.throughput(
        setup.pool, target, kind, clients=setup.args.clients, seconds=setup.args.seconds, at_start=snapshot
    )
    web = server.cpu_seconds() - before["web"]
    db = servers.database_cpu_between(before["db"], server.database_cpu())
    return Measured(
        p50_ms=p50,
        p95_ms=p95,
        rps=answered / elapsed,
        cpu_ms=(web + db) * 1000 / answered,
        db_cpu_ms=db * 1000 / answered,
    )


def first_prediction(setup: Setup, server: servers.Server, target: Target) -> str:
    """Must-show 5: the first 600 px prediction of a server that has just said it is up, against the next ten."""
    latencies = load.timed_posts(target, setup.bodies["600px"], 11)
    first, rest = latencies[0], statistics.median(latencies[1:])
    verdict = "met" if first <= FIRST_PREDICTION_TARGET * rest else "NOT met"
    return (
        f"first prediction after start ({server.label}, 600px): {first:.1f} ms vs median of the next ten "
        f"{rest:.1f} ms = {first / rest:.2f}x (target <= {FIRST_PREDICTION_TARGET}x: {verdict})"
    )


def web_server(setup: Setup, label: str, database_url: str, pg_name: str | None, port: int) -> servers.Server:
    options = []  # gunicorn reads gunicorn.conf.py from ROOT: the deployment's settings unless overridden
    if setup.args.gunicorn_workers:
        options += ["--workers", str(setup.args.gunicorn_workers)]
    if setup.args.gunicorn_threads:
        options += ["--threads", str(setup.args.gunicorn_threads)]
    slug = label.lower()
    env = dict(
        setup.web_env,
        DATABASE_URL=database_url,
        DJANGO_MEDIA_ROOT=str(setup.work / f"media-{slug}"),
        PROMETHEUS_MULTIPROC_DIR=str(setup.work / f"prometheus-{slug}"),
    )
    argv = [servers.venv_tool("gunicorn"), "coinsite.wsgi", "--bind", f"127.0.0.1:{port}", *options]
    return servers.start(
        f"(b) gunicorn, {label}",
        argv,
        env=env,
        cwd=ROOT,
        base_url=f"http://127.0.0.1:{port}",
        log=setup.work / f"gunicorn-{slug}.log",
        database=pg_name,
    )


def mlflow_server(setup: Setup, workers: int | None, port: int) -> servers.Server:
    argv = [
        servers.venv_tool("mlflow"),
        "models",
        "serve",
        "-m",
        f"models:/{setup.model_name}/{setup.version}",
        "--env-manager",
        "local",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if workers:
        argv += ["--workers", str(workers)]
    label = f"(c) mlflow serve --workers {workers}" if workers else "(c) mlflow serve (default: 1 worker)"
    env = {key: value for key, value in setup.base_env.items() if key != "MLFLOW_MODELS_WORKERS"}
    return servers.start(
        label,
        argv,
        env=env,
        cwd=ROOT,
        base_url=f"http://127.0.0.1:{port}",
        log=setup.work / f"mlflow-{workers or 'default'}.log",
    )


def run_server(
    setup: Setup,
    server: servers.Server,
    path: str,
    headers: dict[str, str],
    *,
    ready_path: str,
    first: bool,
    media: Path | None = None,
) -> tuple[dict[str, Measured], int]:
    """Wait for the server, measure both input kinds, stop it. Returns the figures and its worker count."""
    target = Target(server.base_url + path, headers, keep_alive=setup.args.keep_alive)
    try:
        servers.wait_ready(server, ready_path, timeout=300)
        workers = max(1, len(server.pids()) - 1)  # the master (or mlflow's CLI process) and its workers
        if first:
            print(first_prediction(setup, server, target), flush=True)
        measured = {kind: measure(setup, server, target, kind) for kind in KINDS}
    except Exception:
        print(f"{server.label} failed; its log ends:\n{server.log_tail()}", file=sys.stderr)
        raise
    finally:
        servers.stop(server)
        if media is not None:
            servers.remove(media)  # thousands of stored 12 MP photos: gigabytes after a few rounds
    print(f"  measured {server.label} ({workers + 1} processes)", flush=True)
    return measured, workers


def mlflow_run(setup: Setup, workers: int | None) -> dict[str, Measured]:
    """(c) with `workers` uvicorn workers (None: mlflow's default), measured on both input kinds."""
    server = mlflow_server(setup, workers, servers.free_port())
    headers = {"Content-Type": "application/json"}
    return run_server(setup, server, "/invocations", headers, ready_path="/ping", first=False)[0]


def bench_round(setup: Setup) -> dict[str, float]:
    """One round: (a), each (b), both (c); prints the table and the targets; returns the ratios."""
    a = in_process(setup)
    a_p50 = {kind: a[kind][0] for kind in KINDS}
    rows: list[tuple[str, dict[str, Measured]]] = []
    b: dict[str, dict[str, Measured]] = {}
    web_workers = 1
    for label, url, pg_name, token in setup.databases:
        server = web_server(setup, label, url, pg_name, servers.free_port())
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        b[label], web_workers = run_server(
            setup,
            server,
            "/api/predict",
            headers,
            ready_path="/healthz",
            first=True,
            media=setup.work / f"media-{label.lower()}",
        )
        rows.append((f"{server.label} {web_workers}w", b[label]))
    c_default = mlflow_run(setup, None)
    rows.append(("(c) mlflow serve, default 1w", c_default))
    c_equal = c_default
    if web_workers > 1:
        c_equal = mlflow_run(setup, web_workers)
        rows.append((f"(c) mlflow serve --workers {web_workers}", c_equal))

    print()
    for line in report.table(a=a, rows=rows, cores=CORES, clients=setup.args.clients):
        print(line)
    values = report.ratios(a_p50_ms=a_p50, b=b["SQLite"], c=c_equal, cores=CORES)
    if "PostgreSQL" in b:
        values.update(report.ratios(a_p50_ms=a_p50, b=b["PostgreSQL"], c=c_equal, cores=CORES, prefix="pg_"))
    print(f"\nissue 15 targets (c = mlflow serve with {web_workers} workers, as many as gunicorn):")
    for line in report.target_verdicts(values):
        print(line)
    return values


def prepare(args: argparse.Namespace) -> Setup:
    import django  # the bench sets up Django itself: it reads the registry and the model as the site does

    django.setup()
    import torch  # after django.setup(), like the site's own serving code
    from django.conf import settings

    from registry import gateway

    # (a) runs like the serving processes do (INFERENCE_TORCH_THREADS): the comparison is of serving paths, not of
    # OpenMP settings.
    torch.set_num_threads(settings.INFERENCE_TORCH_THREADS)
    version = gateway.alias_version(gateway.PRODUCTION_ALIAS)
    if version is None:
        sys.exit("No model in production: run `make demo` (or `make run`) first.")
    predictor = gateway.tracking().load_predictor(settings.MLFLOW_MODEL_NAME, version)
    print(
        f"model {settings.MLFLOW_MODEL_NAME} v{version} (backend: {predictor.backend}); {CORES} cores; "
        f"load average {load_average()}"
    )
    pairs = {kind: photo_pairs(SIZES[kind], PAIRS_PER_KIND, seed=SEEDS[kind]) for kind in KINDS}
    for kind, kind_pairs in pairs.items():
        sizes = [len(side) / 1e6 for pair in kind_pairs for side in pair]
        print(f"inputs {kind}: {len(kind_pairs)} pairs, JPEG {min(sizes):.2f}-{max(sizes):.2f} MB per photo")
    bodies = {kind: [body(pair) for pair in kind_pairs] for kind, kind_pairs in pairs.items()}
    base_env = dict(os.environ, MLFLOW_TRACKING_URI=settings.MLFLOW_TRACKING_URI, MLFLOW_DISABLE_TELEMETRY="true")
    base_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{base_env.get('PATH', '')}"  # mlflow execs uvicorn
    web_env = dict(
        base_env,
        DJANGO_DEBUG="0",  # as deployed: no query log, no debug pages
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_HTTPS="0",  # plain http on 127.0.0.1 (a deployment has its TLS proxy in front)
        COINSITE_WARM_UP_MODEL="1",
        COINSITE_THROTTLE_PREDICT="1000000/s",  # the bench's one user would hit the 30/min abuse limit at once
        COINSITE_ALLOW_LOCAL_CACHE="1",  # several workers, each counting alone: no limit is measured here
        # ... and its 1 GiB storage quota within two rounds of 12 MP pairs (9.6 MB each): a quota it never reaches,
        # so the check still runs (its queries are part of what a request costs) but refuses nothing
        COINSITE_STORAGE_QUOTA_BYTES=str(10**13),
    )
    work = Path(settings.VAR_DIR) / "bench" / f"run-{os.getpid()}"  # on the real disk: fsync must cost what it costs
    work.mkdir(parents=True, exist_ok=True)
    pool = load.client_pool(args.clients, bodies)
    return Setup(
        args=args,
        version=version,
        model_name=settings.MLFLOW_MODEL_NAME,
        predictor=predictor,
        pairs=pairs,
        bodies=bodies,
        pool=pool,
        work=work,
        base_env=base_env,
        web_env=web_env,
    )


def add_databases(setup: Setup) -> None:
    """Create and migrate (b)'s databases: a SQLite file, and a PostgreSQL database unless there is none to use."""
    sqlite_url = f"sqlite:///{setup.work / 'db.sqlite3'}"
    token = servers.prepare_database(ROOT, dict(setup.web_env, DATABASE_URL=sqlite_url))
    setup.databases.append(("SQLite", sqlite_url, None, token))
    if setup.args.no_postgres:
        return
    name = f"coinsite_bench_{os.getpid()}"
    try:
        servers.postgres_create(setup.args.postgres_url, name)
    except Exception as error:  # no server there: say so, and bench SQLite alone
        print(f"PostgreSQL at {setup.args.postgres_url} not usable ({error}); (b) runs on SQLite only")
        return
    setup.pg_name = name
    pg_url = setup.args.postgres_url.rsplit("/", 1)[0] + "/" + name
    token = servers.prepare_database(ROOT, dict(setup.web_env, DATABASE_URL=pg_url))
    setup.databases.append(("PostgreSQL", pg_url, name, token))


def main() -> None:
    args = parse_args()
    setup = prepare(args)
    try:
        add_databases(setup)
        rounds = []
        for index in range(args.repeat):
            if args.repeat > 1:
                print(f"\n=== round {index + 1} of {args.repeat} (load average {load_average()}) ===", flush=True)
            rounds.append(bench_round(setup))
            if args.repeat > 1:
                print(f"round {index + 1}: {report.ratio_line(rounds[-1])}")
    finally:
        setup.pool.terminate()
        if setup.pg_name:
            servers.postgres_drop(args.postgres_url, setup.pg_name)
        servers.remove(setup.work)
    print(f"\nmachine: {CORES} cores, load average {load_average()} at the end (the clients share the cores)")
    if args.repeat > 1:
        print(f"spread over {args.repeat} rounds (min / median / max):")
        for key, (low, mid, high) in report.spread(rounds).items():
            print(f"  {key:<28} {low:6.2f} {mid:6.2f} {high:6.2f}")
        final = {key: mid for key, (_low, mid, _high) in report.spread(rounds).items()}
    else:
        final = rounds[0]
    print(report.ratio_line(final))


if __name__ == "__main__":
    main()
