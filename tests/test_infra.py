"""The infrastructure as code, checked without a cloud account (RELIABILITY.md case 6, half of case 25).

Terraform cannot download providers here, so `infra/` is parsed with python-hcl2 and its properties are
asserted against the settings it reads (environments/*.yaml), the code it must match (warehouse TABLES, the
schedule's STAGES, the alert rules) and the seed's rules; checkov scans it (zero failed checks; each skip
justified in place), the workflow is checked against GitHub's schema and the Dockerfile with hadolint. Not
proved here: that Google accepts the plan (terraform validate/plan need the provider), IAM's real effect.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import hcl2
import pytest
import yaml

from strategy_engine.cli import build_parser

from conftest import ROOT

try:
    from strategy_engine.runs.schedule import STAGES, stage_args
except ImportError:                                    # before the runner moved into strategy_engine.runs
    from strategy_engine.schedule import STAGES, stage_args

INFRA = ROOT / "infra"
ENVIRONMENTS = ("production", "staging")
YEAR_S = 31557600                                      # 365.25 days: how GCS counts retention years
PRIMITIVE = re.compile(r"roles/(owner|editor|viewer)\b")
SECRET_ENV_CONSUMERS = {"TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_ID", "SMTP_PASSWORD",
                        "STRATEGY_ENGINE_API_TOKEN", "STRATEGY_ENGINE_READ_TOKEN"}


# ---------------------------------------------------------------------------------------------- parsing
# helpers
def _unquote(value):
    """python-hcl2 keeps the quotes of string literals and block labels: strip them, recursively."""
    if isinstance(value, str):
        return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if isinstance(value, list):
        return [_unquote(v) for v in value]
    if isinstance(value, dict):
        return {_unquote(k): _unquote(v)
                for k, v in value.items() if k not in ("__is_block__", "__comments__")}
    return value


@cache
def parsed(path: Path) -> dict:
    with open(path) as f:
        return hcl2.load(f)


@cache
def tf_files(folder: Path = INFRA) -> tuple[Path, ...]:
    return tuple(sorted(folder.glob("*.tf")))


def resources(kind: str, folder: Path = INFRA) -> dict[str, dict]:
    """Every `resource "kind" "name"` in the folder's .tf files: name -> body (unquoted)."""
    out = {}
    for f in tf_files(folder):
        for block in parsed(f).get("resource", []):
            for k, named in block.items():
                if _unquote(k) == kind:
                    for name, body in named.items():
                        out[_unquote(name)] = _unquote(body)
    return out


def comments(kind: str, name: str, folder: Path = INFRA) -> list[str]:
    """The comments inside a resource block (where the checkov skips and their reasons live)."""
    for f in tf_files(folder):
        for block in parsed(f).get("resource", []):
            for k, named in block.items():
                if _unquote(k) == kind and f'"{name}"' in named:
                    return [c["value"] for c in named[f'"{name}"'].get("__comments__", [])]
    raise KeyError(f"{kind}.{name}")


@cache
def tf_locals() -> dict:
    out = {}
    for f in tf_files():
        for block in parsed(f).get("locals", []):
            out.update(_unquote(block))
    return out


@cache
def environment(name: str) -> dict:
    return yaml.safe_load((ROOT / "environments" / f"{name}.yaml").read_text())


def resolve(expr, env: dict, depth: int = 0):
    """A simple reference's value (`${local.env.a.b}`, `${local.x}`) for an environment; other text as is."""
    if not isinstance(expr, str) or depth > 5:
        return expr
    m = re.fullmatch(r"\$\{local\.env\.([\w.]+)\}", expr)
    if m:
        value = env
        for key in m.group(1).split("."):
            value = value[key]
        return value
    m = re.fullmatch(r"\$\{local\.(\w+)\}", expr)
    if m and m.group(1) in tf_locals():
        return resolve(tf_locals()[m.group(1)], env, depth + 1)
    return expr


def conditional(expr: str, env: dict) -> str:
    """`${local.env.X ? A : B}` for one environment: A or B (each a reference or a quoted string)."""
    m = re.fullmatch(r"\$\{local\.env\.([\w.]+) \? (.+?) : (.+?)\}", expr)
    assert m, f"not a simple conditional on the environment: {expr}"
    flag = resolve("${local.env." + m.group(1) + "}", env)
    pick = m.group(2) if flag else m.group(3)
    return _unquote(pick)


def member_bindings() -> list[tuple[str, str, dict]]:
    """Every IAM grant in infra/: (resource kind.name, role expression, body)."""
    out = []
    for f in tf_files():
        for block in parsed(f).get("resource", []):
            for k, named in block.items():
                kind = _unquote(k)
                if kind.endswith(("_iam_member", "_iam_binding")):
                    for name, body in named.items():
                        body = _unquote(body)
                        out.append((f"{kind}.{_unquote(name)}", body["role"], body))
    return out


def custom_roles() -> dict[str, set[str]]:
    """Custom role resource name -> its permissions (infra/ and infra/bootstrap/)."""
    out = {}
    for folder in (INFRA, INFRA / "bootstrap"):
        for name, body in resources("google_project_iam_custom_role", folder).items():
            out[name] = set(body["permissions"])
    return out


# ------------------------------------------------------------------------------------------------------ tests
def test_every_terraform_file_parses_and_is_formatted():
    files = [*tf_files(), *tf_files(INFRA / "bootstrap")]
    assert len(files) >= 10
    for f in files:
        assert parsed(f), f"{f} parsed to nothing"
    # fmt needs no provider; present on this machine, not required
    if shutil.which("terraform"):
        r = subprocess.run(["terraform", "fmt", "-check", "-recursive", "-diff",
                            str(INFRA)], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, "terraform fmt would change:\n" + r.stdout


def test_environments_are_the_single_source():
    prod, staging = environment("production"), environment("staging")

    def keys(d, prefix=""):
        return {prefix + k for k in d} | {
            x for k, v in d.items() if isinstance(v, dict) for x in keys(v, f"{k}.")
        }
    assert keys(prod) == keys(staging), "the environments must set the same keys"
    for name in ENVIRONMENTS:
        e = environment(name)
        assert e["environment"] == name and re.fullmatch(r"[a-z][a-z0-9-]{4,28}[a-z0-9]", e["project"])
        assert 1 <= e["job"]["parallelism"] <= e["job"]["tasks"] and 0 <= e["job"]["max_retries"] <= 10
        assert 60 <= e["job"]["timeout_seconds"] <= 86400
        s = e["service"]
        assert 0 <= s["min_instances"] <= s["max_instances"] and 1 <= s["concurrency"] <= 1000
        assert s["ingress"] in {"INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY",
                                "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"}
        assert not any(m in ("allUsers", "allAuthenticatedUsers") for m in s["invokers"])
    assert prod["project"] != staging["project"]
    # Terraform reads them (and nothing else decides the environment's settings)
    assert "environments/${var.environment}.yaml" in tf_locals()["env"]
    deploy = (ROOT / "deploy" / "deploy.sh").read_text()
    assert 'environments/$ENVIRONMENT.yaml' in deploy and "-var \"environment=$ENVIRONMENT\"" in deploy


def test_archive_bucket_is_write_once():
    """RELIABILITY case 6: retention >= 5 years, locked in production, versioning off, no public access."""
    bucket = resources("google_storage_bucket")["archive"]
    assert bucket["uniform_bucket_level_access"] is True and bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"][0]["enabled"] is False
    assert bucket["force_destroy"] is False and bucket["lifecycle"][0]["prevent_destroy"] is True
    # nothing expires or deletes archive objects
    assert "lifecycle_rule" not in bucket
    [policy] = bucket["retention_policy"]
    assert tf_locals()["retention_seconds"] == f"${{floor(local.env.archive.retention_years * {YEAR_S})}}"
    assert resolve(bucket["name"], {}) == "${local.env.project}-strategy-runs"
    for name in ENVIRONMENTS:
        env = environment(name)
        years = resolve("${local.env.archive.retention_years}", env)
        assert years >= 5 and int(years * YEAR_S) >= 5 * YEAR_S
        assert policy["retention_period"] == "${local.retention_seconds}"
        locked = resolve(policy["is_locked"], env)
        assert locked is (name == "production"), f"{name}: lock_retention must be {name == 'production'}"
    assert environment("production")["archive"]["retention_years"] == 6
    # versioning off is a deliberate, justified checkov skip, not an oversight
    assert any(
        c.startswith("checkov:skip=CKV_GCP_78:") and "retention" in c
        for c in comments("google_storage_bucket", "archive")
    )


def test_archive_second_region():
    """Production's bucket is dual-region (two regions under one lock); staging says why it has none."""
    bucket = resources("google_storage_bucket")["archive"]
    [placement] = bucket["dynamic"]
    assert "custom_placement_config" in placement
    assert "local.env.archive.data_locations" in placement["custom_placement_config"]["for_each"]
    prod = environment("production")["archive"]
    assert len(set(prod["data_locations"])) == 2 and prod["location"] in {"ASIA", "EU", "US"}
    assert environment("staging")["archive"]["data_locations"] == []
    text = (ROOT / "environments" / "staging.yaml").read_text()
    assert "No second-region copy in staging:" in text                # the documented reason


def test_job_may_create_archive_objects_but_never_delete_or_overwrite():
    roles = custom_roles()
    assert roles["archive_writer"] == {"storage.objects.create", "storage.objects.get",
                                       "storage.objects.list"}
    assert roles["archive_reader"] == {"storage.objects.get", "storage.objects.list"}
    job = "google_service_account.job.email"
    allowed = {"${google_project_iam_custom_role.archive_writer.name}", "roles/bigquery.dataEditor",
               "roles/bigquery.jobUser", "roles/secretmanager.secretAccessor"}
    job_grants = [(where, role) for where, role, body in member_bindings() if job in json.dumps(body)]
    assert job_grants, "the job's service account has no grants"
    for where, role in job_grants:
        assert role in allowed, f"{where} grants the job {role}"
        if role == "roles/bigquery.dataEditor":
            assert where.startswith("google_bigquery_dataset_iam_member."), (
                "dataEditor only on its own dataset"
            )
        if role.startswith("roles/storage") or "archive" in role:
            assert where.startswith("google_storage_bucket_iam_member."), "archive roles only on the bucket"
    for perms in roles.values():                                     # no custom role anywhere deletes objects
        assert not any(
            p.startswith("storage.objects.") and p.split(".")[-1] in ("delete", "update", "setIamPolicy")
            for p in perms
        ), perms
    writer = resources("google_storage_bucket_iam_member")["job_archive"]
    assert writer["role"] == "${google_project_iam_custom_role.archive_writer.name}"
    assert writer["bucket"] == "${google_storage_bucket.archive.name}"


def test_service_reads_and_scheduler_only_starts_the_job():
    api_archive = resources("google_storage_bucket_iam_member")["api_archive"]
    api_dataset = resources("google_bigquery_dataset_iam_member")["api"]
    for name in ENVIRONMENTS:
        env = environment(name)
        executes = env["service"]["execute"]
        archive_role = conditional(api_archive["role"], env)
        assert archive_role == ("google_project_iam_custom_role.archive_writer.name" if executes else
                                "google_project_iam_custom_role.archive_reader.name")
        assert conditional(api_dataset["role"], env) == ("roles/bigquery.dataEditor" if executes else
                                                          "roles/bigquery.dataViewer")
        assert executes is False, f"{name}: the API is read-only (service.execute: false)"
    scheduler = "google_service_account.scheduler.email"
    grants = [(where, role) for where, role, body in member_bindings() if scheduler in json.dumps(body)]
    assert grants == [("google_cloud_run_v2_job_iam_member.scheduler", "roles/run.jobsExecutorWithOverrides")]
    assert (
        resources("google_cloud_run_v2_job_iam_member")["scheduler"]["name"]
        == "${google_cloud_run_v2_job.daily.name}"
    )


def test_no_primitive_roles_and_nothing_public():
    for f in [*tf_files(), *tf_files(INFRA / "bootstrap")]:
        text = "\n".join(line for line in f.read_text().splitlines() if not line.lstrip().startswith("#"))
        assert not PRIMITIVE.search(text), f"{f.name}: a primitive role"
        assert "allUsers" not in text and "allAuthenticatedUsers" not in text, f"{f.name}: public access"
        assert "google_service_account_key" not in text, f"{f.name}: a service account key"
    for name in ENVIRONMENTS:
        assert not PRIMITIVE.search((ROOT / "environments" / f"{name}.yaml").read_text())
    bootstrap_roles = [r for _, r, _ in member_bindings()]
    assert bootstrap_roles and not any(PRIMITIVE.search(r) for r in bootstrap_roles)
    # one service account per actor, and the names the deploy specs use
    accounts = {n: b["account_id"] for n, b in resources("google_service_account").items()}
    assert accounts == {"job": "strategy-engine", "api": "strategy-engine-api",
                        "scheduler": "strategy-engine-scheduler"}
    job_yaml = yaml.safe_load((ROOT / "deploy" / "cloudrun-job.yaml").read_text())
    assert job_yaml["spec"]["template"]["spec"]["template"]["spec"]["serviceAccountName"].startswith(
        "strategy-engine@"
    )


def test_data_access_audit_logs_for_bucket_and_dataset():
    configs = resources("google_project_iam_audit_config")["data_access"]
    assert set(configs["for_each"].removeprefix("${toset(").removesuffix(")}").strip("[]").replace('"', "")
               .replace(" ", "").split(",")) == {"storage.googleapis.com", "bigquery.googleapis.com"}
    assert {c["log_type"] for c in configs["audit_log_config"]} >= {"DATA_READ", "DATA_WRITE"}


def test_every_secret_referenced_exists_and_reaches_its_consumer():
    secrets = tf_locals()["secrets"]
    assert {v["env"] for v in secrets.values()} == SECRET_ENV_CONSUMERS
    for name, v in secrets.items():
        assert re.fullmatch(r"[a-z][a-z0-9-]+", name)
        assert v["job"] is True or v["api"] is True or v["api"].startswith("${local.env."), (
            f"{name} is read by nobody"
        )
    text = "\n".join(f.read_text() for f in tf_files())
    for ref in re.findall(r"google_secret_manager_secret\.secrets\[\"?([\w.-]+)\"?\]", text):
        assert ref in ("each.key", "env.key") or ref in secrets, (
            f"secret {ref} is referenced but not declared"
        )
    # the job reads exactly the alert channels' secrets; the API the tokens; each through Secret Manager
    assert {v["env"] for v in secrets.values() if v["job"] is True} == {
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_CHAT_ID",
        "SMTP_PASSWORD",
    }
    accessors = resources("google_secret_manager_secret_iam_member")
    assert (
        accessors["job"]["for_each"] == "${local.job_secrets}"
        and accessors["api"]["for_each"] == "${local.api_secrets}"
    )
    assert {a["role"] for a in accessors.values()} == {"roles/secretmanager.secretAccessor"}
    # the job spec in deploy/ names only declared secrets
    job_yaml = yaml.safe_load((ROOT / "deploy" / "cloudrun-job.yaml").read_text())
    [container] = job_yaml["spec"]["template"]["spec"]["template"]["spec"]["containers"]
    for e in container["env"]:
        if "valueFrom" in e:
            assert e["valueFrom"]["secretKeyRef"]["name"] in secrets


def test_tables_match_the_warehouse():
    """infra/tables.json is generated from warehouse TABLES and equals what the code itself would create."""
    from google.cloud import bigquery  # noqa: F401  (the code's own table builder needs it)
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import infra_tables
    finally:
        sys.path.pop(0)
    from strategy_engine.warehouse import bigquery_table
    committed = json.loads((INFRA / "tables.json").read_text())
    assert committed == infra_tables.tables(), "infra/tables.json is stale: run scripts/infra_tables.py"
    specs = infra_tables.load_all_tables()
    assert set(committed) == set(specs) >= {"signals", "performance", "runs", "market_bars"}
    for name, spec in specs.items():
        want = bigquery_table(spec, "p", "d").to_api_repr()
        got = committed[name]
        assert [(f["name"], f["type"], f["mode"]) for f in got["schema"]] == \
               [(f["name"], f["type"], f.get("mode", "NULLABLE")) for f in want["schema"]["fields"]], name
        assert (got["partition"], got["partition_type"]) == \
               ((want["timePartitioning"]["field"],
                 want["timePartitioning"]["type"]) if "timePartitioning" in want
                else (None, "MONTH")), name
        assert got["cluster"] == (want.get("clustering") or {}).get("fields", []), name
    table = resources("google_bigquery_table")["tables"]
    assert table["for_each"] == "${local.tables}" and "/tables.json" in tf_locals()["tables"]
    assert table["schema"] == "${jsonencode(each.value.schema)}"
    [partitioning] = table["dynamic"]
    assert partitioning["time_partitioning"]["content"][0]["field"] == "${time_partitioning.value}"
    assert "each.value.partition" in partitioning["time_partitioning"]["for_each"]
    assert "each.value.cluster" in table["clustering"]
    dataset = resources("google_bigquery_dataset")["warehouse"]
    assert (
        dataset["dataset_id"] == "${local.dataset_id}"
        and tf_locals()["dataset_id"] == "${local.env.warehouse.dataset}"
    )
    assert table["deletion_protection"] == "${local.env.warehouse.deletion_protection}"
    assert environment("production")["warehouse"]["deletion_protection"] is True


def test_scheduler_entries_are_the_stages():
    """Terraform creates one entry per entry of deploy/scheduler-stages.yaml, and those are exactly STAGES."""
    assert "deploy/scheduler-stages.yaml" in tf_locals()["stages"]
    entries = yaml.safe_load((ROOT / "deploy" / "scheduler-stages.yaml").read_text())["jobs"]
    assert [e["stage"] for e in entries] == [s.name for s in STAGES]
    for e, stage in zip(entries, STAGES):
        hh, mm = stage.at.split(":")
        assert e["schedule"] == f"{int(mm)} {int(hh)} * * 1-5" and e["timeZone"] == "Asia/Kolkata"
        [container] = e["httpTarget"]["body"]["overrides"]["containerOverrides"]
        args = [str(a) for a in container["args"]]
        assert args[:len(stage_args(stage.name))] == stage_args(stage.name, "today")
        build_parser().parse_args(args)
        assert e["httpTarget"]["uri"].endswith(f"/jobs/{tf_locals()['job_name']}:run")
        assert e["httpTarget"]["oauthToken"]["serviceAccountEmail"].startswith("strategy-engine-scheduler@")
    sched = resources("google_cloud_scheduler_job")["stages"]
    assert sched["for_each"] == "${local.stages}" and sched["name"] == "${each.key}"
    assert sched["schedule"] == "${each.value.schedule}" and sched["time_zone"] == "${each.value.timeZone}"
    [target] = sched["http_target"]
    assert target["uri"] == "${each.value.httpTarget.uri}"
    assert target["oauth_token"][0]["service_account_email"] == "${google_service_account.scheduler.email}"
    assert "each.value.httpTarget.body" in target["body"]
    assert (
        sched["paused"] == "${local.env.schedule.paused}"
        and environment("production")["schedule"]["paused"] is False
    )


def test_job_and_service_are_sized_by_the_environment():
    job = resources("google_cloud_run_v2_job")["daily"]
    assert job["name"] == "${local.job_name}"
    [tmpl] = job["template"]
    assert (
        tmpl["task_count"] == "${local.env.job.tasks}"
        and tmpl["parallelism"] == "${local.env.job.parallelism}"
    )
    [task] = tmpl["template"]
    assert (
        task["max_retries"] == "${local.env.job.max_retries}"
        and "local.env.job.timeout_seconds" in task["timeout"]
    )
    assert task["service_account"] == "${google_service_account.job.email}"
    [container] = task["containers"]
    assert container["image"] == "${var.image}" and container["args"] == "${local.job_args}"
    plain = {e["name"] for e in container["env"]}
    assert {"ENVIRONMENT", "STRATEGY_ENGINE_IMAGE_DIGEST"} <= plain
    # the job's command line is deploy/cloudrun-job.yaml's, a valid `run daily` on this environment's
    # resources
    job_yaml = yaml.safe_load((ROOT / "deploy" / "cloudrun-job.yaml").read_text())
    [c] = job_yaml["spec"]["template"]["spec"]["template"]["spec"]["containers"]
    for name in ENVIRONMENTS:
        env = environment(name)
        args = [a.replace("PROJECT_ID", env["project"]) for a in c["args"]]
        parsed_args = build_parser().parse_args(args)
        assert parsed_args.archive == f"gs://{env['project']}-strategy-runs/runs"
        assert parsed_args.warehouse == f"bigquery://{env['project']}/{env['warehouse']['dataset']}"
    svc = resources("google_cloud_run_v2_service")["api"]
    assert svc["ingress"] == "${local.env.service.ingress}"
    [t] = svc["template"]
    assert t["max_instance_request_concurrency"] == "${local.env.service.concurrency}"
    assert t["scaling"][0] == {"min_instance_count": "${local.env.service.min_instances}",
                               "max_instance_count": "${local.env.service.max_instances}"}
    assert t["service_account"] == "${google_service_account.api.email}"
    [sc] = t["containers"]
    assert sc["command"] == ["strategy-engine"] and build_parser().parse_args(sc["args"]).command == "serve"
    assert sc["startup_probe"][0]["http_get"][0]["path"] == "/health"
    assert "@sha256:" in Path(INFRA / "variables.tf").read_text()       # the image is pinned by digest
    # the run manifests' image identity (runs.launcher.image_identity requires it on Cloud Run): job and
    # service
    assert tf_locals()["image_digest"] == '${split("@", var.image)[1]}'
    digests = re.findall(r"STRATEGY_ENGINE_IMAGE_DIGEST\W+(?:value\s*=\s*)?local\.image_digest",
                         (INFRA / "run.tf").read_text())
    assert len(digests) == 2


def test_monitoring_covers_the_seed_rules():
    policies = resources("google_monitoring_alert_policy")
    assert set(policies) >= {"api_error_rate", "api_latency", "job_failed", "daily_run_missing", "stale_data",
                             "performance"}
    err = policies["api_error_rate"]["conditions"][0]["condition_threshold"][0]
    assert err["threshold_value"] == "${local.env.monitoring.error_rate}" and "5xx" in err["filter"]
    lat = policies["api_latency"]["conditions"][0]["condition_threshold"][0]
    assert "local.env.monitoring.latency_seconds * 1000" in str(lat["threshold_value"])
    assert "request_latencies" in lat["filter"]
    assert (
        'result=\\"failed\\"' in policies["job_failed"]["conditions"][0]["condition_threshold"][0]["filter"]
        or 'result="failed"' in policies["job_failed"]["conditions"][0]["condition_threshold"][0]["filter"]
    )
    assert "absent_over_time" in json.dumps(policies["daily_run_missing"])
    assert "data_stale" in json.dumps(policies["stale_data"])
    for name in ENVIRONMENTS:
        m = environment(name)["monitoring"]
        assert m["error_rate"] == 0.01 and m["latency_seconds"] == 5
        rules = yaml.safe_load((ROOT / "config" / "alerts.yaml").read_text())["alerts"]
        assert (m["sharpe_min"], m["drawdown_max"]) == (rules["min_sharpe"],
                                                        rules["max_drawdown"]) == (1.0, 0.05)
        assert m["alert_emails"] and all("@" in a for a in m["alert_emails"])
    assert resources("google_monitoring_notification_channel")["email"]["type"] == "email"
    assert all(p["notification_channels"] == "${local.channels}" for p in policies.values())
    # every log-based metric a policy or the dashboard names is defined
    metrics = {b["name"] for b in resources("google_logging_metric").values()}
    metrics |= {"strategy_engine/report_" + v for v in ("total_return", "max_drawdown", "sharpe_ratio")}
    dashboard = (INFRA / "dashboard.json.tftpl").read_text()
    used = set(re.findall(r"logging.googleapis.com/user/([\w/]+)", dashboard))
    used |= {m.replace("strategy_engine_", "strategy_engine/") for m in
             re.findall(r"user_(strategy_engine_\w+)\{", json.dumps(policies))}
    assert used and used <= metrics, used - metrics
    values = {"environment": "production", "job_name": "j", "api_name": "a", "sharpe_min": "1.0",
              "drawdown": "0.05"}
    board = json.loads(re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], dashboard))
    titles = " | ".join(t["widget"]["title"] for t in board["mosaicLayout"]["tiles"])
    for needed in ("P&L", "drawdown", "System health", "Data quality", "Sharpe"):
        assert needed in titles, needed


def _checkov() -> str | None:
    for candidate in (ROOT / ".venv" / "checkov" / "bin" / "checkov", shutil.which("checkov")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


def test_checkov_finds_nothing_and_every_skip_is_justified():
    checkov = _checkov()
    if checkov is None:
        if os.environ.get("CI"):
            pytest.fail("checkov is missing in CI: `make test` installs it into .venv/checkov "
                        "(infra/requirements-checkov.txt)")
        pytest.skip("checkov is not installed (make infra-check installs it into .venv/checkov)")
    r = subprocess.run([checkov, "-d", str(INFRA), "--framework", "terraform", "--skip-download", "--quiet",
                        "-o", "json"], capture_output=True, text=True, timeout=300,
                       env={"BC_SKIP_MAPPING": "TRUE", "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    report = json.loads(r.stdout)
    summary = report["summary"]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']})"
              for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0 and not failed, "\n".join(failed)
    assert summary["passed"] >= 50 and summary["parsing_errors"] == 0
    skips = [line.strip()
             for f in INFRA.rglob("*.tf") for line in f.read_text().splitlines() if "checkov:skip=" in line]
    assert summary["skipped"] == len(skips)
    for s in skips:
        m = re.search(r"checkov:skip=(CKV_\w+):(.+)", s)
        assert m and len(m.group(2).strip()) >= 30, f"a skip without its reason: {s}"


def test_workflow_matches_github_schema_and_the_delivery_rules():
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    exe = Path(sys.executable).parent / "check-jsonschema"
    r = subprocess.run([str(exe), "--builtin-schema", "vendor.github-workflows", *map(str, workflows)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    wf = yaml.safe_load(workflows[0].read_text())
    triggers = wf[True] if True in wf else wf["on"]                  # YAML 1.1 reads `on:` as True
    assert "push" in triggers and "pull_request" in triggers
    jobs = wf["jobs"]
    assert any("make test" in s.get("run", "") for s in jobs["test"]["steps"])
    assert "refs/heads/main" in jobs["build"]["if"] and jobs["build"]["needs"] == "test"
    build = "\n".join(s.get("run", "") for s in jobs["build"]["steps"])
    assert "GIT_COMMIT=$GITHUB_SHA" in build and "RepoDigests" in build
    assert jobs["deploy-staging"]["environment"] == "staging"
    assert any("verify_deployment.sh staging" in s.get("run", "") for s in jobs["deploy-staging"]["steps"])
    prod = jobs["deploy-production"]
    assert prod["environment"] == "production" and "deploy-staging" in prod["needs"]
    assert any("verify_deployment.sh production" in s.get("run", "") for s in prod["steps"])
    text = workflows[0].read_text()
    assert "credentials_json" not in text and "GOOGLE_APPLICATION_CREDENTIALS" not in text   # no key files
    for name in ("build", "deploy-staging", "deploy-production"):
        auth = [s for s in jobs[name]["steps"] if s.get("uses", "").startswith("google-github-actions/auth@")]
        assert auth and "workload_identity_provider" in auth[0]["with"], name
        assert jobs[name]["permissions"]["id-token"] == "write", name
    # the WIF provider accepts only this repository's main branch in the matching GitHub environment
    [provider] = resources("google_iam_workload_identity_pool_provider", INFRA / "bootstrap").values()
    cond = provider["attribute_condition"]
    assert ":environment:${var.environment}" in cond and "refs/heads/main" in cond


def test_dockerfile_passes_hadolint():
    exe = Path(sys.executable).parent / "hadolint"
    r = subprocess.run([str(exe), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    text = (ROOT / "Dockerfile").read_text()
    assert "ARG BASE_IMAGE=python:3.11-slim" in text and "FROM ${BASE_IMAGE} AS runtime" in text
    assert "STRATEGY_ENGINE_GIT_COMMIT=${GIT_COMMIT}" in text and "GIT_COMMIT=${GIT_COMMIT}" in text
