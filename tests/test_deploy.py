"""What can be checked of the deployment without Docker or Google Cloud: specs parse, commands are valid CLI calls.

Not tested here (no Docker engine, no GCP project): building the image, running it, deploying, IAM.
"""
import os
import shlex
import subprocess

import yaml

from strategy_engine.cli import build_parser

from conftest import ROOT, run_cli


def test_job_spec_runs_a_valid_daily_command():
    job = yaml.safe_load((ROOT / "deploy" / "cloudrun-job.yaml").read_text())
    tmpl = job["spec"]["template"]["spec"]
    assert tmpl["taskCount"] >= 1
    [container] = tmpl["template"]["spec"]["containers"]
    assert container["command"] == ["strategy-engine"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "run" and args.run_command == "daily" and args.as_of == "today"
    assert args.warehouse.startswith("bigquery://") and args.archive.startswith("gs://")
    secret_envs = [e for e in container["env"] if "valueFrom" in e]
    assert {e["name"] for e in secret_envs} >= {"TELEGRAM_BOT_TOKEN"}          # secrets come from Secret Manager
    assert all("value" not in e for e in secret_envs)


def test_scheduler_stages_are_valid_commands_at_their_times():
    jobs = yaml.safe_load((ROOT / "deploy" / "scheduler-stages.yaml").read_text())["jobs"]
    times = {}
    for job in jobs:
        assert job["timeZone"] == "Asia/Kolkata" and job["schedule"].endswith("* * 1-5")
        [container] = job["httpTarget"]["body"]["overrides"]["containerOverrides"]
        args = build_parser().parse_args([str(a) for a in container["args"]])
        minute, hour = job["schedule"].split()[:2]
        if hasattr(args, "scheduled") and args.scheduled:
            assert args.scheduled == f"{int(hour):02d}:{int(minute):02d}", job["name"]   # the idempotency key's time
        times[job["stage"]] = f"{int(hour):02d}:{int(minute):02d}"
    assert times == {"validate": "09:00", "monitor": "09:15", "daily": "15:30", "report": "18:00"}


def test_deploy_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(ROOT / "deploy" / "deploy.sh")], check=True)


def test_dockerfile_is_multistage_nonroot_cpu_torch():
    text = (ROOT / "Dockerfile").read_text()
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(froms) >= 2 and 'ENTRYPOINT ["strategy-engine"]' in text
    assert "USER 10001:10001" in text and "useradd --create-home --uid 10001" in text    # non-root, numeric
    assert "download.pytorch.org/whl/cpu" in text and "ipykernel install --name python3" in text
    for line in text.splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            for src in shlex.split(line)[1:-1]:
                if not src.startswith("--"): assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"


def test_dockerfile_warm_up_compiles_the_numba_kernels(tmp_path):
    """The image's warm-up command is a valid `run daily` that succeeds on a bare image and fills the numba cache."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    [line] = [x for x in text.splitlines() if x.startswith("RUN strategy-engine ")]
    args = shlex.split(line.split("&&")[0])[2:]
    assert "NUMBA_CPU_NAME=generic" in text and args[:2] == ["run", "daily"]
    build_parser().parse_args(args)                                          # a valid command line
    local = [a.replace("/tmp/warm", str(tmp_path / "warm")) for a in args]
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba"), "NUMBA_CPU_NAME": "generic",
           "STRATEGY_ENGINE_DATA": str(tmp_path / "no-sample"), "STRATEGY_ENGINE_RUNS": str(tmp_path / "runs")}
    r = run_cli(*local, env=env)
    assert r.returncode == 0 and r.stdout.startswith("succeeded:"), r.stdout + r.stderr
    assert len(list((tmp_path / "numba").rglob("*.nbi"))) >= 5                 # the daily job's kernels, cached
