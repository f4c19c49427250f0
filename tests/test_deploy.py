"""What can be checked of the deployment without Docker or Google Cloud: specs parse, commands are valid CLI calls.

Not tested here (no Docker engine, no GCP project): building the image, running it, deploying, IAM.
"""
import shlex
import subprocess

import yaml

from strategy_engine.cli import build_parser

from conftest import ROOT


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


def test_scheduler_fires_at_1530_ist_on_weekdays():
    s = yaml.safe_load((ROOT / "deploy" / "scheduler-daily.yaml").read_text())
    assert s["schedule"] == "30 15 * * 1-5" and s["timeZone"] == "Asia/Kolkata"
    assert s["httpTarget"]["uri"].endswith("/jobs/strategy-engine-daily:run")


def test_deploy_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(ROOT / "deploy" / "deploy.sh")], check=True)


def test_dockerfile_is_multistage_nonroot_cpu_torch():
    text = (ROOT / "Dockerfile").read_text()
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(froms) >= 2 and "USER engine" in text and 'ENTRYPOINT ["strategy-engine"]' in text
    assert "download.pytorch.org/whl/cpu" in text and "ipykernel install --name python3" in text
    for line in text.splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            for src in shlex.split(line)[1:-1]:
                if not src.startswith("--"): assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
