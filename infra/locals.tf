locals {
  # The single source of settings: environments/<environment>.yaml (also read by deploy/deploy.sh and
  # scripts/verify_deployment.sh).
  env = yamldecode(file("${path.module}/../environments/${var.environment}.yaml"))

  project      = local.env.project
  region       = local.env.region
  name         = "strategy-engine"
  job_name     = "strategy-engine-daily" # the scheduler entries' URIs name it (deploy/scheduler-stages.yaml)
  api_name     = "strategy-engine-api"
  bucket_name  = "${local.env.project}-strategy-runs" # deploy/cloudrun-job.yaml's gs://PROJECT_ID-strategy-runs
  dataset_id   = local.env.warehouse.dataset
  warehouse    = "bigquery://${local.env.project}/${local.env.warehouse.dataset}"
  archive_uri  = "gs://${local.bucket_name}/runs"
  image_digest = split("@", var.image)[1]                                                # sha256:<64 hex>, var.image's validation guarantees it
  deployer     = "strategy-engine-deployer@${local.env.project}.iam.gserviceaccount.com" # infra/bootstrap

  # Retention in seconds: 365.25-day years, as GCS counts them for retention policies.
  retention_seconds = floor(local.env.archive.retention_years * 31557600)

  # The BigQuery tables, generated from strategy_engine.warehouse.TABLES by scripts/infra_tables.py.
  tables = jsondecode(file("${path.module}/tables.json"))

  # The job's command line and plain environment: deploy/cloudrun-job.yaml (placeholders substituted).
  job_spec      = yamldecode(file("${path.module}/../deploy/cloudrun-job.yaml"))
  job_container = local.job_spec.spec.template.spec.template.spec.containers[0]
  job_args      = [for a in local.job_container.args : replace(a, "PROJECT_ID", local.project)]
  job_env = {
    for e in local.job_container.env : e.name => replace(e.value, "PROJECT_ID", local.project)
    if can(e.value) && e.name != "ENVIRONMENT"
  }

  # One Cloud Scheduler entry per stage of the trading day: deploy/scheduler-stages.yaml, itself checked against
  # strategy_engine.schedule.STAGES by the tests. PROJECT_ID and REGION are substituted here.
  stages = {
    for j in yamldecode(replace(replace(file("${path.module}/../deploy/scheduler-stages.yaml"),
    "PROJECT_ID", local.project), "REGION", local.region)).jobs : j.name => j
  }

  # Secrets (values are added out of band: `gcloud secrets versions add NAME --data-file=-`), and who reads them.
  secrets = {
    "telegram-bot-token"         = { env = "TELEGRAM_BOT_TOKEN", job = true, api = false }
    "telegram-chat-id"           = { env = "TELEGRAM_CHAT_ID", job = true, api = false }
    "smtp-password"              = { env = "SMTP_PASSWORD", job = true, api = false }
    "strategy-engine-api-token"  = { env = "STRATEGY_ENGINE_API_TOKEN", job = false, api = local.env.service.execute }
    "strategy-engine-read-token" = { env = "STRATEGY_ENGINE_READ_TOKEN", job = false, api = true }
  }
  job_secrets = { for k, v in local.secrets : k => v if v.job }
  api_secrets = { for k, v in local.secrets : k => v if v.api }
}
