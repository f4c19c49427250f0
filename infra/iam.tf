# Least privilege: one service account per actor, each granted only on the resources it uses.
# No primitive role (owner/editor/viewer) anywhere: tests/test_infra.py fails on one.
#   job        (strategy-engine):           archive create-only, its dataset read/write, its secrets
#   api        (strategy-engine-api):       archive + dataset read (create/write only when service.execute)
#   scheduler  (strategy-engine-scheduler): may only start the job (with the stage's command)
resource "google_service_account" "job" {
  account_id   = "strategy-engine" # deploy/cloudrun-job.yaml serviceAccountName
  display_name = "Strategy Engine daily job"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "api" {
  account_id   = "strategy-engine-api"
  display_name = "Strategy Engine API service"
  depends_on   = [google_project_service.apis]
}

resource "google_service_account" "scheduler" {
  account_id   = "strategy-engine-scheduler" # deploy/scheduler-stages.yaml oauthToken.serviceAccountEmail
  display_name = "Strategy Engine scheduler (starts the job)"
  depends_on   = [google_project_service.apis]
}

# The archive is create-only for the job: create, read and list, and NO storage.objects.delete. Without delete,
# an upload to an existing name fails (GCS needs delete permission to overwrite), so no identity the system runs
# as can alter a record, before or after the retention policy would allow it.
resource "google_project_iam_custom_role" "archive_writer" {
  role_id     = "strategyEngineArchiveWriter"
  title       = "Strategy Engine archive writer (create-only)"
  description = "Create, read and list archive objects; never delete or overwrite."
  permissions = ["storage.objects.create", "storage.objects.get", "storage.objects.list"]
  depends_on  = [google_project_service.apis]
}

resource "google_project_iam_custom_role" "archive_reader" {
  role_id     = "strategyEngineArchiveReader"
  title       = "Strategy Engine archive reader"
  description = "Read and list archive objects."
  permissions = ["storage.objects.get", "storage.objects.list"]
  depends_on  = [google_project_service.apis]
}

resource "google_storage_bucket_iam_member" "job_archive" {
  bucket = google_storage_bucket.archive.name
  role   = google_project_iam_custom_role.archive_writer.name
  member = "serviceAccount:${google_service_account.job.email}"
}

resource "google_storage_bucket_iam_member" "api_archive" {
  bucket = google_storage_bucket.archive.name
  role   = local.env.service.execute ? google_project_iam_custom_role.archive_writer.name : google_project_iam_custom_role.archive_reader.name
  member = "serviceAccount:${google_service_account.api.email}"
}

# BigQuery: data roles on the dataset only; jobUser (run query and load jobs, no data access) on the project.
resource "google_bigquery_dataset_iam_member" "job" {
  dataset_id = google_bigquery_dataset.warehouse.dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.job.email}"
}

resource "google_bigquery_dataset_iam_member" "api" {
  dataset_id = google_bigquery_dataset.warehouse.dataset_id
  role       = local.env.service.execute ? "roles/bigquery.dataEditor" : "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.api.email}"
}

resource "google_project_iam_member" "bigquery_jobs" {
  for_each = {
    job = google_service_account.job.email
    api = google_service_account.api.email
  }
  project = local.project
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${each.value}"
}

# The scheduler may start this one job, with the stage's container overrides, and nothing else.
resource "google_cloud_run_v2_job_iam_member" "scheduler" {
  name     = google_cloud_run_v2_job.daily.name
  location = local.region
  role     = "roles/run.jobsExecutorWithOverrides"
  member   = "serviceAccount:${google_service_account.scheduler.email}"
}

# Who may call the API (Cloud Run IAM; the app checks its bearer tokens on top): the deployer, for the smoke
# test, and the principals in environments/<env>.yaml service.invokers. Never allUsers.
resource "google_cloud_run_v2_service_iam_member" "invokers" {
  for_each = toset(concat(["serviceAccount:${local.deployer}"], local.env.service.invokers))
  name     = google_cloud_run_v2_service.api.name
  location = local.region
  role     = "roles/run.invoker"
  member   = each.value
}

# Data-access audit logs for the archive (GCS) and the warehouse (BigQuery): every read and write is logged.
resource "google_project_iam_audit_config" "data_access" {
  for_each = toset(["storage.googleapis.com", "bigquery.googleapis.com"])
  project  = local.project
  service  = each.value
  audit_log_config {
    log_type = "ADMIN_READ"
  }
  audit_log_config {
    log_type = "DATA_READ"
  }
  audit_log_config {
    log_type = "DATA_WRITE"
  }
}

# The deployer (infra/bootstrap; GitHub Actions through Workload Identity Federation) may act as each runtime
# account, to deploy the job and service and the scheduler entries that run as them; granted per account.
resource "google_service_account_iam_member" "deployer_act_as" {
  for_each = {
    job       = google_service_account.job.name
    api       = google_service_account.api.name
    scheduler = google_service_account.scheduler.name
  }
  service_account_id = each.value
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${local.deployer}"
}
