"""What can be checked of the deployment without Docker or Google Cloud: specs parse, commands are valid CLI
calls, and deploy/deploy.sh and scripts/verify_deployment.sh run against stub gcloud/curl/terraform
executables.

Not tested here (no Docker engine, no GCP project): deploying, IAM's real effect. Building and running the
image: `make image-check` (buildah); infra/ itself: tests/test_infra.py.
"""
import json
import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime

import pytest
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
    # secrets come from Secret Manager
    assert {e["name"] for e in secret_envs} >= {"TELEGRAM_BOT_TOKEN"}
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
            # the idempotency key's time
            assert args.scheduled == f"{int(hour):02d}:{int(minute):02d}", job["name"]
        times[job["stage"]] = f"{int(hour):02d}:{int(minute):02d}"
    assert times == {"validate": "09:00", "monitor": "09:15", "ingest": "19:00", "daily": "19:30",
                     "report": "20:00"}


def test_deploy_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(ROOT / "deploy" / "deploy.sh")], check=True)


def test_dockerfile_is_multistage_nonroot_cpu_torch():
    text = (ROOT / "Dockerfile").read_text()
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert len(froms) >= 2 and 'ENTRYPOINT ["strategy-engine"]' in text
    assert "USER 10001:10001" in text and "useradd --create-home --uid 10001" in text    # non-root, numeric
    assert "download.pytorch.org/whl/cpu" in text and "ipykernel install --name python3" in text
    # PYTHONDONTWRITEBYTECODE and an editable install: the package's bytecode is compiled once, in the image
    assert "PYTHONDONTWRITEBYTECODE=1" not in text or "python -m compileall -q /app/strategy_engine" in text
    for line in text.splitlines():
        if line.startswith("COPY") and "--from=" not in line:
            for src in shlex.split(line)[1:-1]:
                if not src.startswith("--"): assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"


def test_dockerfile_warm_up_is_a_day_that_needs_no_data():
    """The image's warm-up command is a valid `run day` (validate, daily, report: every scheduled stage's
    kernels) on the synthetic universe, so it passes on a bare image (no sample beside it), compiling for the
    generic CPU the image runs on. That it fills the cache the image's runs use is checked where that happens,
    in the built image: `make image-check` counts the compiled kernels the warm-up left and fails when a day
    run in the image compiles one more (a cold compile here cost ~30 s of CPU)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    [line] = [x for x in text.splitlines() if x.startswith("RUN strategy-engine ")]
    args = shlex.split(line.split("&&")[0])[2:]
    assert "NUMBA_CPU_NAME=generic" in text and args[:2] == ["run", "day"]
    parsed = build_parser().parse_args(args)                                 # a valid command line
    assert parsed.data == "synthetic" and parsed.as_of == "latest", args


# ------------------------------------------------------------------ deploy.sh and verify_deployment.sh with
# stubs
# Stub `gcloud`, `curl` and `terraform` executables on PATH record their arguments and answer canned output,
# so the scripts' own logic (what they call, how they judge the answers, how they fail) runs for real.
NOW = int(datetime(2026, 12, 3, 12, 0, tzinfo=UTC).timestamp())
DIGEST = "sha256:" + "ab" * 32
PROD = "strategy-engine-prod"
IMAGE = f"asia-south1-docker.pkg.dev/{PROD}/strategy-engine/strategy-engine@{DIGEST}"
URL = "https://strategy-engine-api-xyz-el.a.run.app"

GCLOUD = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >> "$STUB_DIR/gcloud.log"
prev=""; for a in "$@"; do [ "$prev" = --config ] && cp "$a" "$STUB_DIR/config.yaml"; prev=$a; done
for key in "$1_$2_$3_$4" "$1_$2_$3" "$1_$2"; do
  if [ -f "$STUB_DIR/gcloud_$key.out" ]; then
    cat "$STUB_DIR/gcloud_$key.out"
    [ -f "$STUB_DIR/gcloud_$key.err" ] && cat "$STUB_DIR/gcloud_$key.err" >&2
    exit "$(cat "$STUB_DIR/gcloud_$key.rc" 2>/dev/null || echo 0)"
  fi
done
echo "stub gcloud: no canned answer for: $*" >&2; exit 1
"""
CURL = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >> "$STUB_DIR/curl.log"
out=/dev/stdout; fmt=""
while [ $# -gt 0 ]; do
  case "$1" in -o) out=$2; shift 2 ;; -w) fmt=$2; shift 2 ;; -H|--max-time) shift 2 ;; *) shift ;; esac
done
rc=$(cat "$STUB_DIR/curl.rc" 2>/dev/null || echo 0)
if [ "$rc" != 0 ]; then echo "curl: (7) Failed to connect" >&2; [ -n "$fmt" ] && printf 000; exit "$rc"; fi
cat "$STUB_DIR/curl.body" > "$out"
[ -n "$fmt" ] && cat "$STUB_DIR/curl.code"
exit 0
"""
TERRAFORM = r"""#!/usr/bin/env bash
printf '%s\n' "$*" >> "$STUB_DIR/terraform.log"
"""


def _execution(name, finished, ok=True):
    return {"metadata": {"name": name, "creationTimestamp": finished},
            "status": {"completionTime": finished,
                       "conditions": [{"type": "Completed", "status": "True" if ok else "False",
                                       "message": "" if ok else "Task strategy-engine-daily-x-0 failed: "
                                                                "exit 4"}]}}


def healthy(project=PROD, years=6, locked=True):
    """Canned answers of a healthy deployment of `project`."""
    return {
        "gcloud_run_services_describe.out": {
            "metadata": {"name": "strategy-engine-api"},
            "status": {"url": URL},
        },
        "gcloud_auth_print-identity-token.out": "id-token-123",
        "gcloud_run_jobs_executions_list.out": [
            _execution("strategy-engine-daily-old", "2026-12-02T10:05:00Z"),
            _execution("strategy-engine-daily-new", "2026-12-03T10:04:00Z"),
            {
                "metadata": {"name": "strategy-engine-daily-running"},
                "status": {"conditions": [{"type": "Completed", "status": "Unknown"}]},
            },
        ],
        "gcloud_storage_buckets_describe.out": {
            "name": f"{project}-strategy-runs",
            "public_access_prevention": "enforced",
            "uniform_bucket_level_access": True,
            "retention_policy": {
                "retentionPeriod": str(int(years * 31557600)),
                "isLocked": locked,
                "effectiveTime": "2026-01-01T00:00:00Z",
            },
        },
        "gcloud_run_jobs_describe.out": {
            "spec": {
                "template": {
                    "spec": {
                        "template": {
                            "spec": {
                                "serviceAccountName": f"strategy-engine@{project}.iam.gserviceaccount.com",
                                "containers": [{"image": IMAGE}],
                            }
                        }
                    }
                }
            }
        },
        "curl.body": {
            "status": "degraded",
            "ready": False,
            "version": "0.1.0",
            "checks": {
                "warehouse": {"ok": True, "backend": "bigquery"},
                "archive": {"ok": False, "backend": "gs", "detail": "storage.objects.create missing"},
            },
        },
        "curl.code": "200",
    }


def _stubs(tmp_path, answers: dict) -> dict:
    stub, bin_ = tmp_path / "stub", tmp_path / "bin"
    stub.mkdir(exist_ok=True)
    bin_.mkdir(exist_ok=True)
    for name, text in (("gcloud", GCLOUD), ("curl", CURL), ("terraform", TERRAFORM)):
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    for name, value in answers.items():
        (stub / name).write_text(value if isinstance(value, str) else json.dumps(value))
    return {**os.environ, "PATH": f"{bin_}:{os.environ['PATH']}", "STUB_DIR": str(stub),
            "PYTHON": sys.executable, "VERIFY_NOW": str(NOW)}


def verify(tmp_path, answers, *args, env_name="production"):
    env = _stubs(tmp_path, answers)
    r = subprocess.run(["bash", str(ROOT / "scripts" / "verify_deployment.sh"), env_name,
                        *args], capture_output=True,
                       text=True, timeout=120, env=env)
    log = {
        n: (tmp_path / "stub" / f"{n}.log").read_text() if (tmp_path / "stub" / f"{n}.log").exists() else ""
        for n in ("gcloud", "curl")
    }
    return r, log


def test_verify_deployment_passes_a_healthy_production(tmp_path):
    r, log = verify(tmp_path, healthy(), "--image", IMAGE)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert [x.split(":")[0] for x in lines if x.startswith("ok:")] == ["ok"] * 4
    assert "strategy-engine-daily-new succeeded 1.9 h ago" in r.stdout          # the newest finished one
    assert "retention 6.00 y, locked=true" in r.stdout and f"runs as strategy-engine@{PROD}" in r.stdout
    assert r.stdout.rstrip().endswith(f"verify production ({PROD}): all checks passed")
    calls = log["gcloud"].splitlines()
    assert (
        f"run services describe strategy-engine-api --region asia-south1 --project {PROD} --format json"
        in calls
    )
    assert f"storage buckets describe gs://{PROD}-strategy-runs --project {PROD} --format json" in calls
    assert any(c.startswith("run jobs executions list --job strategy-engine-daily --region asia-south1")
               for c in calls)
    assert f"auth print-identity-token --audiences={URL}" in calls
    assert f"Authorization: Bearer id-token-123 {URL}/health" in log["curl"]


def test_verify_deployment_staging_is_unlocked_by_design(tmp_path):
    answers = healthy("strategy-engine-staging", years=5, locked=False)
    r, _ = verify(tmp_path, answers, env_name="staging")
    assert r.returncode == 0, r.stdout + r.stderr
    # drift from lock_retention: false
    locked = healthy("strategy-engine-staging", years=5, locked=True)
    (tmp_path / "b").mkdir()
    r, _ = verify(tmp_path / "b", locked, env_name="staging")
    assert r.returncode == 1 and "retention policy is locked but lock_retention is false" in r.stdout


def _broken(**changes):
    answers = healthy()
    for key, change in changes.items():
        answers[key] = change(answers[key]) if callable(change) else change
    return answers


def _bucket(**rp):
    return lambda b: {**b, "retention_policy": {**b["retention_policy"], **rp}}


FAILURES = {
    "unlocked": (
        _broken(**{"gcloud_storage_buckets_describe.out": _bucket(isLocked=False)}),
        "FAIL: archive bucket: retention policy is NOT locked but lock_retention is true",
    ),
    "short retention": (
        _broken(**{"gcloud_storage_buckets_describe.out": _bucket(retentionPeriod=str(4 * 31557600))}),
        "FAIL: archive bucket: retention 4.00 y < 6 y",
    ),
    "no retention": (
        _broken(
            **{
                "gcloud_storage_buckets_describe.out": lambda b: {
                    k: v for k, v in b.items() if k != "retention_policy"
                }
            }
        ),
        "retention 0.00 y < 6 y; retention policy is NOT locked",
    ),
    "versioning": (
        _broken(**{"gcloud_storage_buckets_describe.out": lambda b: {**b, "versioning_enabled": True}}),
        "FAIL: archive bucket: versioning is on",
    ),
    "default identity": (
        _broken(
            **{
                "gcloud_run_jobs_describe.out": {
                    "spec": {"template": {"spec": {"template": {"spec": {"containers": [{"image": IMAGE}]}}}}}
                }
            }
        ),
        "FAIL: job identity: the job runs as the default compute service account",
    ),
    "other image": (
        _broken(**{"gcloud_run_jobs_describe.out": lambda j: json.loads(json.dumps(j).replace("ab", "cd"))}),
        "FAIL: job identity: the job runs [",
    ),
    "failed run": (
        _broken(
            **{
                "gcloud_run_jobs_executions_list.out": lambda e: [
                    *e,
                    _execution("strategy-engine-daily-bad", "2026-12-03T11:00:00Z", ok=False),
                ]
            }
        ),
        "FAIL: last run: the last execution strategy-engine-daily-bad failed: Task "
        "strategy-engine-daily-x-0 failed",
    ),
    "no run": (
        _broken(**{"gcloud_run_jobs_executions_list.out": []}),
        "FAIL: last run: no finished execution",
    ),
    "health 503": (_broken(**{"curl.code": "503"}), "FAIL: service: GET " + URL + "/health answered 503"),
    "warehouse down": (
        _broken(
            **{
                "curl.body": lambda h: {
                    **h,
                    "checks": {
                        **h["checks"],
                        "warehouse": {"ok": False, "error": "Forbidden: 403 Access Denied: BigQuery"},
                    },
                }
            }
        ),
        "FAIL: service: /health: warehouse check failed: Forbidden: 403",
    ),
    "api can write": (
        _broken(
            **{
                "curl.body": lambda h: {
                    **h,
                    "checks": {
                        **h["checks"],
                        "archive": {"ok": True, "detail": "storage.objects.create granted"},
                    },
                }
            }
        ),
        "archive create permission is granted but service.execute is false",
    ),
    "service unreachable": (
        _broken(**{"curl.rc": "7"}),
        "FAIL: service: GET " + URL + "/health answered 000",
    ),
    "describe denied": (
        _broken(
            **{
                "gcloud_run_services_describe.out": "",
                "gcloud_run_services_describe.rc": "1",
                "gcloud_run_services_describe.err": "ERROR: (gcloud.run.services.describe) PERMISSION_DENIED",
            }
        ),
        "FAIL: service: cannot describe strategy-engine-api in "
        "strategy-engine-prod/asia-south1: ERROR: (gcloud.run.services.describe) "
        "PERMISSION_DENIED",
    ),
    "bad json": (
        _broken(**{"gcloud_storage_buckets_describe.out": "not json"}),
        "FAIL: archive bucket: gcloud's answer could not be read (json.decoder.JSONDecodeError: "
        "Expecting value",
    ),
}


@pytest.mark.parametrize("case", FAILURES)
def test_verify_deployment_fails_clearly(tmp_path, case):
    answers, message = FAILURES[case]
    r, _ = verify(tmp_path, answers, "--image", IMAGE)
    assert r.returncode == 1, r.stdout + r.stderr
    assert message in r.stdout, r.stdout
    failed = [line.split(":")[1].strip() for line in r.stdout.splitlines() if line.startswith("FAIL:")]
    # the summary names each check
    assert failed and r.stderr.strip().split("failed: ")[-1].split(",") == failed
    assert "check(s) failed" in r.stderr and "all checks passed" not in r.stdout


def test_verify_deployment_old_run_and_usage(tmp_path):
    env = _stubs(tmp_path, healthy())
    # three days later, nothing new ran
    env["VERIFY_NOW"] = str(NOW + 3 * 86400)
    r = subprocess.run(["bash", str(ROOT / "scripts" / "verify_deployment.sh"),
                        "production"], capture_output=True,
                       text=True, timeout=120, env=env)
    assert (
        r.returncode == 1
        and "FAIL: last run: the last execution strategy-engine-daily-new finished 73.9 h ago "
        "(more than 26 h)"
        in r.stdout
    )
    r = subprocess.run(["bash", str(ROOT / "scripts" / "verify_deployment.sh"), "production",
                        "--max-age-hours", "80"],
                       capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout
    r = subprocess.run(["bash", str(ROOT / "scripts" / "verify_deployment.sh"),
                        "prod"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 2 and "no environments/prod.yaml (environments: production staging" in r.stderr
    r = subprocess.run(["bash",
                        str(ROOT / "scripts" / "verify_deployment.sh")], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 2 and "usage:" in r.stderr


def test_deploy_applies_terraform_for_the_environment(tmp_path):
    env = _stubs(tmp_path, {})
    deploy = str(ROOT / "deploy" / "deploy.sh")
    staged = IMAGE.replace(PROD, "strategy-engine-staging")
    r = subprocess.run(["bash", deploy, "staging", staged], capture_output=True, text=True, timeout=60,
                       env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    init, apply = (tmp_path / "stub" / "terraform.log").read_text().splitlines()
    assert (
        init.startswith("-chdir=infra init")
        and "-backend-config=bucket=strategy-engine-staging-tfstate" in init
    )
    assert "-backend-config=prefix=strategy-engine/staging" in init
    assert apply.startswith("-chdir=infra apply") and f"-var environment=staging -var image={staged}" in apply
    # an image given: nothing built
    assert not (tmp_path / "stub" / "gcloud.log").exists()
    r = subprocess.run(["bash", deploy, "production",
                        IMAGE.replace(f"@{DIGEST}", ":latest")], capture_output=True,
                       text=True, timeout=60, env=env)
    assert r.returncode == 2 and "must be pinned by digest" in r.stderr
    r = subprocess.run(["bash", deploy, "qa", IMAGE], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and "no environments/qa.yaml" in r.stderr
    # neither refusal ran terraform
    assert len((tmp_path / "stub" / "terraform.log").read_text().splitlines()) == 2


def test_deploy_without_an_image_builds_the_commit_and_deploys_its_digest(tmp_path):
    env = _stubs(tmp_path,
                 {"gcloud_builds_submit.out": "DONE", "gcloud_artifacts_docker_images_describe.out": DIGEST})
    r = subprocess.run(["bash", str(ROOT / "deploy" / "deploy.sh"),
                        "production"], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    build, describe = (tmp_path / "stub" / "gcloud.log").read_text().splitlines()
    assert build.startswith(f"builds submit --project {PROD} --region asia-south1 --config")
    tag = f"asia-south1-docker.pkg.dev/{PROD}/strategy-engine/strategy-engine:{commit}"
    assert describe.startswith(f"artifacts docker images describe {tag}")
    config = (tmp_path / "stub" / "config.yaml").read_text()
    # the commit is baked into the image
    assert f"GIT_COMMIT={commit}" in config and tag in config
    apply = (tmp_path / "stub" / "terraform.log").read_text().splitlines()[1]
    # deployed by digest, not by tag
    assert f"-var environment=production -var image={IMAGE}" in apply
